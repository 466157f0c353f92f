// Signals (src/worker/lifecycle.ts) with an emitter for a process and an injected exit: what start-up
// does with them, the drain, the second signal, and the guard against a hung drain.
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EXIT_FORCED, installSignals } from '../../src/worker/lifecycle.ts';
import { memoryLogger } from './helpers.ts';

function harness() {
  const signals = new EventEmitter();
  const exits: number[] = [];
  const { log, lines } = memoryLogger();
  const lifecycle = installSignals({ log: () => log, exit: (code) => void exits.push(code), signals });
  return { signals, exits, lines, lifecycle };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('installSignals', () => {
  it('exits 0 at once on SIGTERM during start-up: nothing was received', () => {
    // Prepare
    const h = harness();

    // Act
    h.signals.emit('SIGTERM');

    // Assess
    expect(h.exits).toEqual([0]);
    expect(h.lines().at(-1)).toMatchObject({ msg: 'stopped during start-up', signal: 'SIGTERM' });
  });

  it('logs and ignores SIGHUP during start-up (it would otherwise end the process)', () => {
    // Prepare
    const h = harness();

    // Act
    h.signals.emit('SIGHUP');

    // Assess
    expect(h.exits).toEqual([]);
    expect(h.lines().at(-1)?.msg).toBe('reload requested during start-up: the settings being loaded are current');
  });

  it('once running, SIGHUP reloads and SIGTERM drains, exiting with what the drain returns', async () => {
    // Prepare
    const h = harness();
    const reloads: number[] = [];
    h.lifecycle.running({ stop: async () => 0, reload: async () => void reloads.push(1), guardMs: 10_000 });

    // Act
    h.signals.emit('SIGHUP');
    h.signals.emit('SIGINT');
    await vi.advanceTimersByTimeAsync(0);

    // Assess
    expect(reloads).toEqual([1]);
    expect(h.exits).toEqual([0]);
  });

  it('exits 130 at once on a second signal during the drain', async () => {
    // Prepare
    const h = harness();
    h.lifecycle.running({ stop: () => new Promise<number>(() => {}), reload: async () => {}, guardMs: 10_000 });

    // Act
    h.signals.emit('SIGTERM');
    h.signals.emit('SIGTERM');

    // Assess
    expect(h.exits).toEqual([EXIT_FORCED]);
    expect(h.lines().at(-1)?.msg).toBe('second signal: exiting now; unfinished jobs stay in the queue');
  });

  it('forces the exit (130) when the drain hangs past its guard', async () => {
    // Prepare
    const h = harness();
    h.lifecycle.running({ stop: () => new Promise<number>(() => {}), reload: async () => {}, guardMs: 5_000 });

    // Act
    h.signals.emit('SIGTERM');
    await vi.advanceTimersByTimeAsync(4_999);
    const before = [...h.exits];
    await vi.advanceTimersByTimeAsync(1);

    // Assess
    expect(before).toEqual([]);
    expect(h.exits).toEqual([EXIT_FORCED]);
  });

  it('exits 1 when the drain itself fails, with the error logged', async () => {
    // Prepare
    const h = harness();
    h.lifecycle.running({ stop: async () => Promise.reject(new Error('flush failed')), reload: async () => {}, guardMs: 5_000 });

    // Act
    h.signals.emit('SIGTERM');
    await vi.advanceTimersByTimeAsync(0);

    // Assess
    expect(h.exits).toEqual([1]);
    expect(h.lines().at(-1)).toMatchObject({ msg: 'stopping failed', err: { message: 'flush failed' } });
  });

  it('ignores SIGHUP once stopping', async () => {
    // Prepare
    const h = harness();
    const reloads: number[] = [];
    h.lifecycle.running({ stop: () => new Promise<number>(() => {}), reload: async () => void reloads.push(1), guardMs: 5_000 });

    // Act
    h.signals.emit('SIGTERM');
    h.signals.emit('SIGHUP');

    // Assess
    expect(reloads).toEqual([]);
  });

  it('removes its handlers on close', () => {
    // Prepare
    const h = harness();

    // Act
    h.lifecycle.close();

    // Assess
    expect(['SIGTERM', 'SIGINT', 'SIGHUP'].map((s) => h.signals.listenerCount(s))).toEqual([0, 0, 0]);
  });

  it('names the signal in the lines of a drain, of a second signal, and of a hung drain', async () => {
    // Prepare
    const h = harness();
    const signals: NodeJS.Signals[] = [];
    h.lifecycle.running({ stop: (signal) => (signals.push(signal), new Promise<number>(() => {})), reload: async () => {}, guardMs: 5_000 });

    // Act
    h.signals.emit('SIGINT');
    await vi.advanceTimersByTimeAsync(5_000);
    h.signals.emit('SIGTERM');

    // Assess
    expect(signals).toEqual(['SIGINT']);
    expect(h.lines().map((l) => [l.level, l.signal, l.msg])).toEqual([
      ['info', 'SIGINT', 'stopping: no new jobs are received; draining the jobs in flight'],
      ['error', undefined, 'the drain did not finish in time; exiting'],
      ['warn', 'SIGTERM', 'second signal: exiting now; unfinished jobs stay in the queue'],
    ]);
  });
});
