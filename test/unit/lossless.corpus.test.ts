// The proof behind the reduced-scale validation, kept as a test: a deterministic corpus of
// corrupted progressive JPEGs (test/support/jpeg-corpus.ts), each decoded in full and as the worker
// validates it (1/8 scale), all with failOn 'warning'. Not one may be refused by the full decode
// and accepted by the reduced one (nor the other way round). A subset of test/corpus/jpeg-scales.ts,
// which runs every coding at every scale and prints the tables quoted in README "What it writes".
//
// And why baseline JPEGs are validated in full: a baseline file damaged only at its end is refused
// by a full decode and accepted by a 1/2-scale one (libvips does not look at the warnings of the
// last 8-row strip it decodes). The worker must refuse it, whatever decode plan it picks.
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROGRESSIVE_SCALE, RAW_SINK_MAX_PIXELS, validateByDecoding } from '../../src/enroll/decode.ts';
import { checkImage } from '../../src/enroll/images.ts';
import { imageNormaliser, type ImageLimits } from '../../src/enroll/normalise.ts';
import { baseJpeg, corpus, scanData, type BaseImage, type Case } from '../support/jpeg-corpus.ts';

const LIMITS: ImageLimits = { maxImagePixels: 100_000_000, minImageDimension: 1, maxReferenceDimension: undefined };
const SEED = 20261130;
/** 6 base images × 350 corruptions: 2,100 files. */
const PER_BASE = 350;
const PROGRESSIVE_BASES: BaseImage[] = (['4:2:0', '4:4:4', 'grey'] as const).flatMap((chroma, i) => [
  { coding: 'progressive', width: 517, height: 389, chroma, seed: SEED + i, quality: 80 + i * 5 },
  { coding: 'progressive', width: 701, height: 467, chroma, seed: SEED + 10 + i, quality: 92 - i * 5 },
]);

const accepted = (p: Promise<unknown>) =>
  p.then(
    () => true,
    () => false,
  );

interface Verdict {
  readonly corruption: string;
  readonly structure: boolean;
  readonly full?: boolean;
  readonly reduced?: boolean;
}

async function judge(c: Case): Promise<Verdict> {
  let info;
  try {
    info = checkImage(c.bytes, 'corpus', 1e9);
  } catch {
    return { corruption: c.corruption, structure: false };
  }
  return {
    corruption: c.corruption,
    structure: true,
    full: await accepted(sharp(c.bytes, { failOn: 'warning' }).raw().toBuffer()),
    reduced: await accepted(validateByDecoding(c.bytes, info, 'corpus', LIMITS, PROGRESSIVE_SCALE, undefined)),
  };
}

describe('the corrupted-JPEG corpus: progressive JPEGs at 1/8 scale', () => {
  let verdicts: Verdict[] = [];

  beforeAll(async () => {
    imageNormaliser({ parallel: 2 }); // sharp's process-wide settings, as in the worker
    const running = new Set<Promise<void>>();
    for await (const c of corpus(PROGRESSIVE_BASES, PER_BASE, SEED)) {
      const job = judge(c).then((v) => {
        verdicts.push(v);
      });
      running.add(job);
      void job.finally(() => running.delete(job));
      if (running.size >= 2) await Promise.race(running);
    }
    await Promise.all(running);
  }, 180_000);

  it('is large and varied: thousands of files, most corruption kinds refused at times and accepted at times', () => {
    // Assess
    const decoded = verdicts.filter((v) => v.structure);
    expect(verdicts).toHaveLength(PROGRESSIVE_BASES.length * PER_BASE);
    expect(decoded.length).toBeGreaterThan(0.95 * verdicts.length);
    const refused = decoded.filter((v) => v.full === false).length;
    expect(refused).toBeGreaterThan(0.3 * decoded.length);
    expect(refused).toBeLessThan(0.95 * decoded.length);
  });

  it('has no file that the full decode refuses and the 1/8-scale validation accepts, nor the other way round', () => {
    // Assess
    const differing = verdicts.filter((v) => v.structure && v.full !== v.reduced);
    expect(differing).toEqual([]);
  });
});

/**
 * A baseline JPEG cut short inside its last row of blocks, EOI kept: the nearest cut to the end
 * that a full decode refuses and a 1/2-scale decode accepts.
 */
async function damagedOnlyAtItsEnd(width: number, height: number): Promise<Buffer> {
  const jpeg = await baseJpeg({ coding: 'baseline', width, height, chroma: '4:2:0', seed: SEED, quality: 85 });
  const [start, end] = scanData(jpeg).at(-1) ?? [0, 0];
  const half = { width: Math.floor(width / 4), height: Math.floor(height / 4), fit: 'fill' as const, fastShrinkOnLoad: false };
  for (let at = end - 8; at > start + (end - start) * 0.9; at -= 16) {
    const cut = Buffer.concat([jpeg.subarray(0, jpeg[at - 1] === 0xff ? at + 1 : at), jpeg.subarray(end)]);
    const full = await accepted(sharp(cut, { failOn: 'warning' }).raw().toBuffer());
    const atHalf = await accepted(sharp(cut, { failOn: 'warning' }).resize(half).raw().toBuffer());
    if (!full && atHalf) return cut;
  }
  throw new Error('test setup: no cut that only a reduced-scale decode accepts (has libvips changed?)');
}

describe('baseline JPEGs are validated in full', () => {
  const normalise = imageNormaliser({ parallel: 2 });
  const run = (bytes: Buffer, preview?: number) =>
    normalise(bytes, checkImage(bytes, 'images[0]', 1e9), 'images[0]', LIMITS, preview === undefined ? {} : { preview: { maxDimension: preview } });

  it.each([
    ['a small photo (raw pixels)', 800, 600, undefined],
    ['a large photo (streamed)', 2400, 1800, undefined],
    ['a large photo with a preview of a third of it', 2400, 1800, 800],
    ['a large photo with a small preview (two steps)', 2400, 1800, 200],
  ] as const)('refuses %s damaged only at its end, which a 1/2-scale decode would accept', async (_, width, height, preview) => {
    // Prepare
    const damaged = await damagedOnlyAtItsEnd(width, height);
    expect(width * height < RAW_SINK_MAX_PIXELS).toBe(width === 800);

    // Act + Assess
    await expect(run(damaged, preview)).rejects.toMatchObject({ code: 'INVALID_IMAGE' });
  });
});
