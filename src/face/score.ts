/**
 * The score the detector reports for a face: the two models' scores combined (their geometric mean:
 * both must agree), then calibrated so that FACE_MIN_SCORE's default, 0.5, is the boundary measured
 * on the validation set's tuning part. Pure.
 */

/**
 * The combined score reported as 0.5: midway between the highest a non-face reached (0.66, the
 * astronaut upside down) and the lowest a face reached (0.69, the cameraman's three-quarter face in
 * a group) on the validation set's tuning part. A narrow margin: see docs/images.md, *Face check*.
 */
export const EVEN_SCORE = 0.675;

/** The combined score as reported: piecewise linear, EVEN_SCORE at 0.5, 0 and 1 kept. */
export function calibrated(combined: number): number {
  return combined < EVEN_SCORE ? (0.5 * combined) / EVEN_SCORE : 0.5 + (0.5 * (combined - EVEN_SCORE)) / (1 - EVEN_SCORE);
}

/** The combined score a reported score stands for (calibrated's inverse). */
export function uncalibrated(score: number): number {
  return score < 0.5 ? (score * EVEN_SCORE) / 0.5 : EVEN_SCORE + ((score - 0.5) * (1 - EVEN_SCORE)) / 0.5;
}
