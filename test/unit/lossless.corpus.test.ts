// The proof behind the reduced-scale validation, kept as a test: deterministic corpora of corrupted
// JPEGs (test/support/jpeg-corpus.ts), each judged by a full decode with nothing else running —
// refused when libvips fails it or libjpeg warned at all — and as the worker validates it, at its
// reduced scale, several at once. Not one may be refused by the one and accepted by the other. A
// subset of test/corpus/jpeg-scales.ts, which runs every coding at every scale and prints the
// tables quoted in README "What it writes".
//
// The judge is sharp itself, one decode at a time, so that a warning's source is never in doubt;
// the worker's decodes run two at a time, through the ledger that tells their warnings apart.
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { RAW_SINK_MAX_PIXELS, readsEveryRow, reducedScale, validateByDecoding, validationScale, type ValidationScale } from '../../src/enroll/decode.ts';
import { checkImage, JPEG, walkJpeg, type ImageInfo } from '../../src/enroll/images.ts';
import { imageNormaliser, type ImageLimits } from '../../src/enroll/normalise.ts';
import { cameraJpeg, jpegSegment, withJpegSegments } from '../support/images.ts';
import { baseJpeg, corpus, damagedInLastStrip, decodedAlone, scanData, type BaseImage, type Case } from '../support/jpeg-corpus.ts';

const LIMITS: ImageLimits = { maxImagePixels: 100_000_000, minImageDimension: 1, maxReferenceDimension: undefined };
const SEED = 20261130;

const accepted = (p: Promise<unknown>) =>
  p.then(
    () => true,
    () => false,
  );

interface Judged {
  readonly c: Case;
  readonly info?: ImageInfo;
  /** The full decode, alone. */
  readonly full?: { failed: boolean; warned: boolean };
  /** The worker's validation at its reduced scale. */
  reduced?: boolean;
}

/** Judges every case alone (in order), then validates them as the worker does, two at a time. */
async function judgeAll(bases: readonly BaseImage[], perBase: number, progressive: boolean): Promise<Judged[]> {
  imageNormaliser({ parallel: 2 }); // sharp's process-wide settings, as in the worker
  const judged: Judged[] = [];
  for await (const c of corpus(bases, perBase, SEED)) {
    let info: ImageInfo;
    try {
      info = checkImage(c.bytes, 'corpus', 1e9);
    } catch {
      judged.push({ c });
      continue;
    }
    judged.push({ c, info, full: await decodedAlone(c.bytes) });
  }
  const running = new Set<Promise<void>>();
  for (const j of judged) {
    const { info } = j;
    if (!info) continue;
    const job = accepted(validateByDecoding(j.c.bytes, info, 'corpus', LIMITS, reducedScale(info.height, progressive), undefined)).then((ok) => {
      j.reduced = ok;
    });
    running.add(job);
    void job.finally(() => running.delete(job));
    if (running.size >= 2) await Promise.race(running);
  }
  await Promise.all(running);
  return judged;
}

const refusedInFull = (j: Judged) => j.full !== undefined && (j.full.failed || j.full.warned);

describe('the corrupted-JPEG corpus: progressive JPEGs at 1/8 scale', () => {
  /** 6 base images × 250 corruptions: 1,500 files. */
  const PER_BASE = 250;
  const BASES: BaseImage[] = (['4:2:0', '4:4:4', 'grey'] as const).flatMap((chroma, i) => [
    { coding: 'progressive', width: 517, height: 389, chroma, seed: SEED + i, quality: 80 + i * 5 },
    { coding: 'progressive', width: 701, height: 467, chroma, seed: SEED + 10 + i, quality: 92 - i * 5 },
  ]);
  let judged: Judged[] = [];

  beforeAll(async () => {
    judged = await judgeAll(BASES, PER_BASE, true);
  }, 180_000);

  it('is large and varied: thousands of files, most corruption kinds refused at times and accepted at times', () => {
    // Assess
    const decoded = judged.filter((j) => j.info);
    expect(judged).toHaveLength(BASES.length * PER_BASE);
    expect(decoded.length).toBeGreaterThan(0.95 * judged.length);
    const refused = decoded.filter(refusedInFull).length;
    expect(refused).toBeGreaterThan(0.3 * decoded.length);
    expect(refused).toBeLessThan(0.95 * decoded.length);
  });

  it('has no file that the full decode refuses and the 1/8-scale validation accepts, nor the other way round', () => {
    // Assess
    const differing = judged.filter((j) => j.info && refusedInFull(j) === j.reduced).map((j) => `${j.c.base.chroma} ${j.c.corruption}`);
    expect(differing).toEqual([]);
  });
});

