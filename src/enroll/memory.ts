/**
 * A memory budget: bytes held at once, across all jobs in flight, are admitted against one number,
 * so the worker's peak is a setting, not an accident of the load. Waiters are served in order (no
 * starvation of large requests); a request larger than the whole budget is admitted alone, once
 * nothing but background holdings (the bytes of received messages) is held; a waiter whose job is
 * cancelled leaves the line at once. A job asks once for all it needs, so no job holds a part while
 * waiting for the rest (which could deadlock).
 */

export interface Grant {
  /** Gives the bytes back (what is left of them after `take`); idempotent. */
  release(): void;
  /** Bytes this grant holds now. */
  readonly bytes: number;
  /**
   * Carves `bytes` out of this grant into a grant of their own, without waiting (a reservation made
   * before a receive, split among the messages it brought). Asking more than is left holds the excess
   * at once: it was already in the process.
   */
  take(bytes: number): Grant;
}

export interface AcquireOptions {
  readonly signal?: AbortSignal;
  /**
   * Held in the background (a received message's bytes): counted against the budget, but never what
   * keeps a request larger than the whole budget from running alone.
   */
  readonly background?: boolean;
}

export interface MemoryBudget {
  /** Waits until `bytes` fit (or nothing but background holdings is held), then holds them until released. */
  acquire(bytes: number, options?: AcquireOptions): Promise<Grant>;
  /**
   * Holds `bytes` at once if no one is waiting and they fit (or nothing at all is held); otherwise
   * undefined, and nothing waits — so what asks this way never stands in the line ahead of a job.
   */
  tryAcquire(bytes: number, options?: Pick<AcquireOptions, 'background'>): Grant | undefined;
  readonly limit: number;
  /**
   * Calls `listener` whenever bytes are given back (and the line has moved on): for whoever waits
   * without standing in the line (a receive). Returns the way to stop listening.
   */
  watch(listener: () => void): () => void;
  /** Bytes held now. */
  readonly held: number;
  /** Requests waiting now. */
  readonly waiting: number;
  /** The most ever held at once. */
  readonly peak: number;
}

interface Waiter {
  readonly bytes: number;
  readonly admit: () => void;
}

export function createMemoryBudget(limit: number): MemoryBudget {
  let held = 0;
  let background = 0;
  let peak = 0;
  const line: Waiter[] = [];
  const watchers = new Set<() => void>();

  const fits = (bytes: number) => held + bytes <= limit || held === background;

  const grant = (bytes: number, isBackground: boolean): Grant => {
    held += bytes;
    if (isBackground) background += bytes;
    peak = Math.max(peak, held);
    let left = bytes;
    const giveBack = (n: number) => {
      left -= n;
      held -= n;
      if (isBackground) background -= n;
    };
    return {
      get bytes() {
        return left;
      },
      release() {
        if (left === 0) return;
        giveBack(left);
        admitWaiting();
      },
      take(n) {
        const size = Math.max(0, Math.ceil(n));
        giveBack(Math.min(size, left));
        return grant(size, isBackground);
      },
    };
  };

  // First come, first served: a large request at the head is not overtaken by small ones.
  const admitWaiting = () => {
    while (line.length > 0 && fits(line[0]?.bytes ?? 0)) line.shift()?.admit();
    for (const watcher of watchers) watcher();
  };

  return {
    limit,
    get held() {
      return held;
    },
    get waiting() {
      return line.length;
    },
    get peak() {
      return peak;
    },
    watch(listener) {
      watchers.add(listener);
      return () => void watchers.delete(listener);
    },
    tryAcquire(bytes, options = {}) {
      const size = Math.max(0, Math.ceil(bytes));
      if (line.length > 0 || (held + size > limit && held !== 0)) return undefined;
      return grant(size, options.background === true);
    },
    acquire(bytes, options = {}) {
      const { signal } = options;
      const isBackground = options.background === true;
      const size = Math.max(0, Math.ceil(bytes));
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (line.length === 0 && fits(size)) return Promise.resolve(grant(size, isBackground));
      return new Promise<Grant>((resolve, reject) => {
        const waiter: Waiter = {
          bytes: size,
          admit: () => {
            signal?.removeEventListener('abort', onAbort);
            resolve(grant(size, isBackground));
          },
        };
        const onAbort = () => {
          const at = line.indexOf(waiter);
          if (at >= 0) line.splice(at, 1);
          reject(signal?.reason);
          admitWaiting();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        line.push(waiter);
      });
    },
  };
}

/**
 * The share of MAX_IN_FLIGHT_BYTES for image bytes held (received messages, staged objects): a third.
 * The rest is for decoding. Two budgets, so a job holding its bytes never waits for memory that only
 * decodes can free.
 */
export function heldShareOf(maxInFlightBytes: number): number {
  return Math.floor(maxInFlightBytes / 3);
}
