// How the detector's network input sizes are chosen from the image, how the runs' boxes are merged,
// and how pixels are turned into the network's RGB.
import { describe, expect, it } from 'vitest';
import {
  MAX_INPUT_SIZE,
  NET_MAX_FACE,
  NET_RELIABLE_MIN_FACE,
  clipToImage,
  mergeFaces,
  MIN_INPUT_SIZE,
  planDetection,
  smallestSeenFace,
  unsureScore,
} from '../../src/face/plan.ts';
import { shrinkRgb, toRgb } from '../../src/face/pixels.ts';
import type { Face } from '../../src/face/verdict.ts';
import { thrownBy } from './helpers.ts';

const box = (x: number, y: number, side: number, score = 0.9): Face => ({ x, y, width: side, height: side, score });

describe('planDetection', () => {
  it('in a 512×512 picture with 64-pixel faces: one run at 448 (a 64-pixel face is 56 network pixels), a second look at 384', () => {
    // Act
    const plan = planDetection(512, 512, 64);

    // Assess
    expect(plan).toEqual({ sizes: [448], secondLook: 384 });
    expect((64 * 448) / 512).toBe(56);
  });

  it('plans one size for large faces and one for small ones when no single size sees both', () => {
    // Prepare: a square picture of 600 pixels with 64-pixel faces
    const plan = planDetection(600, 600, 64);

    // Assess: a 64-pixel face would need 544 (56 network pixels): capped; a face of 0.7 of the side
    // stays within the network's band only up to 448. Both run, largest first; no second look.
    expect(plan).toEqual({ sizes: [MAX_INPUT_SIZE, 448], secondLook: undefined });
    expect((0.7 * 600 * 448) / 600).toBeLessThanOrEqual(NET_MAX_FACE);
  });

  it('sizes by the longer side (the square padding), bounds large faces by the shorter side', () => {
    // Act: 64-pixel faces in a 600×600 picture and in a 600×338 (16:9) one
    const square = planDetection(600, 600, 64);
    const wide = planDetection(600, 338, 64);

    // Assess: both need the cap for small faces; only the square can hold a face too large for it
    // (0.7 × 600 = 420 pixels), so only the square needs a second, smaller run for large faces
    expect(square.sizes).toEqual([MAX_INPUT_SIZE, 448]);
    expect(wide).toEqual({ sizes: [MAX_INPUT_SIZE], secondLook: MAX_INPUT_SIZE - 64 });
  });

  it('caps the input size: faces under 9.4% of the longer side are not reliably seen', () => {
    // Act
    const plan = planDetection(4000, 3000, 64);

    // Assess
    expect(plan.sizes[0]).toBe(MAX_INPUT_SIZE);
    expect(smallestSeenFace(4000, 3000, plan)).toBe((NET_RELIABLE_MIN_FACE * 4000) / MAX_INPUT_SIZE);
    expect(smallestSeenFace(4000, 3000, plan)).toBe(375);
  });

  it('is the same for the same picture at any resolution, given the same face share', () => {
    // Act / Assess: FACE_MIN_SIZE 64 in a 1024-pixel stored image seen as a 512-pixel copy is 32 pixels there
    expect(planDetection(512, 384, 32)).toEqual(planDetection(1024, 768, 64));
    expect(planDetection(200, 150, 40)).toEqual(planDetection(400, 300, 80));
  });

  it('keeps tiny pictures at the smallest useful input, the second look above it', () => {
    // Act
    const plan = planDetection(64, 64, 64);

    // Assess
    expect(plan).toEqual({ sizes: [MIN_INPUT_SIZE], secondLook: MIN_INPUT_SIZE + 64 });
  });

  it('always gives multiples of 32, largest first, the second look different from the first', () => {
    for (const [w, h, f] of [
      [512, 512, 64],
      [451, 300, 64],
      [1024, 512, 64],
      [3000, 200, 10],
      [640, 640, 1],
      [100, 5000, 500],
      [240, 240, 64],
    ] as const) {
      const { sizes, secondLook } = planDetection(w, h, f);
      for (const size of [...sizes, secondLook ?? 32]) expect(size % 32, `${w}×${h}`).toBe(0);
      expect([...sizes].sort((a, b) => b - a), `${w}×${h}`).toEqual(sizes);
      expect(sizes, `${w}×${h}`).not.toContain(secondLook);
    }
  });

  it('refuses nonsense: an empty image, a non-positive face size', () => {
    // Act
    const errors = [
      thrownBy(() => planDetection(0, 10, 64)),
      thrownBy(() => planDetection(10, 10, 0)),
      thrownBy(() => planDetection(10, 10, Number.NaN)),
    ];

    // Assess
    for (const error of errors) expect(error).toBeInstanceOf(RangeError);
  });

  it('counts a box within 0.2 under the minimum score as a near miss', () => {
    // Act / Assess
    expect(unsureScore(0.5)).toBeCloseTo(0.3);
    expect(unsureScore(0.1)).toBe(0.05);
  });
});

