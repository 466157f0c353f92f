/**
 * How large an input the detector network gets, chosen from the image — and how the boxes of its
 * runs are merged. Pure: the numbers below were measured, the arithmetic is unit-tested.
 *
 * TinyFaceDetector pads the image to a square (its longer side) and scales that square to the
 * network's input size S (a multiple of 32). A face of f pixels in an image whose longer side is L
 * becomes f·S/L pixels in the network, and the network sees faces only within a band of sizes.
 * Measured here (scikit-image's astronaut and camera faces, scaled and padded): at 32 network
 * pixels or fewer a face scores under 0.5 or is missed, at 48 it scores ~0.8; it is found up to
 * ~350 (0.96 at 357) and missed beyond ~400. So:
 *
 * - the smallest face that must be seen (`minFaceSize`: FACE_MIN_SIZE of the stored image, in the
 *   detector's pixels) is planned at NET_PLANNED_MIN_FACE = 56 network pixels: faces down to ~48/56
 *   of it are still seen reliably (and so reported FACE_TOO_SMALL rather than NO_FACE);
 * - the largest face that must be seen, LARGEST_FACE_SHARE = 0.7 of the image's shorter side (a
 *   closer crop cuts the face), is planned at no more than NET_MAX_FACE = 320 network pixels.
 *
 * A fixed square 416, the library's default, gets neither right: in a 1024×1024 picture a 64-pixel
 * face is 26 network pixels (missed), and a 16:9 picture wastes 44% of the square on padding.
 *
 * One run when one size range meets both bounds (its smallest, cheapest size); two when the image
 * is too large for one range (its shorter side more than ~6× the smallest face): one size for the
 * large faces, one for the small. And a second look: a face's score depends on how it falls on the
 * network's 32-pixel grid (camera.png's face scores 0.39 at 448, 0.65 at 512 and 0.67 at 416), so
 * when a single run leaves a near miss — a box scoring within UNSURE_MARGIN under the minimum —
 * the image is run again 64 smaller and the boxes merged. A clear picture costs one run. (None of
 * scikit-image's photos without a face reached 0.5 at any size from 160 to 800 — only coins.png's
 * coin profiles did, at 480 to 640.)
 *
 * S is capped at MAX_INPUT_SIZE = 512, for memory more than for time: the WebAssembly heap of a
 * thread grows to what the largest run needs and never shrinks — measured 99 MB at 416, 112 at 448,
 * 145 at 512, 205–250 at 640 — and time grows with S² too (640 costs ~2.4× a 416 run). So faces
 * smaller than 48/512 = 9.4% of the longer side are not reliably seen, whatever FACE_MIN_SIZE
 * says. Each thread runs MAX_INPUT_SIZE once when it starts, so its heap grows once, in one piece,
 * and every later run fits in it (sizes are also given largest first, for the same reason).
 */

import type { Face } from './verdict.ts';

/** Network pixels from which a face is found reliably (score ~0.8). */
export const NET_RELIABLE_MIN_FACE = 48;
export const NET_PLANNED_MIN_FACE = 56;
export const NET_MAX_FACE = 320;
export const LARGEST_FACE_SHARE = 0.7;
export const MIN_INPUT_SIZE = 128;
export const MAX_INPUT_SIZE = 512;
/** How much smaller the second look is (larger when that would go under MIN_INPUT_SIZE). */
export const SECOND_LOOK_STEP = 64;
/** A box scoring this much under the minimum score is a near miss: worth a second look. */
export const UNSURE_MARGIN = 0.2;
const STEP = 32;

const clampSize = (s: number) => Math.min(MAX_INPUT_SIZE, Math.max(MIN_INPUT_SIZE, s));

export interface DetectionPlan {
  /** Input sizes that are always run, largest first. */
  readonly sizes: number[];
  /** A size to run as well when the runs above leave a near miss (a single range only). */
  readonly secondLook: number | undefined;
}

/**
 * The network input sizes to run on a width × height image so that faces from `minFaceSize`
 * (shorter box side, in these pixels) up to LARGEST_FACE_SHARE of the shorter image side are seen.
 */
export function planDetection(width: number, height: number, minFaceSize: number): DetectionPlan {
  if (!(width >= 1 && height >= 1 && minFaceSize > 0)) {
    throw new RangeError(`cannot plan a detection of ${minFaceSize}-pixel faces in a ${width}×${height} image`);
  }
  const longer = Math.max(width, height);
  const shorter = Math.min(width, height);
  // Smallest size at which a minFaceSize face reaches NET_PLANNED_MIN_FACE network pixels.
  const forSmall = clampSize(Math.ceil((NET_PLANNED_MIN_FACE * longer) / minFaceSize / STEP) * STEP);
  // Largest size at which a face of LARGEST_FACE_SHARE of the shorter side stays within NET_MAX_FACE.
  const forLarge = clampSize(Math.floor((NET_MAX_FACE * longer) / (LARGEST_FACE_SHARE * shorter) / STEP) * STEP);
  if (forSmall > forLarge) return { sizes: [forSmall, forLarge], secondLook: undefined };
  const below = forSmall - SECOND_LOOK_STEP;
  return { sizes: [forSmall], secondLook: below >= MIN_INPUT_SIZE ? below : forSmall + SECOND_LOOK_STEP };
}

/** The score from which a box counts as a near miss, for a given minimum score. */
export function unsureScore(minScore: number): number {
  return Math.max(0.05, minScore - UNSURE_MARGIN);
}

/** The smallest face (shorter side, in these pixels) that the planned sizes see reliably. */
export function smallestSeenFace(width: number, height: number, plan: DetectionPlan): number {
  return (NET_RELIABLE_MIN_FACE * Math.max(width, height)) / Math.max(...plan.sizes);
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
/** A box lying this much inside a kept one is part of it (an eye region seen as a face by the small-face run). */
export const PART_OF_FACE = 0.6;

/**
 * The faces of several runs on one image, each face once: highest score first, a box dropped when
 * it overlaps a kept one (IoU ≥ SAME_FACE_IOU) or lies mostly inside it (≥ PART_OF_FACE of its
 * area). Without this, one face seen by both runs would count as MULTIPLE_FACES.
 */
export function mergeFaces(faces: readonly Face[]): Face[] {
  const kept: Face[] = [];
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
