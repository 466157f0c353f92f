// Waiting in tests, written once: a pause, a poll until a condition holds, a free loopback port and
// a server listening on one. Tests on a shared two-core machine wait for what they need to see,
// never for a fixed time that happens to be enough on a quiet one.
import type { Server } from 'node:http';
import { createServer } from 'node:net';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What a probe gives while the condition does not hold yet. */
type NotYet = undefined | false;

/**
 * Calls `probe` every `everyMs` until it gives something other than `undefined` or `false`, and
 * returns that; fails after `timeoutMs`, saying `what` it waited for (and `detail()`, when given, for
 * what a failure should show). A probe that throws fails the wait at once.
 */
export async function until<T>(
  what: string,
  probe: () => T | NotYet | Promise<T | NotYet>,
  timeoutMs: number,
  options: { everyMs?: number; detail?: () => string } = {},
): Promise<T> {
  const { everyMs = 50, detail } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}${detail ? `; ${detail()}` : ''}`);
    }
    await sleep(everyMs);
  }
}

/**
 * Resolves with `value` once `promise` settles, or with `fallback` after `ms` — for a wait whose
 * failure a test reports itself (an exit that did not come, a process still running).
 */
export async function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Why `url` gave no HTTP answer within `timeoutMs` (the error and its cause), or undefined when it
 * answered: any status proves something is listening; only a network failure counts as absent.
 */
export async function whyNoAnswer(url: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return undefined;
  } catch (e: unknown) {
    const message = e instanceof Error ? e.message : String(e);
    const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : '';
    return `${message}${cause}`;
  }
}

/** Starts `server` on an ephemeral loopback port; resolves with its base URL (`http://127.0.0.1:PORT`). */
export function listenOnLoopback(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (typeof address !== 'object' || address === null) {
        reject(new Error('the server has no address'));
        return;
      }
      resolve(`http://127.0.0.1:${String(address.port)}`);
    });
  });
}

/**
 * A loopback port that was free a moment ago, for a process that binds it itself (moto, a worker's
 * metrics server). Another process may take it meanwhile: a caller that can, retries on EADDRINUSE.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}
