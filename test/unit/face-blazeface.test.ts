// Reading BlazeFace's raw outputs: the anchors, a box and its eyes decoded from one anchor's numbers,
// non-maximum suppression and the eye line's tilt.
import { describe, expect, it } from 'vitest';
import { ANCHORS_PER_MODEL, anchorCentres, decodeFaces, eyeLineTilt, iou, suppress } from '../../src/face/blazeface.ts';
import { thrownBy } from './helpers.ts';

const logit = (p: number) => Math.log(p / (1 - p));
const SHORT_RANGE = { width: 128, height: 128, modelSize: 128 };

describe('anchorCentres', () => {
  it('gives 896 anchors for both models on their own input size: the finer grid (2 per cell) first, then the coarser (6 per cell)', () => {
    for (const size of [128, 256]) {
      // Act
      const anchors = anchorCentres({ width: size, height: size, modelSize: size });

      // Assess
      expect(anchors).toHaveLength(ANCHORS_PER_MODEL);
      const fine = size / 16;
      const coarse = size / 8;
      expect(anchors.slice(0, 2)).toEqual([{ x: fine / 2, y: fine / 2 }, { x: fine / 2, y: fine / 2 }]);
      expect(anchors[2]).toEqual({ x: fine * 1.5, y: fine / 2 });
      expect(anchors[511]).toEqual({ x: size - fine / 2, y: size - fine / 2 });
      expect(anchors[512]).toEqual({ x: coarse / 2, y: coarse / 2 });
      expect(anchors[895]).toEqual({ x: size - coarse / 2, y: size - coarse / 2 });
    }
  });

  it('gives more cells of the model\'s own strides on a larger input, row by row', () => {
    // Act: the 256 model on a 416 × 320 input: strides 16 and 32
    const anchors = anchorCentres({ width: 416, height: 320, modelSize: 256 });

    // Assess: 26 × 20 × 2 + 13 × 10 × 6, as the network's reshapes give them
    expect(anchors).toHaveLength(1040 + 780);
    expect(anchors[2 * 26]).toEqual({ x: 8, y: 24 });
    expect(anchors[1039]).toEqual({ x: 408, y: 312 });
    expect(anchors[1040 + 6 * 13]).toEqual({ x: 16, y: 48 });
    expect(anchors.at(-1)).toEqual({ x: 400, y: 304 });
  });
});

describe('decodeFaces', () => {
  it('decodes a box, its score and its eyes from one anchor, relative to the anchor centre', () => {
    // Prepare: anchor 2 of a 128 input is centred at (12, 4); all other anchors score ~0
    const logits = new Float32Array(896).fill(-20);
    const regressors = new Float32Array(896 * 16);
    logits[2] = logit(0.8);
    regressors.set([3, 5, 40, 50, -10, -8, 10, -6], 2 * 16);

    // Act
    const faces = decodeFaces(logits, regressors, SHORT_RANGE, 0.5);

    // Assess
    expect(faces).toHaveLength(1);
    const [face] = faces;
    expect(face?.score).toBeCloseTo(0.8);
    expect(face).toMatchObject({ x: 12 + 3 - 20, y: 4 + 5 - 25, width: 40, height: 50, rightEye: { x: 2, y: -4 }, leftEye: { x: 22, y: -2 } });
  });

  it('leaves out anchors under the minimum score, and refuses outputs of the wrong shape', () => {
    // Prepare
    const logits = new Float32Array(896).fill(logit(0.3));
    const regressors = new Float32Array(896 * 16);

    // Act
    const none = decodeFaces(logits, regressors, SHORT_RANGE, 0.31);
    const all = decodeFaces(logits, regressors, SHORT_RANGE, 0.29);
    const wrong = thrownBy(() => decodeFaces(logits.subarray(1), regressors, SHORT_RANGE, 0.5));

    // Assess
    expect(none).toEqual([]);
    expect(all).toHaveLength(896);
    expect(wrong).toBeInstanceOf(RangeError);
  });
});

describe('suppress', () => {
  it('keeps the best of overlapping boxes and every separate one, best first', () => {
    // Prepare
    const boxes = [
      { x: 0, y: 0, width: 10, height: 10, score: 0.6 },
      { x: 1, y: 1, width: 10, height: 10, score: 0.9 },
      { x: 50, y: 0, width: 10, height: 10, score: 0.7 },
    ];

    // Act
    const kept = suppress(boxes, 0.3);

    // Assess
    expect(kept.map((b) => b.score)).toEqual([0.9, 0.7]);
    expect(iou(boxes[0] as (typeof boxes)[0], boxes[1] as (typeof boxes)[0])).toBeCloseTo(81 / 119);
  });
});

describe('eyeLineTilt', () => {
  it('is 0 for level eyes, 90 for a face turned clockwise onto its side, ±180 upside down', () => {
    // Act / Assess: the person's right eye is on the picture's left in an upright face
    expect(eyeLineTilt({ rightEye: { x: 10, y: 10 }, leftEye: { x: 30, y: 10 } })).toBe(0);
    expect(eyeLineTilt({ rightEye: { x: 10, y: 10 }, leftEye: { x: 10, y: 30 } })).toBe(90);
    expect(Math.abs(eyeLineTilt({ rightEye: { x: 30, y: 10 }, leftEye: { x: 10, y: 10 } }))).toBe(180);
    expect(eyeLineTilt({ rightEye: { x: 10, y: 20 }, leftEye: { x: 30, y: 0 } })).toBeCloseTo(-45);
  });
});

describe('decodeFaces and suppress: the edges', () => {
  it('keeps an anchor scoring exactly the minimum, and refuses regressors of the wrong length', () => {
    // Prepare: logit 0 is a score of exactly 0.5
    const logits = new Float32Array(896).fill(-20);
    logits[5] = 0;
    const regressors = new Float32Array(896 * 16);

    // Act
    const faces = decodeFaces(logits, regressors, SHORT_RANGE, 0.5);
    const wrong = thrownBy(() => decodeFaces(logits, regressors.subarray(16), SHORT_RANGE, 0.5));

    // Assess
    expect(faces.map((f) => f.score)).toEqual([0.5]);
    expect(wrong).toBeInstanceOf(RangeError);
    expect((wrong as Error).message).toBe('a 128×128 input of a 128-pixel BlazeFace gives 896 anchors; got 896 logits and 14320 regressor values');
  });

  it('gives no overlap to boxes apart on either axis or both, however they lie', () => {
    // Prepare
    const a = { x: 0, y: 0, width: 10, height: 10 };

    // Act / Assess
    expect(iou(a, { x: 20, y: 0, width: 10, height: 10 })).toBe(0);
    expect(iou(a, { x: 0, y: 20, width: 10, height: 10 })).toBe(0);
    expect(iou(a, { x: 30, y: 30, width: 10, height: 10 })).toBe(0);
    expect(iou(a, { x: 10, y: 0, width: 10, height: 10 })).toBe(0);
  });

  it('drops a box that overlaps a kept one by exactly the limit', () => {
    // Prepare: the second box is half the first: IoU exactly 0.5
    const boxes = [
      { x: 0, y: 0, width: 10, height: 10, score: 0.9 },
      { x: 0, y: 0, width: 10, height: 5, score: 0.8 },
    ];

    // Act / Assess
    expect(iou(boxes[0] as (typeof boxes)[0], boxes[1] as (typeof boxes)[0])).toBe(0.5);
    expect(suppress(boxes, 0.5).map((b) => b.score)).toEqual([0.9]);
    expect(suppress(boxes, 0.51).map((b) => b.score)).toEqual([0.9, 0.8]);
  });
});
