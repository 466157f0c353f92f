/**
 * Where the detector looks: the square regions of the image the proposing network is run on, and
 * how boxes found in several regions are merged. Pure: the numbers below were measured (see the
 * docs/images.md "Face check"), the arithmetic is unit-tested.
 *
 * The proposing network (BlazeFace full-range, PROPOSAL_INPUT = 256) sees a square region of the
 * image scaled to 256 × 256. It finds a face from about NET_MIN_FACE = 16 network pixels up to the
 * whole square. (Faces of ~11 network pixels often still score 0.8, and 12 passed the validation
 * set's tuning part at about half the cost on large pictures, but missed two faces of its held-out
 * part — a 73 px face at a tile's edge, a three-quarter face in a group; 16 misses none.)
 * So the whole image, padded to a square of its longer side L, is always one region: it finds every
 * face from NET_MIN_FACE·L/256. When the smallest face that must be seen (`minFaceSize`) is smaller
 * than that, the image is also covered by tiles, each a square of side T = 256·minFaceSize /
 * NET_MIN_FACE, overlapping by at least the largest face the whole-image run might miss, so every
 * face small enough to need a tile lies whole inside one.
 */

import type { Face } from './verdict.ts';

/** The proposing network's input size (BlazeFace full-range). */
export const PROPOSAL_INPUT = 256;
/** Network pixels from which the proposing network finds a face. */
export const NET_MIN_FACE = 16;
/** Tiles: no more than this many along a side (a 4000 px picture with 64 px faces needs 4). */
export const MAX_TILES_PER_SIDE = 6;

/** A square region of the image, in its pixels; it may reach past the image's right and bottom edges. */
export interface Region {
  readonly x: number;
  readonly y: number;
  readonly side: number;
}

/**
 * The regions to run the proposing network on: the whole image first, then tiles when faces of
 * `minFaceSize` would be under NET_MIN_FACE network pixels in it.
 */
export function planRegions(width: number, height: number, minFaceSize: number): Region[] {
  if (!(width >= 1 && height >= 1 && minFaceSize > 0)) {
    throw new RangeError(`cannot plan a detection of ${minFaceSize}-pixel faces in a ${width}×${height} image`);
  }
  const longer = Math.max(width, height);
  const whole: Region = { x: 0, y: 0, side: longer };
  // The largest tile that still shows a minFaceSize face at NET_MIN_FACE network pixels.
  const tile = Math.floor((PROPOSAL_INPUT * minFaceSize) / NET_MIN_FACE);
  if (tile >= longer) return [whole];
  // A face the whole-image run may miss is under NET_MIN_FACE·L/256 pixels: the tiles overlap by
  // that much (and a quarter more), so such a face lies whole in one of them.
  const overlap = Math.ceil(((NET_MIN_FACE * longer) / PROPOSAL_INPUT) * 1.25);
  const along = (extent: number) => {
    const count = Math.min(MAX_TILES_PER_SIDE, Math.max(1, Math.ceil((extent - overlap) / (tile - overlap))));
    const side = count === 1 ? Math.min(tile, extent) : Math.max(tile, Math.ceil((extent + (count - 1) * overlap) / count));
    const step = count === 1 ? 0 : (extent - side) / (count - 1);
    return { starts: Array.from({ length: count }, (_, i) => Math.round(i * step)), side };
  };
  const across = along(width);
  const down = along(height);
  const side = Math.max(across.side, down.side);
  const tiles = down.starts.flatMap((y) => across.starts.map((x) => ({ x, y, side })));
  return [whole, ...tiles];
}

function area(f: Face): number {
  return Math.max(0, f.width) * Math.max(0, f.height);
}

function overlap(a: Face, b: Face): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

/** Two boxes closer than this (intersection over union) are one face. */
export const SAME_FACE_IOU = 0.3;
/** A box lying this much inside a kept one is part of it (one face seen whole in one region and in part in a tile). */
export const PART_OF_FACE = 0.6;

/**
 * The faces of several regions of one image, each face once: highest score first, a box dropped
 * when it overlaps a kept one (IoU ≥ SAME_FACE_IOU) or lies mostly inside it (≥ PART_OF_FACE of its
 * area). Without this, one face seen by two regions would count as MULTIPLE_FACES.
 */
export function mergeFaces<T extends Face>(faces: readonly T[]): T[] {
  const kept: T[] = [];
  for (const face of [...faces].sort((a, b) => b.score - a.score)) {
    const duplicate = kept.some((k) => {
      const inter = overlap(face, k);
      const union = area(face) + area(k) - inter;
      return (union > 0 && inter / union >= SAME_FACE_IOU) || inter >= PART_OF_FACE * Math.min(area(face), area(k));
    });
    if (!duplicate) kept.push(face);
  }
  return kept;
}

/** A box clipped to the image (the network may place one slightly outside it). */
export function clipToImage(face: Face, width: number, height: number): Face {
  const x = Math.min(Math.max(face.x, 0), width);
  const y = Math.min(Math.max(face.y, 0), height);
  return {
    x,
    y,
    width: Math.max(0, Math.min(face.x + face.width, width) - x),
    height: Math.max(0, Math.min(face.y + face.height, height) - y),
    score: face.score,
  };
}
