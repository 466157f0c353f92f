// The face check's validation set (test/face/validation.ts) against the real detector: every face at
// or above FACE_MIN_SIZE up to 70 % of the shorter side with a tilt up to 60° found and accepted,
// nothing reported on photos without a person or on faces turned 90°/180°/270°, two and three faces
// counted, a face under the minimum never accepted. The tuning part and the held-out part (never
// looked at while the detector's thresholds were chosen) are reported and asserted separately.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFaceDetector, type FaceDetector } from '../../src/face/detector.ts';
import { faceVerdict } from '../../src/face/verdict.ts';
import { judge, validationSet, type Part, type ValidationCase } from '../face/validation.ts';

const RULES = { minScore: 0.5, minSize: 64 };
const THREADS = 2;

let detector: FaceDetector;

beforeAll(() => {
  detector = createFaceDetector({ threads: THREADS });
});

afterAll(async () => {
  await detector.close();
});

async function failuresOf(cases: readonly ValidationCase[]): Promise<string[]> {
  const queue = [...cases];
  const failures: string[] = [];
  // As many cases in flight as threads: composing the next picture overlaps a detection.
  await Promise.all(
    Array.from({ length: THREADS }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        const detection = await detector.detect(await item.pixels(), { minScore: RULES.minScore, minFaceSize: RULES.minSize });
        const verdict = faceVerdict(detection.faces, { ...RULES, scaleToStored: 1 });
        const { pass, said } = judge(item.expect, verdict, detection.faces, RULES.minSize);
        if (!pass) failures.push(`${item.name} (${item.expect.kind}): ${said}`);
      }
    }),
  );
  return failures.sort();
}

describe.each(['tuning', 'held-out'] as const)('the validation set, %s part', (part: Part) => {
  it('every case answered as a correct face check answers it', async () => {
    // Prepare
    const cases = validationSet().filter((c) => c.part === part);

    // Act
    const failures = await failuresOf(cases);

    // Assess: the set has every kind, and not one case is wrong
    expect(new Set(cases.map((c) => c.expect.kind))).toEqual(new Set(['one', 'several', 'too-small', 'none']));
    expect(cases.length).toBeGreaterThan(40);
    expect(failures).toEqual([]);
  });
});
