/**
 * Collects single calls (delete this message, send this outcome, extend this visibility) into the
 * batch calls SQS offers, so a job costs a fraction of a request instead of one per step. A batch
 * goes out when it is full (entries or bytes) or `flushAfterMs` after its first entry, and always
 * at `flush()` (a drain ends with one). Each entry learns its own result: a batch call answers entry
 * by entry, and a call that fails whole fails every entry in it.
 */

export interface BatchOptions<E, R> {
  /** At most this many entries per call (SQS: 10). */
  readonly maxEntries: number;
  /** At most this many bytes per call, by `sizeOf` (SQS: 1 MiB of bodies and attributes). */
  readonly maxBytes?: number;
  readonly sizeOf?: (entry: E) => number;
  /** How long the first entry of a batch may wait for company. */
  readonly flushAfterMs: number;
  /** One call for the entries; per entry, its result or the Error it got. */
  readonly send: (entries: readonly E[]) => Promise<readonly (R | Error)[]>;
}

export interface Batcher<E, R> {
  /** Resolves with the entry's result, or rejects with its error. */
  add(entry: E): Promise<R>;
  /** Sends whatever is waiting now, and waits for every call still under way. */
  flush(): Promise<void>;
  /** Entries waiting or in a call under way. */
  readonly pending: number;
}

interface Pending<E, R> {
  readonly entry: E;
  readonly bytes: number;
  readonly resolve: (result: R) => void;
  readonly reject: (error: unknown) => void;
}

export function createBatcher<E, R>(options: BatchOptions<E, R>): Batcher<E, R> {
  const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  let waiting: Pending<E, R>[] = [];
  let waitingBytes = 0;
  let timer: NodeJS.Timeout | undefined;
  let inCalls = 0;
  const calls = new Set<Promise<void>>();

  const call = (batch: Pending<E, R>[]): void => {
    inCalls += batch.length;
    const done = options
      .send(batch.map((p) => p.entry))
      .then(
        (results) => {
          batch.forEach((p, i) => {
            const result = results[i];
            if (result instanceof Error) p.reject(result);
            else if (i < results.length) p.resolve(result as R);
            else p.reject(new Error('the batch call gave no result for this entry'));
          });
        },
        (error: unknown) => {
          for (const p of batch) p.reject(error);
        },
      )
      .finally(() => {
        inCalls -= batch.length;
        calls.delete(done);
      });
    calls.add(done);
  };

  const sendWaiting = () => {
    clearTimeout(timer);
    timer = undefined;
    if (waiting.length === 0) return;
    const batch = waiting;
    waiting = [];
    waitingBytes = 0;
    call(batch);
  };

  return {
    get pending() {
      return waiting.length + inCalls;
    },
    add(entry) {
      return new Promise<R>((resolve, reject) => {
        const bytes = options.sizeOf?.(entry) ?? 0;
        // An entry that would push the batch over its byte limit starts the next batch (alone over
        // it, it goes in a batch of its own: with nothing waiting there is nothing to send first).
        if (waitingBytes + bytes > maxBytes) sendWaiting();
        waiting.push({ entry, bytes, resolve, reject });
        waitingBytes += bytes;
        if (waiting.length >= options.maxEntries) sendWaiting();
        else if (!timer) timer = setTimeout(sendWaiting, options.flushAfterMs);
      });
    },
    async flush() {
      sendWaiting();
      while (calls.size > 0) await Promise.allSettled([...calls]);
    },
  };
}
