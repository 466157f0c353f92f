/**
 * Where the detector looks: the regions of the image the proposing network is run on, and how
 * boxes found in several regions are merged. Pure: the numbers below were measured (see
 * docs/images.md "Face check"), the arithmetic is unit-tested.
 *
 * The proposing network (BlazeFace full-range, made for PROPOSAL_INPUT = 256) is convolutional up to
 * its last reshape, so it runs on an input of any size in steps of GRID (model-shape.ts): a larger
 * input has more anchors, each seeing what it sees at 256. It finds a face from about NET_MIN_FACE =
 * 16 network pixels up to about the whole of a 256 input. (Faces of ~11 network pixels often still
 * score 0.8, and 12 passed the validation set's tuning part, but missed two faces of its held-out
 * part — a 73 px face at a tile's edge, a three-quarter face in a group; 16 misses none.)
 *
 * So two runs over the whole image, at two scales:
 * - coarse: the image's longer side at 256 network pixels, which finds every face from
 *   NET_MIN_FACE·L/256 image pixels up to the whole picture;
 * - fine, only when the smallest face that must be seen (`minFaceSize`) is smaller than that: the
 *   image scaled so such a face has NET_MIN_FACE network pixels, which finds it and every face up
 *   to the coarse run's smallest.
 * Network pixels cost the same wherever they are (~0.22 µs each on one core): the fine run on the
 * whole image costs what tiles of it cost, without tiles' overlap or padding to squares. Only when the
 * fine run would exceed MAX_NET_SIDE on a side (which bounds the WebAssembly heap, which never
 * shrinks) is it split into tiles, overlapping by at least the largest face the coarse run may
 * miss, so every face small enough to need the fine run lies whole inside one.
 */

import type { Region } from './pixels.ts';
import type { Face } from './verdict.ts';

/** The proposing network's own input size (BlazeFace full-range). */
export const PROPOSAL_INPUT = 256;
/** Its inputs are whole multiples of this (the coarser grid's stride): no anchor cell is cut. */
export const GRID = PROPOSAL_INPUT / 8;
/** Network pixels from which the proposing network finds a face. */
export const NET_MIN_FACE = 16;
/** The fine run's input is at most this many network pixels on a side; larger, it is tiled. */
export const MAX_NET_SIDE = 512;
/**
 * The coarse run's longer side when a fine run comes after it: it then has only the large faces to
 * find (the fine run finds every face up to FINE_BAND times the coarse run's smallest), and at 128
 * it costs a quarter of 256 (a face filling a 2048×1536 picture still scored 0.77).
 */
export const LARGE_FACE_INPUT = 128;
/** The fine run proposes faces up to this many times the coarse run's smallest. */
export const FINE_BAND = 2;
/** Tiles: no more than this many along a side (past that, tiles grow and their scale shrinks). */
export const MAX_TILES_PER_SIDE = 6;

const onGrid = (networkPixels: number) => Math.max(GRID, Math.ceil(networkPixels / GRID) * GRID);

/** The image part from (x, y), `width` × `height` image pixels, at `scale`, as a network input. */
function region(x: number, y: number, width: number, height: number, scale: number): Region {
  return { x, y, scale, width: onGrid(width * scale), height: onGrid(height * scale) };
}

/** Starts and length of tiles along one side of the image, at most `tile` long, overlapping by `overlap`. */
function tilesAlong(extent: number, tile: number, overlap: number): { starts: number[]; length: number } {
  if (extent <= tile) return { starts: [0], length: extent };
  // (A panorama's overlap can exceed a tile: then as many tiles as allowed.)
  const count = tile > overlap ? Math.min(MAX_TILES_PER_SIDE, Math.ceil((extent - overlap) / (tile - overlap))) : MAX_TILES_PER_SIDE;
  const length = Math.ceil((extent + (count - 1) * overlap) / count);
  const step = (extent - length) / (count - 1);
  return { starts: Array.from({ length: count }, (_, i) => Math.round(i * step)), length };
}

/**
 * The regions to run the proposing network on: the whole image at 256 on its longer side first,
 * then — when faces of `minFaceSize` would be under NET_MIN_FACE network pixels there — the image
 * at the scale that shows them at NET_MIN_FACE, whole or in tiles.
 */
export function planRegions(width: number, height: number, minFaceSize: number): Region[] {
  if (!(width >= 1 && height >= 1 && minFaceSize > 0)) {
    throw new RangeError(`cannot plan a detection of ${minFaceSize}-pixel faces in a ${width}×${height} image`);
  }
  const coarseScale = PROPOSAL_INPUT / Math.max(width, height);
  if (minFaceSize * coarseScale >= NET_MIN_FACE) return [region(0, 0, width, height, coarseScale)];
  // With a fine run below it, the coarse run only has to find the faces too large for that one.
  const largeScale = LARGE_FACE_INPUT / Math.max(width, height);
  const fineScale = NET_MIN_FACE / minFaceSize;
  // A face the coarse run may miss is under NET_MIN_FACE / coarseScale image pixels: tiles overlap
  // by that much (and a quarter more), so such a face lies whole in one of them.
  const overlap = Math.ceil((NET_MIN_FACE / largeScale) * 1.25);
  const tile = Math.floor(MAX_NET_SIDE / fineScale);
  const across = tilesAlong(width, tile, overlap);
  const down = tilesAlong(height, tile, overlap);
  // Past MAX_TILES_PER_SIDE tiles are longer than `tile`: shown smaller, so the heap stays bounded.
  const scale = Math.min(fineScale, MAX_NET_SIDE / Math.max(across.length, down.length));
  const whole = across.starts.length === 1 && down.starts.length === 1;
  // One run over the whole image is enough when even a face filling it is within what the network
  // was made for (256 network pixels; 345 scored 0.55, 384 nothing).
  if (whole && Math.min(width, height) * scale <= PROPOSAL_INPUT) return [region(0, 0, width, height, scale)];
  // Otherwise each run proposes in its own band of sizes: the fine run's larger boxes are the
  // coarse run's to find (a suit's collar at 77 network pixels proposed as a face at 0.70).
  const maxFace = FINE_BAND * (NET_MIN_FACE / largeScale);
  const fine = down.starts.flatMap((y) => across.starts.map((x) => ({ ...region(x, y, across.length, down.length, scale), maxFace })));
  return [region(0, 0, width, height, largeScale), ...fine];
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
