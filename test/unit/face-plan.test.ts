// Where the detector looks (the regions of the image the proposing network runs on), how the
// regions' boxes are merged, and how pixels are turned into the networks' inputs.
import { describe, expect, it } from 'vitest';
import { FINE_BAND, GRID, LARGE_FACE_INPUT, MAX_NET_SIDE, NET_MIN_FACE, PROPOSAL_INPUT, clipToImage, mergeFaces, planRegions } from '../../src/face/plan.ts';
import { regionInput, squareRegion, toRgb, turnInput, type Region } from '../../src/face/pixels.ts';
import type { Face } from '../../src/face/verdict.ts';
import { thrownBy } from './helpers.ts';

const box = (x: number, y: number, side: number, score = 0.9): Face => ({ x, y, width: side, height: side, score });

/** The part of the image a region shows, in image pixels. */
const shown = (r: Region) => ({ x: r.x, y: r.y, width: r.width / r.scale, height: r.height / r.scale });
/** Whether a face (square, `side` pixels at x, y) lies whole inside what a region shows. */
const inside = (r: Region, x: number, y: number, side: number) => {
  const s = shown(r);
  return x >= s.x && y >= s.y && x + side <= s.x + s.width && y + side <= s.y + s.height;
};

describe('planRegions', () => {
  it('looks at the whole picture once, 256 network pixels on its longer side, when its smallest face is large enough there', () => {
    // Act: a 64-pixel face in a 1024×768 picture is 16 network pixels at 256
    const regions = planRegions(1024, 768, 64);

    // Assess: 256 × 192, on the grid, nothing cut
    expect(regions).toEqual([{ x: 0, y: 0, scale: 0.25, width: 256, height: 192 }]);
  });

  it('looks at the whole picture at the scale that shows the smallest face at NET_MIN_FACE, once, when a face filling it stays within the network\'s size', () => {
    // Act: 1280×960 with 64-pixel faces: 0.25, so the picture is 320 × 240 and a face filling it 240
    const regions = planRegions(1280, 960, 64);

    // Assess
    expect(regions).toEqual([{ x: 0, y: 0, scale: NET_MIN_FACE / 64, width: 320, height: 256 }]);
  });

  it('looks at the whole picture at 128 first when a face could be larger than the finer look handles, and bands the finer one', () => {
    // Act: 2000×1500: a face filling it would be 375 network pixels at 0.25
    const [coarse, fine, ...more] = planRegions(2000, 1500, 64);

    // Assess
    expect(coarse).toEqual({ x: 0, y: 0, scale: LARGE_FACE_INPUT / 2000, width: 128, height: 96 });
    expect(fine).toMatchObject({ x: 0, y: 0, scale: 0.25, width: 512, height: 384 });
    expect(fine?.maxFace).toBeCloseTo(FINE_BAND * NET_MIN_FACE * (2000 / LARGE_FACE_INPUT));
    expect(more).toEqual([]);
  });

  it('tiles the finer look when it would exceed MAX_NET_SIDE: every tile on the grid, within it, at the finer scale, covering the picture', () => {
    for (const [w, h] of [
      [4000, 3000],
      [3024, 4032],
      [6000, 2000],
    ] as const) {
      // Act
      const [, ...tiles] = planRegions(w, h, 64);

      // Assess
      expect(tiles.length, `${w}×${h}`).toBeGreaterThan(1);
      for (const tile of tiles) {
        expect(tile.scale).toBe(NET_MIN_FACE / 64);
        expect(tile.width % GRID === 0 && tile.height % GRID === 0, `${w}×${h} ${JSON.stringify(tile)}`).toBe(true);
        expect(Math.max(tile.width, tile.height)).toBeLessThanOrEqual(MAX_NET_SIDE);
      }
      expect(Math.max(...tiles.map((t) => shown(t).x + shown(t).width))).toBeGreaterThanOrEqual(w);
      expect(Math.max(...tiles.map((t) => shown(t).y + shown(t).height))).toBeGreaterThanOrEqual(h);
    }
  });

  it('puts every face the coarse look may miss whole inside some finer region, within its band, wherever it is', () => {
    for (const [w, h, f] of [
      [4000, 3000, 64],
      [1600, 1200, 64],
      [1080, 1920, 40],
      [3024, 4032, 64],
      [1024, 768, 20],
      [9000, 1000, 64],
    ] as const) {
      // Prepare: faces under what the coarse look shows at NET_MIN_FACE
      const [coarse, ...fine] = planRegions(w, h, f);
      const missable = Math.ceil(NET_MIN_FACE / (coarse as Region).scale);

      // Assess: a grid of positions
      for (let x = 0; x + missable <= w; x += Math.max(1, Math.floor(w / 37))) {
        for (let y = 0; y + missable <= h; y += Math.max(1, Math.floor(h / 41))) {
          expect(fine.some((t) => inside(t, x, y, missable) && (t.maxFace ?? Infinity) >= missable), `${w}×${h} face of ${missable} at ${x},${y}`).toBe(true);
        }
      }
    }
  });

  it('keeps the finer look within MAX_NET_SIDE on a picture too long for MAX_TILES_PER_SIDE tiles, at a smaller scale', () => {
    // Act: 30000×600 with 64-pixel faces would need 15 tiles of 2048 along it
    const [, ...tiles] = planRegions(30000, 600, 64);

    // Assess
    expect(tiles.length).toBeLessThanOrEqual(6);
    for (const tile of tiles) expect(Math.max(tile.width, tile.height)).toBeLessThanOrEqual(MAX_NET_SIDE);
    expect(tiles[0]?.scale).toBeLessThan(NET_MIN_FACE / 64);
  });

  it('never enlarges a picture past one network pixel per pixel to look for faces smaller than NET_MIN_FACE: more cost, no more detail', () => {
    // Act: the 1024-pixel preview of an 8000×6000 photo, where a 64-pixel face is 8 pixels; and a
    // picture small enough for the 256 look to enlarge it already
    const [, ...preview] = planRegions(1024, 768, 8);
    const small = planRegions(200, 150, 4);

    // Assess: at most 1:1, so ~1024 × 768 network pixels (with the tiles' overlap), not 2048 × 1536
    for (const tile of preview) expect(tile.scale).toBe(1);
    expect(preview.reduce((sum, t) => sum + t.width * t.height, 0)).toBeLessThan(1.7 * 1024 * 768);
    expect(small).toEqual([{ x: 0, y: 0, scale: PROPOSAL_INPUT / 200, width: 256, height: 192 }]);
  });

  it('is the same for the same picture at any resolution, given the same face share, up to rounding', () => {
    // Act: FACE_MIN_SIZE 64 in a 2048-pixel stored image seen as a 1024-pixel preview is 32 pixels there
    const half = planRegions(1024, 768, 32);
    const full = planRegions(2048, 1536, 64);

    // Assess
    expect(half.length).toBe(full.length);
    for (const [i, region] of half.entries()) {
      const other = full[i] as Region;
      expect({ width: region.width, height: region.height }).toEqual({ width: other.width, height: other.height });
      expect(region.scale).toBeCloseTo(other.scale * 2);
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

describe('regionInput', () => {
  it('shrinks a region by averaging, to -1..1, black past the image', () => {
    // Prepare: 4×2, left half black, right half (200, 100, 50)
    const rgb = Uint8Array.from({ length: 4 * 2 * 3 }, (_, i) => (Math.floor(i / 3) % 4 < 2 ? 0 : ([200, 100, 50][i % 3] as number)));

    // Act: the square of side 4 at the top-left (its lower half lies past the image), as 2×2
    const input = regionInput(rgb, 4, 2, squareRegion({ x: 0, y: 0, side: 4 }, 2));

    // Assess
    const value = (v: number) => v / 127.5 - 1;
    expect([...input].map((v) => Math.round(v * 1000) / 1000)).toEqual(
      [value(0), value(0), value(0), value(200), value(100), value(50), -1, -1, -1, -1, -1, -1].map((v) => Math.round(v * 1000) / 1000),
    );
  });

  it('gives a region of any shape, width before height, black past the image', () => {
    // Prepare: 4×2, each pixel's red its x × 60, green its y × 100
    const rgb = Uint8Array.from({ length: 4 * 2 * 3 }, (_, i) => (i % 3 === 0 ? (Math.floor(i / 3) % 4) * 60 : i % 3 === 1 ? Math.floor(i / 12) * 100 : 0));

    // Act: the whole image at half scale, as a 3 × 2 input (one column and one row past it)
    const input = regionInput(rgb, 4, 2, { x: 0, y: 0, scale: 0.5, width: 3, height: 2 });

    // Assess: (0..1, 0..1) averages red 30, green 50; (2..3, 0..1) red 150; past the image black
    const red = (ox: number, oy: number) => Math.round(((input[(oy * 3 + ox) * 3] as number) + 1) * 127.5);
    const green = (ox: number, oy: number) => Math.round(((input[(oy * 3 + ox) * 3 + 1] as number) + 1) * 127.5);
    expect(input.length).toBe(3 * 2 * 3);
    expect([red(0, 0), green(0, 0), red(1, 0), red(2, 0), red(0, 1), green(0, 1)]).toEqual([30, 50, 150, 0, 0, 0]);
  });

  it('enlarges a small region bilinearly, keeping a flat colour flat', () => {
    // Prepare: 2×2 of one colour
    const rgb = new Uint8Array(2 * 2 * 3).fill(255);

    // Act
    const input = regionInput(rgb, 2, 2, squareRegion({ x: 0.5, y: 0.5, side: 1 }, 8));

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

describe('planRegions: the edges of each rule', () => {
  it('takes pictures one pixel wide or high, and refuses none high, saying what it was given', () => {
    // Act / Assess
    expect(planRegions(1, 300, 64)).toHaveLength(1);
    expect(planRegions(300, 1, 64)).toHaveLength(1);
    expect(thrownBy(() => planRegions(10, 0, 64))).toMatchObject({ name: 'RangeError', message: 'cannot plan a detection of 64-pixel faces in a 10×0 image' });
  });

  it('looks once at 256 whenever the smallest face is at least NET_MIN_FACE there, not at a smaller scale', () => {
    // Act: 400-pixel faces in 4000 × 3000 are 25.6 network pixels at 256
    const regions = planRegions(4000, 3000, 400);

    // Assess
    expect(regions).toEqual([{ x: 0, y: 0, scale: PROPOSAL_INPUT / 4000, width: 256, height: 192 }]);
  });

  it('looks once when a face filling the picture is exactly 256 network pixels at the finer scale', () => {
    // Act: 2048 × 1024 with 64-pixel faces: 0.25, so 512 × 256, one tile across
    const regions = planRegions(2048, 1024, 64);

    // Assess
    expect(regions).toEqual([{ x: 0, y: 0, scale: 0.25, width: 512, height: 256 }]);
  });

  it('tiles down a picture exactly one tile wide, every tile from its left edge', () => {
    // Act: 2048 × 4096 with 64-pixel faces: tiles of 2048 image pixels
    const [, ...tiles] = planRegions(2048, 4096, 64);

    // Assess
    expect(tiles.length).toBeGreaterThan(1);
    for (const tile of tiles) expect(tile).toMatchObject({ x: 0, width: 512 });
  });

  it('tiles a tall, narrow picture down its length though one tile is enough across', () => {
    // Act: 400 × 5000: one tile across, three down
    const [coarse, ...tiles] = planRegions(400, 5000, 64);

    // Assess: tiled, so the coarse look stays at 256 (its smallest face, and the overlap, halved)
    expect(coarse).toMatchObject({ x: 0, y: 0, scale: PROPOSAL_INPUT / 5000 });
    expect(tiles).toHaveLength(3);
    expect(new Set(tiles.map((t) => t.x))).toEqual(new Set([0]));
    for (const tile of tiles) expect(Math.max(tile.width, tile.height)).toBeLessThanOrEqual(MAX_NET_SIDE);
  });

  it('tiles as few as overlap by the largest face the coarse look may miss: 3 × 2 for 4000 × 3000', () => {
    // Act: the coarse look at 256 may miss faces under 16 / 0.064 = 250 pixels: tiles overlap by 313
    const [, ...tiles] = planRegions(4000, 3000, 64);

    // Assess
    const xs = [...new Set(tiles.map((t) => t.x))];
    const ys = [...new Set(tiles.map((t) => t.y))];
    expect(tiles).toHaveLength(6);
    expect(xs).toEqual([0, 1229, 2458]);
    expect(ys).toEqual([0, 1343]);
    expect(tiles[0]).toMatchObject({ scale: 0.25, width: 416, height: 416 });
  });

  it('spreads MAX_TILES_PER_SIDE tiles along a panorama whose overlap is longer than a tile', () => {
    // Act: 8000 × 20 with 16-pixel faces: tiles of 512 would need an overlap of 625
    const [, ...tiles] = planRegions(8000, 20, 16);

    // Assess: six tiles of 1855 image pixels, evenly spread, shown smaller so they stay within MAX_NET_SIDE
    expect(tiles.map((t) => t.x)).toEqual([0, 1229, 2458, 3687, 4916, 6145]);
    expect(tiles[0]?.scale).toBeCloseTo(MAX_NET_SIDE / 1855);
  });
});

describe('mergeFaces: when two boxes are one face', () => {
  const boxAt = (x: number, y: number, width: number, height: number, score: number): Face => ({ x, y, width, height, score });

  it('merges boxes from an intersection over union of 0.3, by how far apart they are along either axis', () => {
    for (const along of ['x', 'y'] as const) {
      const shifted = (d: number) => (along === 'x' ? boxAt(d, 0, 100, 100, 0.8) : boxAt(0, d, 100, 100, 0.8));
      // Act: shifted 45 (IoU 0.38, but not 60 % inside), 53 (0.307), 54 (0.299), 80 (0.11)
      const [at45, at53, at54, at80] = [45, 53, 54, 80].map((d) => mergeFaces([boxAt(0, 0, 100, 100, 0.9), shifted(d)]).length);

      // Assess
      expect([at45, at53, at54, at80], along).toEqual([1, 1, 2, 2]);
    }
  });

  it('merges boxes at exactly the IoU limit', () => {
    // Act: 13 × 10 boxes 7 apart: 60 in common of 200, neither 60 % inside the other
    const merged = mergeFaces([boxAt(0, 0, 13, 10, 0.9), boxAt(7, 0, 13, 10, 0.8)]);

    // Assess
    expect(merged).toHaveLength(1);
  });

  it('merges a box lying 60 % or more inside another, not less', () => {
    // Prepare: a 10 × 10 box against a large one from x = 4 (60 % inside) or 4.5 (55 %)
    const small = boxAt(0, 0, 10, 10, 0.7);

    // Act
    const sixty = mergeFaces([boxAt(4, 0, 100, 100, 0.9), small]);
    const fiftyFive = mergeFaces([boxAt(4.5, 0, 100, 100, 0.9), small]);

    // Assess
    expect(sixty).toHaveLength(1);
    expect(fiftyFive).toHaveLength(2);
  });

  it('keeps boxes apart diagonally, and boxes that only touch', () => {
    // Act / Assess
    expect(mergeFaces([boxAt(0, 0, 100, 100, 0.9), boxAt(200, 200, 100, 100, 0.8)])).toHaveLength(2);
    expect(mergeFaces([boxAt(0, 0, 100, 100, 0.9), boxAt(100, 0, 100, 100, 0.8)])).toHaveLength(2);
  });
});

describe('clipToImage: the right and bottom edges', () => {
  it('clips a box inside on the left but past the right and bottom', () => {
    // Act
    const clipped = clipToImage({ x: 10, y: 20, width: 50, height: 100, score: 0.8 }, 40, 100);

    // Assess
    expect(clipped).toEqual({ x: 10, y: 20, width: 30, height: 80, score: 0.8 });
  });
});

describe('pixels: shapes', () => {
  it('refuses a width or height that is not a positive whole number, saying what it was given', () => {
    // Act
    const errors = [
      [1.5, 2],
      [2, 1.5],
      [0, 2],
      [2, 0],
    ].map(([width, height]) => thrownBy(() => toRgb({ data: new Uint8Array(12), width: width as number, height: height as number, channels: 3 })));

    // Assess
    expect(errors.map((e) => (e as Error).message)).toEqual([
      'pixels must have a positive whole width and height, not 1.5×2',
      'pixels must have a positive whole width and height, not 2×1.5',
      'pixels must have a positive whole width and height, not 0×2',
      'pixels must have a positive whole width and height, not 2×0',
    ]);
  });

  it('turns pictures taller than wide into RGB too, every pixel', () => {
    // Act: 1 × 3 grey and 1 × 2 RGBA at alpha 100 (of 255)
    const grey = toRgb({ data: Uint8Array.of(5, 6, 7), width: 1, height: 3, channels: 1 });
    const rgba = toRgb({ data: Uint8Array.of(50, 100, 150, 100, 0, 0, 0, 255), width: 1, height: 2, channels: 4 });
    const rgb = toRgb({ data: new Uint8Array(3 * 2 * 3).fill(9), width: 3, height: 2, channels: 3 });

    // Assess: (v·100 + 255·155) / 255 for 50, 100, 150: 174.6, 194.2, 213.8
    expect([...grey]).toEqual([5, 5, 5, 6, 6, 6, 7, 7, 7]);
    expect([...rgba]).toEqual([175, 194, 214, 0, 0, 0]);
    expect(rgb.length).toBe(18);
  });
});

describe('regionInput: the two ways of resampling', () => {
  const toByte = (v: number) => Math.round((v + 1) * 127.5 * 100) / 100;

  it('enlarges bilinearly between pixel centres, black past the image', () => {
    // Prepare: 2 × 1, red 0 then 204
    const rgb = Uint8Array.of(0, 0, 0, 204, 0, 0);

    // Act: the whole image at twice its size: 4 × 2
    const input = regionInput(rgb, 2, 1, { x: 0, y: 0, scale: 2, width: 4, height: 2 });

    // Assess: centres at x = -0.25, 0.25, 0.75, 1.25; y = -0.25, 0.25 (black rows above and below weigh 1/4)
    const red = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => toByte(input[i * 3] as number));
    expect(red).toEqual([0, 38.25, 114.75, 114.75, 0, 38.25, 114.75, 114.75]);
  });

  it('shrinks by the mean of every pixel covered, not a sample between the middle ones', () => {
    // Prepare: 4 × 4 black but for one white corner pixel
    const rgb = new Uint8Array(4 * 4 * 3);
    rgb.fill(255, 0, 3);

    // Act: the whole image as 1 × 1
    const input = regionInput(rgb, 4, 4, { x: 0, y: 0, scale: 0.25, width: 1, height: 1 });

    // Assess
    expect(toByte(input[0] as number)).toBeCloseTo(255 / 16, 1);
  });

  it('shrinks by the mean of the pixels each input value covers, from a region that starts inside the image', () => {
    // Prepare: 4 × 6, red = 10·x + 40·y
    const rgb = Uint8Array.from({ length: 4 * 6 * 3 }, (_, i) => (i % 3 === 0 ? 10 * (Math.floor(i / 3) % 4) + 40 * Math.floor(i / 12) : 0));

    // Act: from (0, 2), a quarter of the size: 1 × 1 covering 4 × 4 pixels
    const input = regionInput(rgb, 4, 6, { x: 0, y: 2, scale: 0.25, width: 1, height: 1 });

    // Assess: the mean of 10·x + 40·y over x 0..3, y 2..5 is 15 + 140
    expect(toByte(input[0] as number)).toBe(155);
  });
});

describe('turnInput: any angle', () => {
  const SIZE = 8;
  /** A ramp: channel 0 rises along x, channel 1 along y, channel 2 flat. */
  const ramp = () => {
    const input = new Float32Array(SIZE * SIZE * 3);
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) input.set([x / 10 - 0.5, y / 10 - 0.5, 0.25], (y * SIZE + x) * 3);
    }
    return input;
  };
  const c = (SIZE - 1) / 2;

  it.each([30, 90, -60, 180])('turns a ramp %i° exactly where the source lies inside the input (bilinear is exact on a ramp), black outside', (degrees) => {
    // Act
    const turned = turnInput(ramp(), SIZE, degrees);

    // Assess
    const rad = (degrees * Math.PI) / 180;
    let inside = 0;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const sx = Math.cos(rad) * (x - c) + Math.sin(rad) * (y - c) + c;
        const sy = -Math.sin(rad) * (x - c) + Math.cos(rad) * (y - c) + c;
        const at = (y * SIZE + x) * 3;
        const got = [turned[at], turned[at + 1], turned[at + 2]] as number[];
        if (sx >= 0 && sy >= 0 && sx <= SIZE - 1 && sy <= SIZE - 1) {
          inside += 1;
          expect(got[0], `${x},${y}`).toBeCloseTo(sx / 10 - 0.5, 5);
          expect(got[1], `${x},${y}`).toBeCloseTo(sy / 10 - 0.5, 5);
          expect(got[2], `${x},${y}`).toBeCloseTo(0.25, 5);
        } else if (sx < -0.5 || sy < -0.5 || sx > SIZE - 0.5 || sy > SIZE - 0.5) {
          expect(got, `${x},${y}`).toEqual([-1, -1, -1]);
        }
      }
    }
    expect(inside).toBeGreaterThan(SIZE * 2);
  });

  it('makes the corners black at 45°, and keeps the edge half-pixels of the source at 0°', () => {
    // Prepare
    const white = new Float32Array(4 * 4 * 3).fill(1);

    // Act
    const turned = turnInput(white, 4, 45);
    const same = turnInput(white, 4, 0);

    // Assess
    const pixel = (data: Float32Array, x: number, y: number) => [...data.subarray((y * 4 + x) * 3, (y * 4 + x) * 3 + 3)];
    for (const [x, y] of [
      [0, 0],
      [3, 0],
      [0, 3],
      [3, 3],
    ] as const) {
      expect(pixel(turned, x, y), `${x},${y}`).toEqual([-1, -1, -1]);
    }
    expect(pixel(turned, 1, 1)).toEqual([1, 1, 1]);
    expect([...same]).toEqual([...white]);
  });
});
