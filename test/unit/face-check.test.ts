// FACE_CHECK=one as the worker runs it (src/worker/face-check.ts): the detector's threads as configured,
// each job's check with its rules, and the line for a thread — a turn waited for through the job's
// `waitFor`, left when the job is cancelled, given back when the detection fails. One real thread with
// the real models for the whole file, as in face-detector.test.ts.
import { availableParallelism } from 'node:os';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.ts';
import type { FaceCheck, WaitFor } from '../../src/enroll/enroll.ts';
import { createFaceDetector, type FaceDetector } from '../../src/face/detector.ts';
import { PROBE_JPEG_BASE64 } from '../../src/face/probe-image.ts';
import type { Preview } from '../../src/image/decode.ts';
import { startFaceChecking, type FaceChecking } from '../../src/worker/face-check.ts';
import { until, within } from '../support/wait.ts';
import { env } from './config-fixtures.ts';
import { rejectionOf } from './helpers.ts';

const ONE_THREAD = parseConfig(env({ FACE_CHECK: 'one', FACE_THREADS: '1' }));

let shared: FaceDetector | undefined;
/** One thread for the whole file, started by the first test that needs it (inside a test, so a failure to start fails that test). */
const detector = () => (shared ??= createFaceDetector({ threads: 1 }));

/** FACE_CHECK=one on the file's one thread: a check of its own (its own line for the thread) for each test. */
function checking(): FaceChecking {
  const started = startFaceChecking(ONE_THREAD, detector);
  if (!started) throw new Error('FACE_CHECK=one started no face checking');
  return started;
}

/** The probe image as the decode's preview: 128 × 128 RGB, one face. */
let probe: Preview;

beforeAll(async () => {
  const { data, info } = await sharp(Buffer.from(PROBE_JPEG_BASE64, 'base64')).raw().toBuffer({ resolveWithObject: true });
  probe = { data, width: info.width, height: info.height, channels: 3, scale: 1 };
});

afterAll(async () => {
  await shared?.close();
});

const options = (more: { signal?: AbortSignal; waitFor?: WaitFor; minScore?: number } = {}) => ({ minScore: 0.5, minFaceSize: 32, signal: new AbortController().signal, ...more });

/** A turn that, once it comes, is held until the test opens the gate: a detection that takes as long as the test wants. */
function heldTurn(events: string[], name: string): { waitFor: WaitFor; open: () => void } {
  let open = () => {};
  const gate = new Promise<void>((resolve) => (open = resolve));
  return {
    waitFor: (wait) =>
      wait.then(async (turn) => {
        events.push(`${name} turn`);
        await gate;
        return turn;
      }),
    open: () => {
      events.push(`${name} gate opened`);
      open();
    },
  };
}

/** Records when a turn comes. */
const noted =
  (events: string[], name: string): WaitFor =>
  (wait) =>
    wait.then((turn) => {
      events.push(`${name} turn`);
      return turn;
    });

describe('startFaceChecking', () => {
  it('starts nothing with FACE_CHECK=off', () => {
    expect(startFaceChecking(parseConfig(env({ FACE_CHECK: 'off', FACE_THREADS: '1' })))).toBeUndefined();
  });

  it('starts FACE_THREADS threads, one per core unless told', async () => {
    // Act
    const byDefault = startFaceChecking(parseConfig(env({ FACE_CHECK: 'one' })));
    const told = startFaceChecking(ONE_THREAD);
    await Promise.all([byDefault?.close(), told?.close()]);

    // Assess
    expect(byDefault?.threads).toBe(availableParallelism());
    expect(told?.threads).toBe(1);
  });

  it("gives each job a check with that job's rules", () => {
    // Act
    const check: FaceCheck = checking().forJob(parseConfig(env({ FACE_CHECK: 'one', FACE_MIN_SCORE: '0.8', FACE_MIN_SIZE: '100' })));

    // Assess
    expect(check.minScore).toBe(0.8);
    expect(check.minSize).toBe(100);
  });

  it('finds the faces with the options the job gives', async () => {
    // Prepare
    const check = checking().forJob(ONE_THREAD);

    // Act
    const found = await check.detect(probe, options());
    const above = await check.detect(probe, options({ minScore: 1 }));

    // Assess
    expect(found.faces).toHaveLength(1);
    expect(found.faces[0]?.score).toBeLessThan(1);
    expect(found.ms).toBeGreaterThan(0);
    expect(above.faces).toEqual([]);
  });

  it("makes a second detection wait, through its job's waitFor, until the one thread is free", async () => {
    // Prepare
    const check = checking().forJob(ONE_THREAD);
    const events: string[] = [];
    const first = heldTurn(events, 'first');

    // Act
    const detections = [check.detect(probe, options({ waitFor: first.waitFor })), check.detect(probe, options({ waitFor: noted(events, 'second') }))];
    await until('the first detection to have the thread', () => events.includes('first turn'), 5_000);
    first.open();
    const [a, b] = await Promise.all(detections);

    // Assess
    expect(events).toEqual(['first turn', 'first gate opened', 'second turn']);
    expect([a?.faces.length, b?.faces.length]).toEqual([1, 1]);
  });

  it('takes a job that is cancelled while it waits out of the line at once', async () => {
    // Prepare
    const check = checking().forJob(ONE_THREAD);
    const events: string[] = [];
    const first = heldTurn(events, 'first');
    const cancel = new AbortController();
    const reason = new Error('the job was cancelled');
    const detecting = check.detect(probe, options({ waitFor: first.waitFor }));
    await until('the first detection to have the thread', () => events.includes('first turn'), 5_000);
    const waiting = rejectionOf(() => check.detect(probe, options({ signal: cancel.signal, waitFor: noted(events, 'cancelled') })));

    // Act
    cancel.abort(reason);
    const error = await within(waiting, 2_000, 'still waiting');
    first.open();
    await detecting;
    const next = await check.detect(probe, options({ waitFor: noted(events, 'next') }));

    // Assess
    expect(error).toBe(reason);
    expect(events).toEqual(['first turn', 'first gate opened', 'next turn']);
    expect(next.faces).toHaveLength(1);
  });

  it('gives the thread back when the detection fails', async () => {
    // Prepare
    const check = checking().forJob(ONE_THREAD);

    // Act
    const error = await rejectionOf(() => check.detect({ ...probe, width: 127 }, options()));
    const next = await within(check.detect(probe, options()), 2_000, 'no turn');

    // Assess
    expect(error).toBeInstanceOf(RangeError);
    expect(next).toMatchObject({ faces: [expect.objectContaining({ width: expect.any(Number) })] });
  });

  it('probes the thread', async () => {
    // Act
    const result = await checking().probe();

    // Assess
    expect(result).toMatchObject({ ok: true, faces: 1 });
    expect(result.message).toContain('1 thread(s)');
  });

  it('closes the threads once the running detection is done', async () => {
    // Prepare
    const checks = checking();
    const check = checks.forJob(ONE_THREAD);
    const events: string[] = [];
    let closing: Promise<void> | undefined;

    // Act: close is called once the detection is on the thread (the turn came, and the pool was given the task in the same run)
    const detecting = check.detect(probe, {
      ...options(),
      waitFor: (wait) =>
        wait.then((turn) => {
          setImmediate(() => {
            closing = (async () => {
              await checks.close();
              events.push('closed');
            })();
          });
          return turn;
        }),
    });
    const found = await detecting;
    events.push('detected');
    await until('close to be called', () => closing !== undefined, 5_000);
    await closing;
    shared = undefined;

    // Assess
    expect(found.faces).toHaveLength(1);
    expect(events).toEqual(['detected', 'closed']);
  });
});
