// Where the detector looks (the regions of the image the proposing network runs on), how the
// regions' boxes are merged, and how pixels are turned into the networks' inputs.
import { describe, expect, it } from 'vitest';
import { NET_MIN_FACE, PROPOSAL_INPUT, clipToImage, mergeFaces, planRegions, type Region } from '../../src/face/plan.ts';
import { squareInput, toRgb, turnInput } from '../../src/face/pixels.ts';
import type { Face } from '../../src/face/verdict.ts';
import { thrownBy } from './helpers.ts';

const box = (x: number, y: number, side: number, score = 0.9): Face => ({ x, y, width: side, height: side, score });

/** Whether a face (square, `side` pixels at x, y) lies whole inside a region. */
const inside = (r: Region, x: number, y: number, side: number) => x >= r.x && y >= r.y && x + side <= r.x + r.side && y + side <= r.y + r.side;

describe('planRegions', () => {
  it('looks at the whole picture alone when its smallest face is large enough there', () => {
    // Act: a 64-pixel face in a 512×512 picture is 32 network pixels at 256
    const regions = planRegions(512, 512, 64);

    // Assess
    expect(regions).toEqual([{ x: 0, y: 0, side: 512 }]);
  });

  it('adds tiles when the smallest face would be under NET_MIN_FACE network pixels in the whole picture', () => {
    // Act: a 64-pixel face in 4000×3000 is ~4 network pixels in the whole picture
    const [whole, ...tiles] = planRegions(4000, 3000, 64);

    // Assess: each tile shows a 64-pixel face at NET_MIN_FACE or more, and together they cover the picture
    expect(whole).toEqual({ x: 0, y: 0, side: 4000 });
    expect(tiles.length).toBeGreaterThan(1);
    for (const tile of tiles) expect((64 * PROPOSAL_INPUT) / tile.side).toBeGreaterThanOrEqual(NET_MIN_FACE * 0.99);
    expect(Math.max(...tiles.map((t) => t.x + t.side))).toBeGreaterThanOrEqual(4000);
    expect(Math.max(...tiles.map((t) => t.y + t.side))).toBeGreaterThanOrEqual(3000);
  });

  it('puts every face the whole-picture run may miss whole inside some tile, wherever it is', () => {
    for (const [w, h, f] of [
      [4000, 3000, 64],
      [1600, 1200, 64],
      [1080, 1920, 40],
      [3024, 4032, 64],
      [1024, 768, 20],
    ] as const) {
      // Prepare: faces under what the whole picture shows at NET_MIN_FACE
      const [, ...tiles] = planRegions(w, h, f);
      const missable = Math.ceil((NET_MIN_FACE * Math.max(w, h)) / PROPOSAL_INPUT);

      // Assess: a grid of positions
      for (let x = 0; x + missable <= w; x += Math.max(1, Math.floor(w / 37))) {
        for (let y = 0; y + missable <= h; y += Math.max(1, Math.floor(h / 41))) {
          expect(tiles.some((t) => inside(t, x, y, missable)), `${w}×${h} face of ${missable} at ${x},${y}`).toBe(true);
        }
      }
    }
  });

  it('is the same for the same picture at any resolution, given the same face share, up to rounding', () => {
    // Act: FACE_MIN_SIZE 64 in a 2048-pixel stored image seen as a 1024-pixel preview is 32 pixels there
    const half = planRegions(1024, 768, 32);
    const full = planRegions(2048, 1536, 64);

    // Assess
    expect(half.length).toBe(full.length);
    for (const [i, region] of half.entries()) {
      const other = full[i] as Region;
      expect(Math.abs(region.side * 2 - other.side)).toBeLessThanOrEqual(2);
      expect(Math.abs(region.x * 2 - other.x)).toBeLessThanOrEqual(2);
    }
  });

  it('refuses nonsense: an empty image, a non-positive face size', () => {
    // Act
    const errors = [thrownBy(() => planRegions(0, 10, 64)), thrownBy(() => planRegions(10, 10, 0)), thrownBy(() => planRegions(10, 10, Number.NaN))];

    // Assess
    for (const error of errors) expect(error).toBeInstanceOf(RangeError);
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

describe('squareInput', () => {
  it('shrinks a region by averaging, to -1..1, black past the image', () => {
    // Prepare: 4×2, left half black, right half (200, 100, 50)
    const rgb = Uint8Array.from({ length: 4 * 2 * 3 }, (_, i) => (Math.floor(i / 3) % 4 < 2 ? 0 : ([200, 100, 50][i % 3] as number)));

    // Act: the square of side 4 at the top-left (its lower half lies past the image), as 2×2
    const input = squareInput(rgb, 4, 2, { x: 0, y: 0, side: 4 }, 2);

    // Assess
    const value = (v: number) => v / 127.5 - 1;
    expect([...input].map((v) => Math.round(v * 1000) / 1000)).toEqual(
      [value(0), value(0), value(0), value(200), value(100), value(50), -1, -1, -1, -1, -1, -1].map((v) => Math.round(v * 1000) / 1000),
    );
  });

  it('enlarges a small region bilinearly, keeping a flat colour flat', () => {
    // Prepare: 2×2 of one colour
    const rgb = new Uint8Array(2 * 2 * 3).fill(255);

    // Act
    const input = squareInput(rgb, 2, 2, { x: 0.5, y: 0.5, side: 1 }, 8);

    // Assess
    expect(input.length).toBe(8 * 8 * 3);
    for (const v of input) expect(v).toBeCloseTo(1);
  });
});

describe('turnInput', () => {
  it('turns an input about its centre: 90° clockwise takes the top-left corner to the top-right', () => {
    // Prepare: a 4×4 input, black (-1) but its top-left pixel white (1)
    const input = new Float32Array(4 * 4 * 3).fill(-1);
    input.fill(1, 0, 3);

    // Act
    const turned = turnInput(input, 4, 90);
    const back = turnInput(turned, 4, -90);

    // Assess
    expect(turned[3 * 3]).toBeCloseTo(1);
    expect(turned[0]).toBeCloseTo(-1);
    expect(back[0]).toBeCloseTo(1);
  });
});