describe('the corrupted-JPEG corpus: single-scan JPEGs at their reduced scale', () => {
  /** Baseline, optimised and restart-interval files in 4:2:0, 4:4:4 and grey, 389 rows high (1/4) and 480 (1/8): 18 × 70 = 1,260 files. */
  const PER_BASE = 70;
  const BASES: BaseImage[] = (['baseline', 'optimised', 'restart'] as const).flatMap((coding, c) =>
    (['4:2:0', '4:4:4', 'grey'] as const).flatMap((chroma, i) => [
      { coding, width: 421, height: 389, chroma, seed: SEED + 100 * c + i, quality: 78 + 3 * i + c, restartInterval: 2 + c },
      { coding, width: 397, height: 480, chroma, seed: SEED + 100 * c + 10 + i, quality: 90 - 3 * i - c, restartInterval: 3 + i },
    ]),
  );
  let judged: Judged[] = [];

  beforeAll(async () => {
    judged = await judgeAll(BASES, PER_BASE, false);
  }, 180_000);

  it('holds many files whose damage only libjpeg\u2019s logged warnings report, and files a 1/8 decode never reads the damage of', async () => {
    // Prepare
    const decoded = judged.filter((j) => j.info);
    const warningOnly = decoded.filter((j) => j.full && !j.full.failed && j.full.warned);
    const skipped = decoded.filter((j) => j.info && !readsEveryRow(j.info.height, 8) && refusedInFull(j));

    // Act: what a 1/8-scale validation says of the files whose last row of blocks it would not read
    const acceptedAtEighth: Judged[] = [];
    for (const j of skipped) if (j.info && (await accepted(validateByDecoding(j.c.bytes, j.info, 'corpus', LIMITS, 8, undefined)))) acceptedAtEighth.push(j);

    // Assess: remove either rule and the next test fails
    expect(judged).toHaveLength(BASES.length * PER_BASE);
    expect(warningOnly.length).toBeGreaterThan(40);
    expect(acceptedAtEighth.length).toBeGreaterThan(10);
  }, 60_000);

  it('has no file that the full decode refuses and the worker\u2019s validation accepts, nor the other way round', () => {
    // Assess
    const differing = judged.filter((j) => j.info && refusedInFull(j) === j.reduced).map((j) => `${j.c.base.coding} ${j.c.base.chroma} ${j.c.base.height} ${j.c.corruption}`);
    expect(differing).toEqual([]);
  });
});

/**
 * A baseline JPEG cut short inside its last row of blocks, EOI kept: the nearest cut to the end
 * that a full decode refuses and a 1/2-scale decode accepts (libvips' last strip).
 */
const damagedAtEnd = new Map<string, Promise<Buffer>>();
function damagedOnlyAtItsEnd(width: number, height: number): Promise<Buffer> {
  const key = `${width}x${height}`;
  const made = damagedAtEnd.get(key) ?? findDamagedOnlyAtItsEnd(width, height);
  damagedAtEnd.set(key, made);
  return made;
}

