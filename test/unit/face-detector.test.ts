// The detector's pool (piscina, one real thread with the real models) as the worker calls it: what
// it checks before a thread works, what it passes to the thread and hands back, its signal, and
// `check`'s probe. The detection itself is tested on photographs in test/integration/face-detector.test.ts.
import { availableParallelism } from 'node:os';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFaceDetector, MAX_FACE_THREADS, type FaceDetector } from '../../src/face/detector.ts';
import type { Pixels } from '../../src/face/pixels.ts';
import { planRegions } from '../../src/face/plan.ts';
import { PROBE_JPEG_BASE64 } from '../../src/face/probe-image.ts';
import { rejectionOf } from './helpers.ts';

let shared: FaceDetector | undefined;
/** One thread for the whole file, started by the first test that needs it (inside a test, so a failure to start fails that test). */
const detector = () => (shared ??= createFaceDetector({ threads: 1 }));
/** The probe image's pixels: 128 × 128 RGB, one face. */
let probePixels: Pixels;

beforeAll(async () => {
  const { data, info } = await sharp(Buffer.from(PROBE_JPEG_BASE64, 'base64')).raw().toBuffer({ resolveWithObject: true });
  probePixels = { data, width: info.width, height: info.height, channels: 3 };
});

afterAll(async () => {
  await shared?.close();
});

describe('createFaceDetector', () => {
  it.each([0, 1.5, MAX_FACE_THREADS + 1, Number.NaN])('refuses %s threads before starting any', (threads) => {
    // Act / Assess
    expect(() => createFaceDetector({ threads })).toThrow(new RangeError(`threads must be a whole number from 1 to ${MAX_FACE_THREADS}, not ${threads}`));
  });

  it('has one thread per core unless told', async () => {
    // Act
    const byDefault = createFaceDetector();
    await byDefault.close();

    // Assess
    expect(byDefault.threads).toBe(availableParallelism());
    expect(detector().threads).toBe(1);
  });
});

describe('detect', () => {
  it('finds the probe image\u2019s one face, inside the picture, and says what it ran', async () => {
    // Act
    const detection = await detector().detect(probePixels);

    // Assess
    expect(detection.faces).toHaveLength(1);
    const [face] = detection.faces;
    expect(face?.score).toBeGreaterThanOrEqual(0.5);
    expect(face?.x).toBeGreaterThanOrEqual(0);
    expect((face?.x ?? 0) + (face?.width ?? 0)).toBeLessThanOrEqual(128);
    expect(detection.regions).toBe(planRegions(128, 128, 64).length);
    expect(detection.proposals).toBeGreaterThanOrEqual(1);
    expect(detection.ms).toBeGreaterThan(0);
    expect(detection.cpuMs).toBeGreaterThan(0);
    expect(Object.keys(detection).sort()).toEqual(['cpuMs', 'faces', 'ms', 'proposals', 'regions']);
  });

  it('passes the minimum score and the smallest face size to the thread', async () => {
    // Prepare: in a 320-pixel picture a smallest face of 16 pixels needs a finer look than the default 64
    // (small, so Stryker's instrumented resampling stays well inside the test's time)
    const { faces } = await detector().detect(probePixels);
    const score = faces[0]?.score ?? 1;
    const grey = { data: new Uint8Array(320 * 320).fill(128), width: 320, height: 320, channels: 1 as const };

    // Act
    const above = await detector().detect(probePixels, { minScore: Math.min(1, score + 0.001) });
    const small = await detector().detect(grey, { minFaceSize: 16 });

    // Assess
    expect(score).toBeLessThan(1);
    expect(above.faces).toEqual([]);
    expect(planRegions(320, 320, 16).length).not.toBe(planRegions(320, 320, 64).length);
    expect(small.regions).toBe(planRegions(320, 320, 16).length);
  });

  it('takes a minimum score from 0 to 1 and refuses one outside, and a smallest face that is not positive, before a thread works', async () => {
    // Act
    const errors = await Promise.all([
      rejectionOf(() => detector().detect(probePixels, { minScore: -0.01 })),
      rejectionOf(() => detector().detect(probePixels, { minScore: 1.01 })),
      rejectionOf(() => detector().detect(probePixels, { minScore: Number.NaN })),
      rejectionOf(() => detector().detect(probePixels, { minFaceSize: 0 })),
      rejectionOf(() => detector().detect(probePixels, { minFaceSize: Number.NaN })),
      rejectionOf(() => detector().detect({ ...probePixels, width: 127 })),
    ]);
    const [none, all] = await Promise.all([detector().detect(probePixels, { minScore: 1 }), detector().detect(probePixels, { minScore: 0 })]);

    // Assess
    expect(errors.map((e) => (e as Error).message)).toEqual([
      'minScore must be between 0 and 1, not -0.01',
      'minScore must be between 0 and 1, not 1.01',
      'minScore must be between 0 and 1, not NaN',
      'minFaceSize must be positive, not 0',
      'minFaceSize must be positive, not NaN',
      '127×128×3 pixels need 48768 bytes, not 49152',
    ]);
    for (const error of errors) expect(error).toBeInstanceOf(RangeError);
    expect(none.faces).toEqual([]);
    expect(all.faces.length).toBeGreaterThanOrEqual(1);
  });

  it('gives up a detection whose signal has aborted', async () => {
    // Act
    const error = await rejectionOf(() => detector().detect(probePixels, { signal: AbortSignal.abort() }));

    // Assess
    expect(error).toMatchObject({ name: 'AbortError' });
  });
});

describe('probe', () => {
  it('finds the one face of the built-in image, naming the model, the backend and the threads', async () => {
    // Act
    const before = performance.now();
    const result = await detector().probe();
    const elapsed = performance.now() - before;

    // Assess
    expect(result).toMatchObject({ ok: true, faces: 1 });
    expect(result.ms).toBeLessThanOrEqual(elapsed);
    expect(result.message).toMatch(/^BlazeFace full-range \+ short-range \(@vladmandic\/human-models [\d.]+\) on wasm, 1 thread\(s\): 1 face\(s\) in the probe image \(score 0\.\d\d\)$/);
    expect(result.tensors).toBeGreaterThan(0);
    expect(result.ms).toBeGreaterThan(0);
  });

  it('says why when the model does not load, and does not throw', async () => {
    // Prepare
    const broken = createFaceDetector({ threads: 1, modelDirectory: '/nonexistent/models' });

    // Act
    const before = performance.now();
    const result = await broken.probe().finally(() => broken.close());
    const elapsed = performance.now() - before;

    // Assess
    expect(result.ms).toBeLessThanOrEqual(elapsed);
    expect(result).toMatchObject({ ok: false, faces: 0, tensors: 0 });
    expect(result.message).toMatch(/^the face model did not load: .*\/nonexistent\/models\/blazeface-back\.json/);
    expect(result.ms).toBeGreaterThan(0);
  });
});
