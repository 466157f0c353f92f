/**
 * Signals, in one place, for the whole life of the process. While starting, a stop exits 0 at once
 * (nothing was received: there is nothing to drain) and SIGHUP is logged and ignored (the settings
 * being loaded are current; without a handler SIGHUP would kill the process, which systemd counts as
 * a clean exit). Once running, SIGHUP reloads; the first SIGTERM/SIGINT starts a drain, a second one
 * forces the exit (130), and an unref'd guard timer makes sure a hung drain cannot keep the process
 * alive.
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';

export const EXIT_FORCED = 130;

export interface RunningHandlers {
  /** Drains and releases resources; resolves to the exit code. */
  readonly stop: (signal: NodeJS.Signals) => Promise<number>;
  readonly reload: () => Promise<void>;
  /** Upper bound for `stop`, after which the process exits regardless. */
  readonly guardMs: number;
}

export interface Lifecycle {
  /** From now on signals drain and reload the running worker. */
  running(handlers: RunningHandlers): void;
  /** Removes the handlers (tests). */
  close(): void;
}

export interface LifecycleOptions {
  /** The logger as it is now (start-up replaces the first one once LOG_LEVEL is read). */
  readonly log: () => Logger;
  readonly exit?: (code: number) => void;
  /** Where signals come from: `process`, or an emitter in tests. */
  readonly signals?: Pick<EventEmitter, 'on' | 'off'>;
}

export function installSignals(options: LifecycleOptions): Lifecycle {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const source = options.signals ?? process;
  let handlers: RunningHandlers | undefined;
  let stopping = false;

  const onStop = (signal: NodeJS.Signals) => {
    const log = options.log();
    if (!handlers) {
      log.info({ signal }, 'stopped during start-up');
      exit(0);
      return;
    }
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now; unfinished jobs stay in the queue');
      exit(EXIT_FORCED);
      return;
    }
    stopping = true;
    log.info({ signal }, 'stopping: no new jobs are received; draining the jobs in flight');
    setTimeout(() => {
      options.log().error('the drain did not finish in time; exiting');
      exit(EXIT_FORCED);
    }, handlers.guardMs).unref();
    handlers.stop(signal).then(exit, (e: unknown) => {
      options.log().error({ err: e }, 'stopping failed');
      exit(1);
    });
  };
  const onHangUp = () => {
    if (!handlers) {
      options.log().info('reload requested during start-up: the settings being loaded are current');
      return;
    }
    if (stopping) return;
    void handlers.reload();
  };
  const onTerm = () => onStop('SIGTERM');
  const onInt = () => onStop('SIGINT');
  source.on('SIGTERM', onTerm);
  source.on('SIGINT', onInt);
  source.on('SIGHUP', onHangUp);

  return {
    running(next) {
      handlers = next;
    },
    close() {
      source.off('SIGTERM', onTerm);
      source.off('SIGINT', onInt);
      source.off('SIGHUP', onHangUp);
    },
  };
}
