// A corpus of corrupted JPEGs, the same every time for the same seed: photo-like images made with
// sharp in four codings (baseline with standard Huffman tables, optimised tables, progressive,
// baseline with restart intervals; colour 4:2:0 and 4:4:4, and grey), each damaged in the ways
// real files are — bit flips, dropped and inserted bytes in a scan, a scan cut short, a bad Huffman
// code, a zeroed run, a damaged restart marker. It asks one question of a reduced-scale decode: does
// it refuse every file a full decode refuses? (test/unit/lossless.corpus.test.ts keeps a subset as
// a test; test/corpus/jpeg-scales.ts runs the whole of it at every scale.)
import sharp from 'sharp';
import { walkJpeg } from '../../src/image/images.ts';
import { withRestartInterval } from './jpeg-restart.ts';

/** mulberry32: small, fast and deterministic. */
export function randomFrom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const between = (random: () => number, low: number, high: number) => low + Math.floor(random() * (high - low + 1));

/**
 * A photo-like scene: soft gradients, a few hard-edged shapes (large AC coefficients) and grain
 * (what a sensor adds; without it JPEG data is unrealistically sparse).
 */
export function scene(width: number, height: number, seed: number): Buffer {
  const random = randomFrom(seed);
  const data = Buffer.alloc(width * height * 3);
  const discs = Array.from({ length: 6 }, () => ({
    x: random() * width,
    y: random() * height,
    r: (0.05 + random() * 0.2) * Math.min(width, height),
    colour: [random() * 255, random() * 255, random() * 255],
  }));
  const fx = 1 + random() * 4;
  const fy = 1 + random() * 4;
  for (let j = 0; j < height; j += 1) {
    for (let i = 0; i < width; i += 1) {
      const base = 128 + 70 * Math.sin((i / width) * fx * Math.PI) * Math.cos((j / height) * fy * Math.PI);
      let colour = [base, base * 0.8 + 30, 255 - base];
      for (const d of discs) if ((i - d.x) ** 2 + (j - d.y) ** 2 < d.r ** 2) colour = d.colour;
      if ((i >> 4) % 9 === 0 && j > height / 2) colour = [20, 20, 20]; // stripes: sharp edges
      for (let c = 0; c < 3; c += 1) {
        const grain = (random() - 0.5) * 40;
        data[(j * width + i) * 3 + c] = Math.max(0, Math.min(255, (colour[c] ?? 0) + grain));
      }
    }
  }
  return data;
}

export const CODINGS = ['baseline', 'optimised', 'progressive', 'restart'] as const;
export type Coding = (typeof CODINGS)[number];

export interface BaseImage {
  readonly coding: Coding;
  readonly width: number;
  readonly height: number;
  readonly seed: number;
  readonly quality: number;
  readonly chroma: '4:2:0' | '4:4:4' | 'grey';
  /** Restart coding only: MCUs between restart markers. */
  readonly restartInterval?: number;
}

export async function baseJpeg(base: BaseImage): Promise<Buffer> {
  let image = sharp(scene(base.width, base.height, base.seed), { raw: { width: base.width, height: base.height, channels: 3 } });
  if (base.chroma === 'grey') image = image.toColourspace('b-w');
  const jpeg = await image
    .jpeg({
      quality: base.quality,
      chromaSubsampling: base.chroma === '4:4:4' ? '4:4:4' : '4:2:0',
      optimiseCoding: base.coding === 'optimised' || base.coding === 'progressive',
      progressive: base.coding === 'progressive',
    })
    .toBuffer();
  return base.coding === 'restart' ? withRestartInterval(jpeg, base.restartInterval ?? 4) : jpeg;
}

/**
 * The base images: every coding in every chroma, at a few sizes — none a multiple of 16, so the
 * partial blocks at the right and bottom edges are there too.
 */
export function baseImages(options: { sizes: readonly (readonly [number, number])[]; seed: number }): BaseImage[] {
  const random = randomFrom(options.seed);
  const bases: BaseImage[] = [];
  for (const [width, height] of options.sizes) {
    for (const coding of CODINGS) {
      for (const chroma of ['4:2:0', '4:4:4', 'grey'] as const) {
        bases.push({
          coding,
          width,
          height,
          chroma,
          seed: between(random, 1, 2 ** 31),
          quality: between(random, 75, 95),
          ...(coding === 'restart' && { restartInterval: [1, 2, 4, 8, 16][between(random, 0, 4)] ?? 4 }),
        });
      }
    }
  }
  return bases;
}

export const CORRUPTIONS = ['bit flip', 'bit flips', 'byte drop', 'bytes drop', 'byte insert', 'truncated scan', 'bad huffman code', 'zeroed run', 'restart marker'] as const;
export type Corruption = (typeof CORRUPTIONS)[number];

/** The entropy-coded data of each scan: [first byte, end). */
export function scanData(jpeg: Buffer): [number, number][] {
  const scans: [number, number][] = [];
  walkJpeg(jpeg, 0, (marker, start, end) => {
    if (marker === 0xda) scans.push([start + 2 + jpeg.readUInt16BE(start + 2), end]);
  });
  return scans;
}

function restartMarkers(jpeg: Buffer, [from, to]: [number, number]): number[] {
  const at: number[] = [];
  for (let i = from; i + 1 < to; i += 1) if (jpeg[i] === 0xff && (jpeg[i + 1] ?? 0) >= 0xd0 && (jpeg[i + 1] ?? 0) <= 0xd7) at.push(i);
  return at;
}

