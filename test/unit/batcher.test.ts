// Batching single calls into SQS's batch calls (src/aws/batcher.ts): when a batch goes out, and that
// each entry learns its own result.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createBatcher } from '../../src/aws/batcher.ts';

/** A batch "call" that records what it was given and answers each entry with `answer`. */
function recorder<E>(answer: (entry: E) => string | Error = (e) => `ok:${String(e)}`) {
  const calls: E[][] = [];
  return {
    calls,
    send: async (entries: readonly E[]) => {
      calls.push([...entries]);
      return entries.map(answer);
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('createBatcher', () => {
  it('sends a batch flushAfterMs after its first entry, with every entry added meanwhile', async () => {
    // Prepare
    const r = recorder<number>();
    const batcher = createBatcher({ maxEntries: 10, flushAfterMs: 10, send: r.send });

    // Act
    const results = [batcher.add(1), batcher.add(2)];
    await vi.advanceTimersByTimeAsync(9);
    const before = r.calls.length;
    const third = batcher.add(3);
    await vi.advanceTimersByTimeAsync(1);

    // Assess
    expect(before).toBe(0);
    expect(r.calls).toEqual([[1, 2, 3]]);
    expect(await Promise.all([...results, third])).toEqual(['ok:1', 'ok:2', 'ok:3']);
  });

  it('sends at once when the batch is full, and starts the next one', async () => {
    // Prepare
    const r = recorder<number>();
    const batcher = createBatcher({ maxEntries: 3, flushAfterMs: 10, send: r.send });

    // Act
    const results = [1, 2, 3, 4].map((n) => batcher.add(n));
    await vi.advanceTimersByTimeAsync(0);
    const atOnce = r.calls.map((c) => [...c]);
    await vi.advanceTimersByTimeAsync(10);

    // Assess
    expect(atOnce).toEqual([[1, 2, 3]]);
    expect(r.calls).toEqual([[1, 2, 3], [4]]);
    expect(await Promise.all(results)).toEqual(['ok:1', 'ok:2', 'ok:3', 'ok:4']);
  });

  it('starts a new batch when an entry would take the batch over its byte limit', async () => {
    // Prepare
    const r = recorder<string>();
    const batcher = createBatcher({ maxEntries: 10, maxBytes: 10, sizeOf: (s: string) => s.length, flushAfterMs: 10, send: r.send });

    // Act
    const results = ['aaaa', 'bbbb', 'cccc', 'dd'].map((s) => batcher.add(s));
    await vi.advanceTimersByTimeAsync(10);

    // Assess
    expect(r.calls).toEqual([['aaaa', 'bbbb'], ['cccc', 'dd']]);
    expect(await Promise.all(results)).toHaveLength(4);
  });

  it('keeps a batch that fills its byte limit exactly together, and sends an entry over the limit alone', async () => {
    // Prepare
    const r = recorder<string>();
    const batcher = createBatcher({ maxEntries: 10, maxBytes: 10, sizeOf: (s: string) => s.length, flushAfterMs: 10, send: r.send });

    // Act
    const results = ['aaaaa', 'bbbbb', 'c'.repeat(12), 'd'].map((s) => batcher.add(s));
    await vi.advanceTimersByTimeAsync(10);

    // Assess
    expect(r.calls).toEqual([['aaaaa', 'bbbbb'], ['c'.repeat(12)], ['d']]);
    expect(await Promise.all(results)).toHaveLength(4);
  });

  it('sends each batch flushAfterMs after its own first entry, never on an earlier batch\'s timer', async () => {
    // Prepare
    const r = recorder<number>();
    const batcher = createBatcher({ maxEntries: 3, flushAfterMs: 10, send: r.send });
    const sentBy = (ms: number) => vi.advanceTimersByTimeAsync(ms).then(() => r.calls.map((c) => [...c]));

    // Act: a batch that fills at t=6 (its timer was set at t=0), and the next from t=7
    const results = [batcher.add(1)];
    await vi.advanceTimersByTimeAsync(5);
    results.push(batcher.add(2));
    await vi.advanceTimersByTimeAsync(1);
    results.push(batcher.add(3));
    await vi.advanceTimersByTimeAsync(1);
    results.push(batcher.add(4));
    const at16 = await sentBy(9);
    const at17 = await sentBy(1);

    // Assess
    expect(at16).toEqual([[1, 2, 3]]);
    expect(at17).toEqual([[1, 2, 3], [4]]);
    expect(await Promise.all(results)).toEqual(['ok:1', 'ok:2', 'ok:3', 'ok:4']);
  });

  it('makes no call for an empty batch: a flush with nothing waiting sends nothing', async () => {
    // Prepare
    const r = recorder<number>();
    const batcher = createBatcher({ maxEntries: 10, flushAfterMs: 10, send: r.send });

    // Act
    await batcher.flush();
    const result = batcher.add(1);
    await batcher.flush();
    await batcher.flush();
    await vi.advanceTimersByTimeAsync(10);

    // Assess
    expect(r.calls).toEqual([[1]]);
    expect(await result).toBe('ok:1');
  });

  it('rejects only the entries the call reports as failed', async () => {
    // Prepare
    const r = recorder<number>((n) => (n === 2 ? Object.assign(new Error('receipt handle is invalid'), { name: 'ReceiptHandleIsInvalid' }) : `ok:${n}`));
    const batcher = createBatcher({ maxEntries: 10, flushAfterMs: 10, send: r.send });

    // Act
    const settled = Promise.allSettled([1, 2, 3].map((n) => batcher.add(n)));
    await vi.advanceTimersByTimeAsync(10);

    // Assess
    expect((await settled).map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).name))).toEqual(['ok:1', 'ReceiptHandleIsInvalid', 'ok:3']);
  });

  it('rejects every entry of a call that fails whole', async () => {
    // Prepare
    const outage = new Error('503');
    const batcher = createBatcher<number, string>({
      maxEntries: 10,
      flushAfterMs: 10,
      send: async () => {
        throw outage;
      },
    });

    // Act
    const settled = Promise.allSettled([1, 2].map((n) => batcher.add(n)));
    await vi.advanceTimersByTimeAsync(10);

    // Assess
    expect((await settled).map((s) => s.status === 'rejected' && s.reason)).toEqual([outage, outage]);
  });

  it('flush sends what waits now and waits for every call under way', async () => {
    // Prepare
    let finish!: () => void;
    const calls: number[][] = [];
    const batcher = createBatcher<number, string>({
      maxEntries: 10,
      flushAfterMs: 1_000,
      send: async (entries) => {
        calls.push([...entries]);
        await new Promise<void>((resolve) => (finish = resolve));
        return entries.map(() => 'ok');
      },
    });
    const result = batcher.add(7);

    // Act
    let flushed = false;
    const flushing = batcher.flush().then(() => (flushed = true));
    await vi.advanceTimersByTimeAsync(0);
    const whileInCall = { flushed, pending: batcher.pending, calls: calls.length };
    finish();
    await flushing;

    // Assess
    expect(whileInCall).toEqual({ flushed: false, pending: 1, calls: 1 });
    expect(await result).toBe('ok');
    expect(batcher.pending).toBe(0);
  });

  it('fails an entry the call gave no result for, rather than leaving it hanging', async () => {
    // Prepare
    const batcher = createBatcher<number, string>({ maxEntries: 10, flushAfterMs: 10, send: async () => ['only one'] });

    // Act
    const settled = Promise.allSettled([1, 2].map((n) => batcher.add(n)));
    await vi.advanceTimersByTimeAsync(10);

    // Assess
    expect((await settled).map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual(['only one', 'the batch call gave no result for this entry']);
  });
});
