/**
 * Signals and the graceful stop. The first SIGTERM/SIGINT starts a drain (stop receiving, let the
 * jobs in flight finish within DRAIN_TIMEOUT_SECONDS); a second one forces the exit. An unref'd
 * guard timer makes sure a hung drain can never keep the process alive.
 */
import type { Logger } from 'pino';

export const EXIT_FORCED = 130;

export interface ShutdownOptions {
  readonly log: Logger;
  /** Drains and releases resources; resolves to the exit code. */
  readonly stop: (signal: NodeJS.Signals) => Promise<number>;
  /** Upper bound for `stop`, after which the process exits regardless. */
  readonly guardMs: number;
  readonly exit?: (code: number) => void;
}

export function handleShutdownSignals(options: ShutdownOptions): void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      options.log.warn({ signal }, 'second signal: exiting now; unfinished jobs stay in the queue');
      exit(EXIT_FORCED);
      return;
    }
    stopping = true;
    options.log.info({ signal }, 'stopping: no new jobs are received; draining the jobs in flight');
    setTimeout(() => {
      options.log.error('the drain did not finish in time; exiting');
      exit(EXIT_FORCED);
    }, options.guardMs).unref();
    options.stop(signal).then(exit, (e: unknown) => {
      options.log.error({ err: e instanceof Error ? { name: e.name, message: e.message } : String(e) }, 'stopping failed');
      exit(1);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
