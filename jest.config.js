/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  // ts-jest only transforms; `npm run typecheck` is the type gate, so tests start faster.
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: { isolatedModules: true } }] },
  setupFiles: ['<rootDir>/test/setup.ts'],
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // Servers (Temporal, PostgreSQL, SMTP) start once per file; give slow machines room.
  testTimeout: 60_000,
  verbose: true,
  reporters: ['default', '<rootDir>/test/plain-summary-reporter.js'],
};
