// The detector's reported score: the two models' combined score, calibrated so that 0.5 is the
// measured boundary between faces and non-faces.
import { describe, expect, it } from 'vitest';
import { EVEN_SCORE, PROPOSER_WEIGHT, calibrated, combined, uncalibrated } from '../../src/face/score.ts';

describe('combined', () => {
  it('weighs the verifier four times the proposer: a cat\'s head the proposer is sure of scores under a small face the verifier is sure of', () => {
    // Act: as measured on the validation set's tuning part
    const catHead = combined(0.8, 0.6);
    const threeQuarterFace = combined(0.61, 0.78);

    // Assess
    expect(PROPOSER_WEIGHT).toBe(0.2);
    expect(catHead).toBeCloseTo(0.8 ** 0.2 * 0.6 ** 0.8);
    expect(catHead).toBeLessThan(EVEN_SCORE);
    expect(threeQuarterFace).toBeGreaterThan(EVEN_SCORE);
    expect(combined(1, 1)).toBe(1);
    expect(combined(0, 1)).toBe(0);
  });
});

describe('calibrated', () => {
  it('reports EVEN_SCORE as 0.5, keeps 0 and 1, and never reorders two scores', () => {
    // Act / Assess
    expect(calibrated(EVEN_SCORE)).toBeCloseTo(0.5);
    expect(calibrated(0)).toBe(0);
    expect(calibrated(1)).toBeCloseTo(1);
    const steps = Array.from({ length: 101 }, (_, i) => calibrated(i / 100));
    for (let i = 1; i < steps.length; i++) expect(steps[i] as number).toBeGreaterThan(steps[i - 1] as number);
  });

  it('is undone by uncalibrated, so FACE_MIN_SCORE can be turned into the combined score a proposal needs', () => {
    for (const combined of [0, 0.1, 0.5, EVEN_SCORE, 0.8, 0.99, 1]) expect(uncalibrated(calibrated(combined))).toBeCloseTo(combined);
    expect(uncalibrated(0.5)).toBeCloseTo(EVEN_SCORE);
  });
});