const splice = (jpeg: Buffer, at: number, remove: number, insert: Buffer = Buffer.alloc(0)) =>
  Buffer.concat([jpeg.subarray(0, at), insert, jpeg.subarray(at + remove)]);

/**
 * One corruption of `jpeg`, inside the entropy-coded data of a random scan. The result may no
 * longer pass the structure walk (a flip that makes a marker): the caller counts those apart.
 */
export function corrupt(jpeg: Buffer, kind: Corruption, random: () => number): Buffer {
  const scans = scanData(jpeg);
  const scan = scans[between(random, 0, scans.length - 1)];
  if (!scan) throw new Error('corrupt: no scan');
  const [from, to] = scan;
  const at = between(random, from, to - 1);
  switch (kind) {
    case 'bit flip': {
      const out = Buffer.from(jpeg);
      out[at] = (out[at] ?? 0) ^ (1 << between(random, 0, 7));
      return out;
    }
    case 'bit flips': {
      const out = Buffer.from(jpeg);
      const n = between(random, 2, 8);
      for (let i = 0; i < n; i += 1) {
        const p = Math.min(to - 1, at + between(random, 0, 64));
        out[p] = (out[p] ?? 0) ^ (1 << between(random, 0, 7));
      }
      return out;
    }
    case 'byte drop':
      return splice(jpeg, at, 1);
    case 'bytes drop':
      return splice(jpeg, at, Math.min(to - at, between(random, 2, 64)));
    case 'byte insert':
      return splice(jpeg, at, 0, Buffer.from([between(random, 0, 254)]));
    case 'truncated scan':
      // The scan stops early; what follows it (the next scan, or EOI) comes straight after.
      return splice(jpeg, at, to - at);
    case 'bad huffman code': {
      // Sixteen 1-bits, stuffed: no JPEG Huffman table has a code of all ones. Not straight after
      // a 0xFF, whose stuffed 0x00 would become a marker.
      const p = jpeg[at - 1] === 0xff ? Math.min(to - 1, at + 1) : at;
      return splice(jpeg, p, Math.min(4, to - p), Buffer.from([0xff, 0x00, 0xff, 0x00]));
    }
    case 'zeroed run': {
      const out = Buffer.from(jpeg);
      const end = Math.min(to, at + between(random, 2, 32));
      out.fill(0, at, end);
      // A 0xFF left right before the run now reads as 0xFF 0x00, stuffing: still data.
      return out;
    }
    case 'restart marker': {
      const markers = restartMarkers(jpeg, scan);
      const m = markers[between(random, 0, markers.length - 1)];
      if (m === undefined) return corrupt(jpeg, 'bit flip', random);
      const choice = between(random, 0, 2);
      if (choice === 0) return splice(jpeg, m, 2); // a marker missing
      const out = Buffer.from(jpeg);
      if (choice === 1) out[m + 1] = 0xd0 + (((out[m + 1] ?? 0xd0) - 0xd0 + between(random, 1, 7)) % 8); // out of sequence
      else return splice(jpeg, m, 0, Buffer.from([0xff, out[m + 1] ?? 0xd0])); // a marker twice
      return out;
    }
  }
}

export interface Case {
  readonly base: BaseImage;
  readonly corruption: Corruption;
  readonly bytes: Buffer;
}

/** `perBase` corruptions of each base image, kinds in turn (restart-marker damage only where there are markers). */
export async function* corpus(bases: readonly BaseImage[], perBase: number, seed: number): AsyncGenerator<Case> {
  const random = randomFrom(seed);
  for (const base of bases) {
    const jpeg = await baseJpeg(base);
    const kinds = CORRUPTIONS.filter((k) => k !== 'restart marker' || base.coding === 'restart');
    for (let i = 0; i < perBase; i += 1) {
      const corruption = kinds[i % kinds.length] ?? 'bit flip';
      yield { base, corruption, bytes: corrupt(jpeg, corruption, random) };
    }
  }
}

/**
 * A decode of `bytes` by sharp with nothing else running: `failed` when libvips refused it
 * (failOn 'warning'), `warned` when it decoded it although libjpeg warned (libvips only logs the
 * warnings of the last strip it decodes). Only meaningful with no other sharp operation in flight.
 */
export async function decodedAlone(bytes: Buffer, resize?: sharp.ResizeOptions): Promise<{ failed: boolean; warned: boolean }> {
  let image = sharp(bytes, { failOn: 'warning' });
  if (resize) image = image.resize(resize);
  let warned = false;
  image.on('warning', (message: string) => {
    if (message.startsWith('read gave')) warned = true;
  });
  try {
    await image.raw().toBuffer();
    return { failed: false, warned };
  } catch {
    return { failed: true, warned };
  }
}

/**
 * `base` cut short inside its last row of blocks (EOI kept), at the cut nearest the end that libvips
 * decodes at full scale although libjpeg warns: the damage shows only in the last strip. For a
 * single-scan base in 4:4:4 or grey (in 4:2:0, libjpeg reads the last rows before that strip).
 */
export async function damagedInLastStrip(base: BaseImage): Promise<Buffer> {
  const jpeg = await baseJpeg(base);
  const [start, end] = scanData(jpeg).at(-1) ?? [0, 0];
  for (let at = end - 2; at > start + (end - start) * 0.95; at -= 1) {
    if (jpeg[at - 1] === 0xff) continue;
    const cut = Buffer.concat([jpeg.subarray(0, at), jpeg.subarray(end)]);
    const full = await decodedAlone(cut);
    if (!full.failed && full.warned) return cut;
  }
  throw new Error('test setup: no cut damages only the last strip (has libvips changed?)');
}