async function findDamagedOnlyAtItsEnd(width: number, height: number): Promise<Buffer> {
  const jpeg = await baseJpeg({ coding: 'baseline', width, height, chroma: '4:2:0', seed: SEED, quality: 85 });
  const [start, end] = scanData(jpeg).at(-1) ?? [0, 0];
  const half = { width: Math.floor(width / 4), height: Math.floor(height / 4), fit: 'fill' as const, fastShrinkOnLoad: false };
  for (let at = end - 8; at > start + (end - start) * 0.9; at -= 16) {
    const cut = Buffer.concat([jpeg.subarray(0, jpeg[at - 1] === 0xff ? at + 1 : at), jpeg.subarray(end)]);
    const full = await decodedAlone(cut);
    const atHalf = await decodedAlone(cut, half);
    if (full.failed && !atHalf.failed) return cut;
  }
  throw new Error('test setup: no cut that only a reduced-scale decode accepts (has libvips changed?)');
}

/** The APP1 (EXIF) segment of a camera JPEG turned by `orientation`. */
async function exifSegment(orientation: number): Promise<Buffer> {
  const camera = await cameraJpeg({ orientation });
  let segment: Buffer | undefined;
  walkJpeg(camera, 0, (marker, start, end) => {
    if (marker === 0xe1 && segment === undefined) segment = camera.subarray(start, end);
  });
  if (!segment) throw new Error('test setup: no EXIF segment');
  return segment;
}

describe('a JPEG damaged only at its end is refused, whatever the scale it is validated at', () => {
  const normalise = imageNormaliser({ parallel: 2 });
  const run = (bytes: Buffer, preview?: number) =>
    normalise(bytes, checkImage(bytes, 'images[0]', 1e9), 'images[0]', LIMITS, preview === undefined ? {} : { preview: { maxDimension: preview } });

  it.each([
    ['a small photo (full scale, raw pixels)', 500, 380, undefined, 1],
    ['a large photo (1/8)', 2400, 1800, undefined, 8],
    ['a large photo with a preview of a third of it', 2400, 1800, 800, 8],
    ['a large photo with a small preview (two steps)', 2400, 1800, 200, 8],
  ] as const)('refuses %s cut short where a 1/2-scale decode sees nothing wrong', async (_, width, height, preview, scale) => {
    // Prepare
    const damaged = await damagedOnlyAtItsEnd(width, height);
    expect(width * height < RAW_SINK_MAX_PIXELS).toBe(width === 500);
    expect(validationScale({ width, height, type: JPEG }, false)).toBe(scale);

    // Act + Assess
    await expect(run(damaged, preview)).rejects.toMatchObject({ code: 'INVALID_IMAGE' });
  }, 60_000);

  it.each([
    ['grey, at full scale', 'grey', 480, 360, 1],
    ['grey, at 1/8', 'grey', 1024, 768, 8],
    ['4:4:4, at 1/8', '4:4:4', 1024, 768, 8],
    ['4:4:4, at 1/4', '4:4:4', 1100, 581, 4],
  ] as const)('refuses a JPEG (%s) whose damage libvips decodes without complaint and libjpeg reports, on both paths', async (_, chroma, width, height, scale) => {
    // Prepare: damage only in the last strip, which failOn alone lets through
    const damaged = await damagedInLastStrip({ coding: 'baseline', width, height, chroma, seed: SEED + width, quality: 88 });
    expect(await decodedAlone(damaged)).toEqual({ failed: false, warned: true });
    expect(validationScale(checkImage(damaged, 'x', 1e9), false)).toBe(scale);
    const sideways = withJpegSegments(damaged, [await exifSegment(6)]);

    // Act
    const stored = run(damaged);
    const reencoded = run(sideways);

    // Assess
    await expect(stored).rejects.toMatchObject({ code: 'INVALID_IMAGE', message: expect.stringContaining('libjpeg reported corrupt data') });
    await expect(reencoded).rejects.toMatchObject({ code: 'INVALID_IMAGE', message: expect.stringContaining('libjpeg reported corrupt data') });
  }, 60_000);

  it('reads every row of blocks at the scale it picks, whatever the height (a single-scan JPEG cut in its last row)', async () => {
    // Prepare: heights around the strips of every scale, in the three samplings
    const heights = [256, 257, 260, 263, 264, 289, 290, 296, 321, 323, 327, 328, 337, 352, 385, 386, 388, 391, 392, 417, 449];
    const refusedAt: string[] = [];
    const acceptedAt: string[] = [];
    for (const chroma of ['4:2:0', '4:4:4', 'grey'] as const) {
      for (const height of heights) {
        const jpeg = await baseJpeg({ coding: 'baseline', width: 40, height, chroma, seed: SEED + height, quality: 90 });
        const [, end] = scanData(jpeg).at(-1) ?? [0, 0];
        const cut = Buffer.concat([jpeg.subarray(0, end - 3), jpeg.subarray(end)]);
        const info = checkImage(cut, 'x', 1e9);
        const scale: ValidationScale = reducedScale(height, false);

        // Act
        const ok = await accepted(validateByDecoding(cut, info, 'x', LIMITS, scale, undefined));

        // Assess (below)
        (ok ? acceptedAt : refusedAt).push(`${chroma} ${height} at 1/${scale}`);
      }
    }
    expect(acceptedAt).toEqual([]);
    expect(refusedAt).toHaveLength(3 * heights.length);
  }, 60_000);

  it('states libvips\u2019 behaviour the rule rests on: at 1/8, a height of 64k+1 … 64k+7 leaves the last row of blocks unread', async () => {
    // Prepare
    const jpeg = await baseJpeg({ coding: 'baseline', width: 40, height: 389, chroma: '4:4:4', seed: SEED, quality: 90 });
    const [, end] = scanData(jpeg).at(-1) ?? [0, 0];
    const cut = Buffer.concat([jpeg.subarray(0, end - 3), jpeg.subarray(end)]);

    // Act
    const atEighth = await decodedAlone(cut, { width: 2, height: 24, fit: 'fill', fastShrinkOnLoad: false });
    const atQuarter = await decodedAlone(cut, { width: 5, height: 48, fit: 'fill', fastShrinkOnLoad: false });

    // Assess
    expect(atEighth).toEqual({ failed: false, warned: false });
    expect(atQuarter.failed || atQuarter.warned).toBe(true);
  });
});

