import type { IngressLogger } from './ingress/app';

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
type Level = (typeof LEVELS)[number];

/** One line per entry on stderr/stdout, `LOG_LEVEL` (default info) and above. Callers never pass secrets. */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): IngressLogger {
  const threshold = Math.max(LEVELS.indexOf(level as Level), 0);
  const at = (name: Level) => (message: string, meta?: Record<string, unknown>) => {
    if (LEVELS.indexOf(name) < threshold) return;
    const line = `${new Date().toISOString()} [${name.toUpperCase()}] ${message}${meta ? ` ${JSON.stringify(meta)}` : ''}`;
    (name === 'error' || name === 'warn' ? console.error : console.log)(line);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** For tests: collects entries instead of printing them. */
export function createMemoryLogger(): IngressLogger & { entries: { level: Level; message: string; meta?: Record<string, unknown> }[] } {
  const entries: { level: Level; message: string; meta?: Record<string, unknown> }[] = [];
  const at = (level: Level) => (message: string, meta?: Record<string, unknown>) => void entries.push({ level, message, meta });
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
