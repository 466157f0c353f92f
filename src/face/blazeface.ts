/**
 * Reading MediaPipe BlazeFace's raw outputs: anchors, box regression, the six keypoints, and
 * non-maximum suppression. Pure arithmetic on the numbers the network returns, so it is unit-tested
 * without a model. (Written from the published model cards and @vladmandic/human's blazeface.ts,
 * MIT, for the anchor scheme; not copied.)
 *
 * A BlazeFace network made for input size S (128 short-range, 256 full-range as shipped in
 * @vladmandic/human) predicts at two grids: stride S/16 with 2 anchors per cell and stride S/8 with
 * 6 per cell — 512 + 384 = 896 anchors on an S × S input, the finer grid first (more on a larger
 * input: model-shape.ts lets the full-range one take any size). For each anchor it gives a logit and
 * 16 numbers in network pixels: the box centre's offset from the anchor, the box's width and
 * height, and six keypoints' offsets from the anchor (right eye, left eye, nose, mouth, right ear,
 * left ear — "right" being the person's, on the left of the picture).
 */

export interface Point {
  readonly x: number;
  readonly y: number;
}

/** A face as the network saw it, in network pixels. */
export interface RawFace {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly score: number;
  /** The person's right eye (left in the picture of an upright face), then the left eye. */
  readonly rightEye: Point;
  readonly leftEye: Point;
}

/** Anchors of a network run on its own input size (128 or 256): two grids, 512 + 384. */
export const ANCHORS_PER_MODEL = 896;
const VALUES_PER_ANCHOR = 16;

/** A network input's size in network pixels, and the size the model was made for (which sets its grids' strides). */
export interface NetworkInput {
  readonly width: number;
  readonly height: number;
  readonly modelSize: number;
}

/**
 * Anchor centres in network pixels, in the order of the network's outputs (finer grid first, row by
 * row). The grids' strides are the model's (modelSize/16 and modelSize/8); an input larger than
 * modelSize has more cells, not larger ones — the network is convolutional up to its last reshape.
 */
export function anchorCentres(input: NetworkInput): Point[] {
  const levels = [
    { stride: input.modelSize / 16, perCell: 2 },
    { stride: input.modelSize / 8, perCell: 6 },
  ];
  const anchors: Point[] = [];
  for (const { stride, perCell } of levels) {
    for (let row = 0; row < Math.ceil(input.height / stride); row++) {
      for (let col = 0; col < Math.ceil(input.width / stride); col++) {
        for (let n = 0; n < perCell; n++) anchors.push({ x: (col + 0.5) * stride, y: (row + 0.5) * stride });
      }
    }
  }
  return anchors;
}

const sigmoid = (logit: number) => 1 / (1 + Math.exp(-Math.max(-100, Math.min(100, logit))));

/**
 * The candidate faces scoring at least `minScore`, decoded: `logits` has one value per anchor,
 * `regressors` 16 per anchor, both in anchor order.
 */
export function decodeFaces(logits: ArrayLike<number>, regressors: ArrayLike<number>, input: NetworkInput, minScore: number): RawFace[] {
  const anchors = anchorCentres(input);
  if (logits.length !== anchors.length || regressors.length !== anchors.length * VALUES_PER_ANCHOR) {
    throw new RangeError(
      `a ${input.width}×${input.height} input of a ${input.modelSize}-pixel BlazeFace gives ${anchors.length} anchors; got ${logits.length} logits and ${regressors.length} regressor values`,
    );
  }
  const faces: RawFace[] = [];
  for (let i = 0; i < anchors.length; i++) {
    const score = sigmoid(logits[i] as number);
    if (score < minScore) continue;
    const a = anchors[i] as Point;
    const r = (k: number) => regressors[i * VALUES_PER_ANCHOR + k] as number;
    const [cx, cy, width, height] = [a.x + r(0), a.y + r(1), r(2), r(3)];
    faces.push({
      x: cx - width / 2,
      y: cy - height / 2,
      width,
      height,
      score,
      rightEye: { x: a.x + r(4), y: a.y + r(5) },
      leftEye: { x: a.x + r(6), y: a.y + r(7) },
    });
  }
  return faces;
}

interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** Intersection over union of two boxes. */
export function iou(a: Box, b: Box): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a.width * a.height + b.width * b.height - inter);
}

/** Greedy non-maximum suppression: highest score first, a box dropped when it overlaps a kept one by `maxIou` or more. */
export function suppress<T extends Box & { readonly score: number }>(faces: readonly T[], maxIou: number): T[] {
  const kept: T[] = [];
  for (const face of [...faces].sort((a, b) => b.score - a.score)) {
    if (!kept.some((k) => iou(face, k) >= maxIou)) kept.push(face);
  }
  return kept;
}

/**
 * How far the eye line is turned from level, in degrees, -180..180: 0 for an upright face, about
 * ±90 for one lying on its side, about ±180 for one upside down. (From the person's right eye to
 * the left eye, which in an upright face points right in the picture; y grows downwards.)
 */
export function eyeLineTilt(face: Pick<RawFace, 'rightEye' | 'leftEye'>): number {
  return (Math.atan2(face.leftEye.y - face.rightEye.y, face.leftEye.x - face.rightEye.x) * 180) / Math.PI;
}