describe('mergeFaces', () => {
  it('keeps one box per face, the higher score, when both runs saw it', () => {
    // Act
    const merged = mergeFaces([box(100, 100, 120, 0.7), box(108, 96, 116, 0.95)]);

    // Assess
    expect(merged).toEqual([box(108, 96, 116, 0.95)]);
  });

  it('drops a small box lying inside a large one (part of the same face)', () => {
    // Act
    const merged = mergeFaces([box(100, 100, 300, 0.9), box(150, 150, 60, 0.6)]);

    // Assess
    expect(merged).toEqual([box(100, 100, 300, 0.9)]);
  });

  it('keeps separate faces, highest score first', () => {
    // Act
    const merged = mergeFaces([box(0, 0, 100, 0.6), box(300, 0, 100, 0.9), box(120, 0, 100, 0.8)]);

    // Assess
    expect(merged.map((f) => f.score)).toEqual([0.9, 0.8, 0.6]);
  });
});

describe('clipToImage', () => {
  it('clips a box that the network placed partly outside the image', () => {
    // Act
    const clipped = clipToImage({ x: -5, y: 90, width: 50, height: 30, score: 0.8 }, 40, 100);

    // Assess
    expect(clipped).toEqual({ x: 0, y: 90, width: 40, height: 10, score: 0.8 });
  });
});

describe('toRgb', () => {
  it('passes RGB through, repeats grey, and flattens transparency onto white', () => {
    // Act
    const rgb = toRgb({ data: Uint8Array.of(1, 2, 3), width: 1, height: 1, channels: 3 });
    const grey = toRgb({ data: Uint8Array.of(7, 200), width: 2, height: 1, channels: 1 });
    const rgba = toRgb({ data: Uint8Array.of(0, 0, 0, 0, 10, 20, 30, 255, 0, 0, 0, 128), width: 3, height: 1, channels: 4 });

    // Assess
    expect([...rgb]).toEqual([1, 2, 3]);
    expect([...grey]).toEqual([7, 7, 7, 200, 200, 200]);
    expect([...rgba]).toEqual([255, 255, 255, 10, 20, 30, 127, 127, 127]);
  });

  it('refuses pixels whose buffer does not match their shape', () => {
    // Act
    const short = thrownBy(() => toRgb({ data: new Uint8Array(5), width: 1, height: 2, channels: 3 }));
    const badChannels = thrownBy(() => toRgb({ data: new Uint8Array(2), width: 1, height: 1, channels: 2 as 3 }));
    const empty = thrownBy(() => toRgb({ data: new Uint8Array(0), width: 0, height: 0, channels: 3 }));

    // Assess
    expect(short).toMatchObject({ name: 'RangeError', message: '1×2×3 pixels need 6 bytes, not 5' });
    expect(badChannels).toMatchObject({ name: 'RangeError', message: 'pixels must have 1, 3 or 4 channels, not 2' });
    expect(empty).toBeInstanceOf(RangeError);
  });
});

describe('shrinkRgb', () => {
  it('leaves pixels that fit alone', () => {
    // Prepare
    const rgb = new Uint8Array(4 * 2 * 3).fill(9);

    // Act
    const shrunk = shrinkRgb(rgb, 4, 2, 4);

    // Assess
    expect(shrunk).toEqual({ rgb, width: 4, height: 2 });
  });

  it('averages the pixels each output pixel covers, keeping the aspect ratio', () => {
    // Prepare: 4×2, left half black, right half white-ish (per channel 0 / 200 / 100)
    const rgb = Uint8Array.from({ length: 4 * 2 * 3 }, (_, i) => {
      const x = Math.floor(i / 3) % 4;
      return x < 2 ? 0 : [200, 100, 50][i % 3] as number;
    });

    // Act
    const shrunk = shrinkRgb(rgb, 4, 2, 2);

    // Assess
    expect(shrunk.width).toBe(2);
    expect(shrunk.height).toBe(1);
    expect([...shrunk.rgb]).toEqual([0, 0, 0, 200, 100, 50]);
  });

  it('shrinks by a factor that is not whole, every output pixel covering at least one input pixel', () => {
    // Prepare: a 1000×10 ramp
    const rgb = Uint8Array.from({ length: 1000 * 10 * 3 }, (_, i) => Math.floor((Math.floor(i / 3) % 1000) / 4));

    // Act
    const shrunk = shrinkRgb(rgb, 1000, 10, 640);

    // Assess
    expect([shrunk.width, shrunk.height]).toEqual([640, 6]);
    expect(shrunk.rgb[0]).toBe(0);
    expect(shrunk.rgb[639 * 3]).toBe(249);
  });
});
