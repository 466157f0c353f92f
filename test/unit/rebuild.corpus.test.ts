// The proof that a rebuild validates as a full decode does, kept as a test: deterministic corpora
// of corrupted JPEGs (test/support/jpeg-corpus.ts), each judged by a full libvips decode with
// nothing else running — refused when libvips fails it or libjpeg warned at all — and as the worker
// makes references of them (libjpeg-turbo reading every coefficient, refusing any warning), several
// at once. Not one may be refused by the one and accepted by the other.
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkImage, walkJpeg, type CheckedImageInfo } from '../../src/image/images.ts';
import { imageNormaliser, type ImageLimits } from '../../src/image/normalise.ts';
import { cameraJpeg, jpegSegment, withJpegSegments } from '../support/images.ts';
import { baseJpeg, corpus, damagedInLastStrip, decodedAlone, scanData, type BaseImage, type Case } from '../support/jpeg-corpus.ts';

const LIMITS: ImageLimits = { maxImagePixels: 100_000_000, minImageDimension: 1, maxReferenceDimension: undefined };
const SEED = 20261130;

interface Judged {
  readonly c: Case;
  readonly info?: CheckedImageInfo;
  /** The full decode, alone. */
  readonly full?: { failed: boolean; warned: boolean };
  /** The worker made a reference of it. */
  stored?: boolean;
  /** Why the worker refused it. */
  refusal?: string;
}

/** Judges every case alone (in order), then validates them as the worker does, two at a time. */
async function judgeAll(bases: readonly BaseImage[], perBase: number): Promise<Judged[]> {
  const normalise = imageNormaliser({ parallel: 2 }); // sharp's process-wide settings, as in the worker
  const judged: Judged[] = [];
  for await (const c of corpus(bases, perBase, SEED)) {
    let info: CheckedImageInfo;
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
    const job = normalise(j.c.bytes, info, 'corpus', LIMITS).then(
      () => {
        j.stored = true;
      },
      (e: unknown) => {
        j.stored = false;
        j.refusal = e instanceof Error ? e.message : String(e);
      },
    );
    running.add(job);
    void job.finally(() => running.delete(job));
    if (running.size >= 2) await Promise.race(running);
  }
  await Promise.all(running);
  return judged;
}

/** What libjpeg-turbo's djpeg writes to stderr decoding the file (its warnings and errors). */
const djpegWarnings = (bytes: Buffer) => spawnSync('djpeg', ['-outfile', '/dev/null'], { input: bytes, encoding: 'latin1' }).stderr.trim();

/**
 * The rebuild may be stricter than libvips' full decode, never laxer: every file the full decode
 * refuses is refused, and every file only the rebuild refuses is either one libjpeg-turbo's djpeg
 * reports as corrupt (libvips stops at the last row; libjpeg reads on to EOI, where bytes left over in
 * the last scan are reported) or one whose coefficients the baseline Huffman tables cannot code (a
 * corrupt progressive refinement can make them so: no real 8-bit JPEG has them).
 */
function expectRefusalsExplained(judged: readonly Judged[]): void {
  const accepted = judged.filter((j) => j.info && refusedInFull(j) && j.stored).map((j) => `${j.c.base.coding} ${j.c.base.chroma} ${j.c.corruption}`);
  expect(accepted).toEqual([]);
  const unexplained = judged
    .filter((j) => j.info && !refusedInFull(j) && j.stored === false)
    .filter((j) => !j.refusal?.includes('a DCT coefficient outside the range of 8-bit baseline JPEG') && djpegWarnings(j.c.bytes) === '')
    .map((j) => `${j.c.base.coding} ${j.c.base.chroma} ${j.c.corruption}: ${j.refusal ?? ''}`);
  expect(unexplained).toEqual([]);
}

const refusedInFull = (j: Judged) => j.full !== undefined && (j.full.failed || j.full.warned);