describe('an undamaged image that makes libvips log an unrelated warning', () => {
  const normalise = imageNormaliser({ parallel: 2 });
  const run = (bytes: Buffer) => normalise(bytes, checkImage(bytes, 'images[0]', 1e9), 'images[0]', LIMITS);

  it('is stored: an unknown JFIF density unit, a corrupt ICC profile', async () => {
    // Prepare
    const jpeg = await baseJpeg({ coding: 'baseline', width: 1024, height: 768, chroma: '4:2:0', seed: SEED, quality: 85 });
    // JFIF with density unit 7 (0–2 are defined)
    const jfif = withJpegSegments(jpeg, [jpegSegment(0xe0, Buffer.from([0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 7, 0, 72, 0, 72, 0, 0]))]);
    const badProfile = withJpegSegments(jpeg, [jpegSegment(0xe2, Buffer.concat([Buffer.from('ICC_PROFILE\0\x01\x01', 'latin1'), Buffer.alloc(192, 7)]))]);
    const heard: string[] = [];
    const listen = (bytes: Buffer) => {
      const image = sharp(bytes, { failOn: 'warning' });
      image.on('warning', (m: string) => heard.push(m));
      return image;
    };
    await listen(jfif).raw().toBuffer();
    await listen(badProfile).toColourspace('srgb').raw().toBuffer();
    expect(heard).toEqual(expect.arrayContaining(['unknown JFIF resolution unit', 'corrupt profile']));

    // Act
    const stored = await run(jfif);
    const reencoded = await run(badProfile);

    // Assess
    expect([stored.path, reencoded.path]).toEqual(['lossless', 'reencoded']);
  }, 60_000);
});
