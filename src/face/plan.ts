/**
 * Where the detector looks: the regions of the image the proposing network is run on, and how
 * boxes found in several regions are merged. Pure: the numbers below were measured (see
 * docs/images.md "Face check"), the arithmetic is unit-tested.
 *
 * The proposing network (BlazeFace full-range, made for PROPOSAL_INPUT = 256) is convolutional up to
 * its last reshape, so it runs on an input of any size in steps of GRID (model-shape.ts): a larger
 * input has more anchors, each seeing what it sees at 256. It finds a face from about NET_MIN_FACE =
 * 16 network pixels up to about the whole of a 256 input. (At 12 or 14 it missed small
 * three-quarter faces in groups of the validation set; 16 misses none.)
 *
 * So a coarse look at the whole image, its longer side L at 256 network pixels, finds every face
 * from NET_MIN_FACE·L/256 image pixels. When the smallest face that must be seen (`minFaceSize`) is
 * smaller than that, a fine look shows the image at the scale that gives such a face NET_MIN_FACE
 * network pixels (never enlarged past 1:1: no more detail to find there, only cost). Network pixels
 * cost the same wherever they are (~0.23 µs each on one core), so the fine look covers the whole
 * image in one input where it fits in MAX_NET_SIDE a side (which bounds the WebAssembly heap, which
 * never shrinks: +63 MiB at 512² against +23 at 256²); the coarse look then only has the large faces
 * to find, at LARGE_FACE_INPUT. Past MAX_NET_SIDE the fine look is tiled, the tiles overlapping by
 * the largest face the coarse look (then at 256, for a smaller overlap) may miss, so every face
 * small enough to need the fine look lies whole inside one. The fine look keeps only boxes up to
 * FINE_BAND times the coarse look's smallest: each look proposes in its own band of sizes.
 */

import type { Region } from './pixels.ts';
import type { Face } from './verdict.ts';

/** The proposing network's own input size (BlazeFace full-range). */
export const PROPOSAL_INPUT = 256;
/** Its inputs are whole multiples of this (the coarser grid's stride): no anchor cell is cut. */
export const GRID = PROPOSAL_INPUT / 8;
/** Network pixels from which the proposing network finds a face. */
export const NET_MIN_FACE = 16;
/** The fine look's input is at most this many network pixels on a side; larger, it is tiled. */
export const MAX_NET_SIDE = 512;
/**
 * The coarse look's longer side when one fine look covers the whole image after it: it then has
 * only the large faces to find, and at 128 it costs a quarter of 256 (a face filling a 2048×1536
 * picture still scored 0.77).
 */
export const LARGE_FACE_INPUT = 128;
/** The fine look proposes faces up to this many times the coarse look's smallest. */
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
 * The regions to run the proposing network on: the whole image at 256 on its longer side — or,
 * when faces of `minFaceSize` would be under NET_MIN_FACE network pixels there, a coarse look for
 * the large faces and a fine look at the scale that shows the small ones at NET_MIN_FACE, whole or
 * in tiles.
 */
export function planRegions(width: number, height: number, minFaceSize: number): Region[] {
  if (!(width >= 1 && height >= 1 && minFaceSize > 0)) {
    throw new RangeError(`cannot plan a detection of ${minFaceSize}-pixel faces in a ${width}×${height} image`);
  }
  const longer = Math.max(width, height);
  const coarseScale = PROPOSAL_INPUT / longer;
  if (minFaceSize * coarseScale >= NET_MIN_FACE || coarseScale >= 1) return [region(0, 0, width, height, coarseScale)];
  const fineScale = Math.min(1, NET_MIN_FACE / minFaceSize);
  const tile = Math.floor(MAX_NET_SIDE / fineScale);
  if (width <= tile && height <= tile) {
    const fine = region(0, 0, width, height, fineScale);
    // Even a face filling the picture is within what the network was made for (256 network
    // pixels; 345 scored 0.55, 384 nothing): the one look is enough.
    if (Math.min(width, height) * fineScale <= PROPOSAL_INPUT) return [fine];
    const largeScale = LARGE_FACE_INPUT / longer;
    // A suit's collar at 77 network pixels was proposed as a face at 0.70 by a fine look: its
    // larger boxes are the coarse look's to find.
    return [region(0, 0, width, height, largeScale), { ...fine, maxFace: FINE_BAND * (NET_MIN_FACE / largeScale) }];
  }
  // A face the coarse look may miss is under NET_MIN_FACE / coarseScale image pixels: tiles overlap
  // by that much (and a quarter more), so such a face lies whole in one of them.
  const overlap = Math.ceil((NET_MIN_FACE / coarseScale) * 1.25);
  const across = tilesAlong(width, tile, overlap);
  const down = tilesAlong(height, tile, overlap);
  // Past MAX_TILES_PER_SIDE tiles are longer than `tile`: shown smaller, so the heap stays bounded.
  const scale = Math.min(fineScale, MAX_NET_SIDE / Math.max(across.length, down.length));
  const maxFace = FINE_BAND * (NET_MIN_FACE / coarseScale);
  const tiles = down.starts.flatMap((y) => across.starts.map((x) => ({ ...region(x, y, across.length, down.length, scale), maxFace })));
  return [region(0, 0, width, height, coarseScale), ...tiles];
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
