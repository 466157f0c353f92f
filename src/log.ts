/**
 * pino JSON lines on stdout, which journald collects. Decided once: the level and the bindings
 * are fixed at start. Writes are synchronous, so a line logged just before exit is never lost.
 */
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger };

export function createLogger(level: LogLevel = 'info', destination: pino.DestinationStream = pino.destination({ dest: 1, sync: true })): Logger {
  return pino(
    {
      level,
      base: { service: 'enrollment-worker', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // An Error logged as `err` is written whole, stack included (unexpected failures: bugs to
      // find); a flat `{ name, message }` (expected failures, e.g. throttling) stays one short line.
      serializers: { err: (e: unknown) => (e instanceof Error ? pino.stdSerializers.err(e) : e) },
    },
    destination,
  );
}
