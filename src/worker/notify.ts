/**
 * The systemd notify protocol (sd_notify): READY, STATUS, WATCHDOG, RELOADING, STOPPING and
 * EXTEND_TIMEOUT_USEC, sent as datagrams to $NOTIFY_SOCKET. Node has no unix datagram sockets, so
 * a few lines of Node-API (src/native/sd_notify.c, built by node-gyp at install) send them; the
 * addon is loaded only when systemd asks for notifications. Outside systemd (no NOTIFY_SOCKET)
 * every call is a no-op.
 */
import { createRequire } from 'node:module';
import type { Logger } from 'pino';

export interface Notifier {
  readonly enabled: boolean;
  ready(status?: string): void;
  reloading(): void;
  status(text: string): void;
  stopping(): void;
  /** Asks systemd for `seconds` more before it times the current start or stop out. */
  extendTimeout(seconds: number): void;
  /** Pings the watchdog from the event loop at half its interval: a blocked loop stops the pings. */
  startWatchdog(): void;
  close(): void;
}

export const silentNotifier: Notifier = {
  enabled: false,
  ready() {},
  reloading() {},
  status() {},
  stopping() {},
  extendTimeout() {},
  startWatchdog() {},
  close() {},
};

interface NotifyAddon {
  send(path: string, message: Buffer): void;
}

// From dist/worker/ (or src/worker/) to the package root, where node-gyp puts its build.
const ADDON = '../../build/Release/sd_notify.node';

/** What `systemctl status` shows while the worker runs. */
export function describeStats(
  stats: { inFlight: number; succeeded: number; failed: number; retried: number; lastSuccessAt: number | undefined },
  now = Date.now(),
): string {
  const last = stats.lastSuccessAt === undefined ? 'none yet' : `${Math.round((now - stats.lastSuccessAt) / 1000)}s ago`;
  return `in flight ${stats.inFlight}; succeeded ${stats.succeeded}, failed ${stats.failed}, retried ${stats.retried}; last success ${last}`;
}

/** STATUS is one line in `systemctl status`: no newlines, bounded length. */
export function statusLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 200);
}

/** The watchdog interval systemd asked for, if it is meant for this process. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 1000 / 2));
}

export function systemdNotifier(log: Logger, env: NodeJS.ProcessEnv = process.env): Notifier {
  const socketPath = env.NOTIFY_SOCKET;
  if (!socketPath) return silentNotifier;
  let addon: NotifyAddon;
  try {
    addon = createRequire(import.meta.url)(ADDON) as NotifyAddon;
  } catch (e: unknown) {
    log.error({ err: e instanceof Error ? e.message : String(e) }, 'NOTIFY_SOCKET is set but sd_notify is unavailable');
    return silentNotifier;
  }
  let watchdog: NodeJS.Timeout | undefined;
  let failed = false;

  const send = (message: string) => {
    try {
      addon.send(socketPath, Buffer.from(message));
    } catch (e: unknown) {
      // Logged once: a notify socket that went away must not flood the journal.
      if (!failed) {
        failed = true;
        log.warn({ err: e instanceof Error ? e.message : String(e) }, 'sd_notify failed');
      }
    }
  };

  return {
    enabled: true,
    ready: (status) => send(status === undefined ? 'READY=1' : `READY=1\nSTATUS=${statusLine(status)}`),
    reloading: () => send('RELOADING=1'),
    status: (text) => send(`STATUS=${statusLine(text)}`),
    stopping: () => send('STOPPING=1'),
    extendTimeout: (seconds) => send(`EXTEND_TIMEOUT_USEC=${Math.round(seconds * 1_000_000)}`),
    startWatchdog() {
      const interval = watchdogIntervalMs(env, process.pid);
      if (interval === undefined || watchdog) return;
      send('WATCHDOG=1');
      watchdog = setInterval(() => send('WATCHDOG=1'), interval);
      watchdog.unref();
    },
    close() {
      if (watchdog) clearInterval(watchdog);
    },
  };
}
