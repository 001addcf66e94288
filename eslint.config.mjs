// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.data/**', 'coverage/**', 'jest.config.js', 'test/plain-summary-reporter.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A forgotten await on a Temporal or Stripe call silently drops work.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no I/O, no Node built-ins,
    // and activities are imported by type only.
    files: ['workflows/**/*.ts', 'test/fixtures/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must not use Node built-ins.' })),
          patterns: [
            {
              // src/orders/kinds.ts is pure too: the order kinds, side by side, which the reconciler walks.
              group: ['../activities', '../activities/*', '../src/*', '!../src/shared', '!../src/orders', '../src/orders/*', '!../src/orders/kinds'],
              allowTypeImports: true,
              message: 'Workflows import activities and services by type only; shared pure code lives in src/shared (and the order kinds in src/orders/kinds).',
            },
            {
              group: ['@temporalio/*/lib/*'],
              message: "Workflow code uses the SDK's public API only: internal paths change without notice and break replay.",
            },
          ],
        },
      ],
    },
  },
);