describe('the corrupted-JPEG corpus: progressive JPEGs', () => {
  /** 6 base images × 250 corruptions: 1,500 files. */
  const PER_BASE = 250;
  const BASES: BaseImage[] = (['4:2:0', '4:4:4', 'grey'] as const).flatMap((chroma, i) => [
    { coding: 'progressive', width: 517, height: 389, chroma, seed: SEED + i, quality: 80 + i * 5 },
    { coding: 'progressive', width: 701, height: 467, chroma, seed: SEED + 10 + i, quality: 92 - i * 5 },
  ]);
  let judged: Judged[] = [];

  beforeAll(async () => {
    judged = await judgeAll(BASES, PER_BASE);
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

  it('has no file that the full decode refuses and the rebuild accepts; what only the rebuild refuses is corrupt by djpeg or not codable baseline', () => {
    // Assess
    expectRefusalsExplained(judged);
  }, 120_000);
});

describe('the corrupted-JPEG corpus: single-scan JPEGs', () => {
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
    judged = await judgeAll(BASES, PER_BASE);
  }, 180_000);

  it('holds many files whose damage only libjpeg\u2019s warnings report (libvips decodes them without failing)', () => {
    // Assess: without heeding warnings, the next test fails
    const warningOnly = judged.filter((j) => j.info && j.full && !j.full.failed && j.full.warned);
    expect(judged).toHaveLength(BASES.length * PER_BASE);
    expect(warningOnly.length).toBeGreaterThan(40);
  });

  it('has no file that the full decode refuses and the rebuild accepts; what only the rebuild refuses is corrupt by djpeg or not codable baseline', () => {
    // Assess
    expectRefusalsExplained(judged);
  }, 120_000);
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

describe('a JPEG damaged only at its end is refused', () => {
  const normalise = imageNormaliser({ parallel: 2 });
  const run = (bytes: Buffer, preview?: number) =>
    normalise(bytes, checkImage(bytes, 'images[0]', 1e9), 'images[0]', LIMITS, preview === undefined ? {} : { preview: { maxDimension: preview } });

  it.each([
    ['a small photo', 500, 380, undefined],
    ['a large photo', 2400, 1800, undefined],
    ['a large photo with a preview for the face check', 2400, 1800, 800],
  ] as const)('refuses %s cut short where a 1/2-scale decode sees nothing wrong', async (_, width, height, preview) => {
    // Prepare
    const damaged = await damagedOnlyAtItsEnd(width, height);

    // Act + Assess
    await expect(run(damaged, preview)).rejects.toMatchObject({ code: 'INVALID_IMAGE' });
  }, 60_000);

  it.each([
    ['grey', 'grey', 480, 360],
    ['grey, large', 'grey', 1024, 768],
    ['4:4:4', '4:4:4', 1024, 768],
    ['4:4:4, odd height', '4:4:4', 1100, 581],
  ] as const)('refuses a JPEG (%s) whose damage libvips decodes without complaint and libjpeg reports, rebuilt or re-encoded', async (_, chroma, width, height) => {
    // Prepare: damage only in the last strip, which failOn alone lets through
    const damaged = await damagedInLastStrip({ coding: 'baseline', width, height, chroma, seed: SEED + width, quality: 88 });
    expect(await decodedAlone(damaged)).toEqual({ failed: false, warned: true });
    const sideways = withJpegSegments(damaged, [await exifSegment(6)]);
    const foreign = withJpegSegments(damaged, [jpegSegment(0xe2, Buffer.concat([Buffer.from('ICC_PROFILE\0\x01\x01', 'latin1'), Buffer.alloc(192, 7)]))]);

    // Act
    const results = await Promise.allSettled([run(damaged), run(sideways), run(foreign)]);

    // Assess: rebuilt (libjpeg-turbo's warning), turned or re-encoded (libvips' logged warning)
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'stored'))).toEqual(['INVALID_IMAGE', 'INVALID_IMAGE', 'INVALID_IMAGE']);
    const [rebuilt] = results;
    expect(rebuilt?.status === 'rejected' && String((rebuilt.reason as Error).message)).toMatch(/libjpeg warns: Corrupt JPEG data/);
  }, 60_000);
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
    expect([stored.path, reencoded.path]).toEqual(['rebuilt', 'reencoded']);
  }, 60_000);
});
