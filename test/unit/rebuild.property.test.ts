// Nothing a sender writes survives but the image itself: arbitrary bytes put into valid JPEGs and
// PNGs — at every marker or chunk boundary, inside the spare room of a kept segment, after the
// entropy-coded data, after the zlib stream, as a segment or chunk of any type — either make the
// image refused with a documented code, or the stored reference holds none of them, decodes to the
// clean original's pixels bit for bit, and passes libjpeg-turbo's djpeg or libpng's pngfix with no
// warning. The tools come from Debian's libjpeg-turbo-progs and libpng-tools (.ci/run installs them).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkImage, walkJpeg, walkPng } from '../../src/image/images.ts';
import { imageNormaliser, type ImageLimits } from '../../src/image/normalise.ts';
import { JOB_ERROR_CODES, JobError } from '../../src/job/errors.ts';
import { pngChunk } from '../support/images.ts';

const LIMITS: ImageLimits = { maxImagePixels: 1e8, minImageDimension: 8, maxReferenceDimension: undefined };
const normalise = imageNormaliser({ parallel: 2 });
const scratch = mkdtempSync(join(tmpdir(), 'rebuild-property-'));

/** A small photo-like picture: gradients and edges, so every coding has real coefficients. */
async function picture(width: number, height: number, channels: 3 | 4 = 3): Promise<sharp.Sharp> {
  const raw = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const at = (y * width + x) * channels;
      raw[at] = (x * 7 + y * 3) & 0xff;
      raw[at + 1] = (x * y) & 0xff;
      raw[at + 2] = x > width / 2 ? 220 : (y * 5) & 0xff;
      if (channels === 4) raw[at + 3] = (x + y) % 3 === 0 ? 0 : 255;
    }
  }
  return sharp(raw, { raw: { width, height, channels } });
}

/** The JPEGs of the property: every coding and sampling the worker rebuilds. */
async function jpegBases(): Promise<Record<string, Buffer>> {
  const p = () => picture(61, 43);
  const restart = (jpeg: Buffer) => {
    // A restart interval of 1 MCU, by cjpeg-equivalent re-encoding through djpeg/cjpeg is not at hand: jpegtran is.
    const file = join(scratch, 'restart-in.jpg');
    writeFileSync(file, jpeg);
    return execFileSync('jpegtran', ['-restart', '1B', file]);
  };
  return {
    'baseline 4:2:0': await (await p()).jpeg({ quality: 85, optimiseCoding: false }).toBuffer(),
    'optimised 4:4:4': await (await p()).jpeg({ quality: 90, chromaSubsampling: '4:4:4', optimiseCoding: true }).toBuffer(),
    'progressive 4:2:0': await (await p()).jpeg({ quality: 80, progressive: true }).toBuffer(),
    'progressive grey': await (await p()).greyscale().toColourspace('b-w').jpeg({ quality: 80, progressive: true }).toBuffer(),
    'restart intervals 4:2:0': restart(await (await p()).jpeg({ quality: 85 }).toBuffer()),
  };
}

async function pngBases(): Promise<Record<string, Buffer>> {
  return {
    truecolour: await (await picture(37, 29)).png().toBuffer(),
    alpha: await (await picture(37, 29, 4)).png().toBuffer(),
    palette: await (await picture(37, 29)).png({ palette: true, colours: 16 }).toBuffer(),
    grey: await (await picture(37, 29)).greyscale().toColourspace('b-w').png().toBuffer(),
    '16-bit': await (await picture(37, 29)).toColourspace('rgb16').png().toBuffer(),
  };
}

/** Where bytes can go into a JPEG: between segments, at the end of a segment's payload (its length grown), after a scan's data. */
function jpegPlaces(jpeg: Buffer): { at: number; kind: 'between' | 'inside' | 'after scan'; segment?: number }[] {
  const places: { at: number; kind: 'between' | 'inside' | 'after scan'; segment?: number }[] = [];
  walkJpeg(jpeg, 0, (marker, start, end) => {
    if (marker === 0xd8) return places.push({ at: end, kind: 'between' });
    if (marker === 0xd9) return undefined;
    if (marker === 0xda) {
      places.push({ at: end, kind: 'after scan' });
    } else if (marker < 0xd0 || marker > 0xd7) {
      places.push({ at: end, kind: 'inside', segment: start });
    }
    return places.push({ at: end, kind: 'between' });
  });
  return places;
}

/** Bytes put in at a place; a segment's length is grown so the structure stays whole. */
function insertIntoJpeg(jpeg: Buffer, place: { at: number; kind: string; segment?: number }, payload: Buffer, asSegment: number | undefined): Buffer {
  if (place.kind === 'inside' && place.segment !== undefined) {
    const grown = Buffer.from(jpeg);
    grown.writeUInt16BE(Math.min(0xffff, grown.readUInt16BE(place.segment + 2) + payload.length), place.segment + 2);
    return Buffer.concat([grown.subarray(0, place.at), payload, grown.subarray(place.at)]);
  }
  const bytes = asSegment === undefined ? payload : Buffer.concat([Buffer.from([0xff, asSegment, (payload.length + 2) >> 8, (payload.length + 2) & 0xff]), payload]);
  return Buffer.concat([jpeg.subarray(0, place.at), bytes, jpeg.subarray(place.at)]);
}

const pngChunkOf = (type: string, data: Buffer) => pngChunk(type, data);

/** Bytes put into a PNG: as a chunk of any type at any chunk boundary, or after the zlib stream inside the last IDAT. */
function insertIntoPng(png: Buffer, boundary: number, payload: Buffer, how: { type: string } | 'after zlib'): Buffer {
  const ends: number[] = [];
  let lastIdat: [number, number] | undefined;
  walkPng(png, (start, end) => {
    ends.push(end);
    if (png.toString('latin1', start + 4, start + 8) === 'IDAT') lastIdat = [start, end];
  });
  if (how === 'after zlib' && lastIdat) {
    const [start, end] = lastIdat;
    const data = Buffer.concat([png.subarray(start + 8, end - 4), payload]);
    return Buffer.concat([png.subarray(0, start), pngChunkOf('IDAT', data), png.subarray(end)]);
  }
  const at = ends[boundary % Math.max(1, ends.length - 1)] ?? 8;
  return Buffer.concat([png.subarray(0, at), pngChunkOf(how === 'after zlib' ? 'IDAT' : how.type, payload), png.subarray(at)]);
}

const rawOf = async (bytes: Buffer) => {
  const { data, info } = await sharp(bytes).ensureAlpha().raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  return `${info.width}×${info.height}×${info.channels} ${createHash('sha256').update(data).digest('hex')}`;
};

/** djpeg / pngfix on the stored reference: the exit status and anything written to stderr. */
function toolVerdict(bytes: Buffer, png: boolean): string {
  const file = join(scratch, png ? 'out.png' : 'out.jpg');
  writeFileSync(file, bytes);
  const run = png ? spawnSync('pngfix', ['--quiet', file], { encoding: 'utf8' }) : spawnSync('djpeg', ['-outfile', '/dev/null', file], { encoding: 'utf8' });
  return `${String(run.status)} ${run.stderr.trim()}`;
}

type Verdict = { refused: string } | { stored: Buffer };

async function judge(bytes: Buffer): Promise<Verdict> {
  try {
    const info = checkImage(bytes, 'images[0]', 1e9);
    return { stored: (await normalise(bytes, info, 'images[0]', LIMITS)).bytes };
  } catch (e: unknown) {
    if (e instanceof JobError) return { refused: e.code };
    throw e;
  }
}

const payloadArb = fc.uint8Array({ minLength: 12, maxLength: 80 }).map((a) => Buffer.from(a));

describe('a reference is rebuilt: inserted bytes are refused or gone', () => {
  let jpegs: Record<string, Buffer> = {};
  let pngs: Record<string, Buffer> = {};
  const clean = new Map<Buffer, string>();

  beforeAll(async () => {
    jpegs = await jpegBases();
    pngs = await pngBases();
    for (const b of [...Object.values(jpegs), ...Object.values(pngs)]) clean.set(b, await rawOf(b));
  }, 60_000);

  /** `definesPixels`: the insertion is a valid chunk that is pixels (a tRNS where one may be): the reference is then the decode of what was sent. */
  const holds = async (base: Buffer, crafted: Buffer, payload: Buffer, png: boolean, definesPixels = false) => {
    const verdict = await judge(crafted);
    if ('refused' in verdict) {
      expect(JOB_ERROR_CODES).toContain(verdict.refused);
      return;
    }
    expect(verdict.stored.includes(payload)).toBe(false);
    expect(await rawOf(verdict.stored)).toBe(definesPixels ? await rawOf(crafted) : clean.get(base));
    expect(toolVerdict(verdict.stored, png)).toBe('0 ');
  };

  it('JPEG: bytes at every boundary, inside every segment, after the entropy-coded data, as any marker segment', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(jpegs)),
        fc.nat(),
        payloadArb,
        fc.option(fc.integer({ min: 0xc0, max: 0xfe }), { nil: undefined }),
        async (name, pick, payload, marker) => {
          const base = jpegs[name] ?? Buffer.alloc(0);
          const places = jpegPlaces(base);
          const place = places[pick % places.length] ?? { at: 2, kind: 'between' };
          await holds(base, insertIntoJpeg(base, place, payload, place.kind === 'between' ? marker : undefined), payload, false);
        },
      ),
      { numRuns: 250, seed: 20261207 },
    );
  }, 120_000);

  it('JPEG: every APPn and COM segment, each kind at once, is gone', async () => {
    for (const [name, base] of Object.entries(jpegs)) {
      for (const marker of [...Array.from({ length: 16 }, (_, i) => 0xe0 + i), 0xfe]) {
        const payload = Buffer.from(`sender's bytes in marker ${marker.toString(16)} of ${name}!`, 'latin1');
        await holds(base, insertIntoJpeg(base, { at: 2, kind: 'between' }, payload, marker), payload, false);
      }
    }
  }, 60_000);

  it('PNG: chunks of any type at every boundary, and bytes after the zlib stream', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(pngs)),
        fc.nat(),
        payloadArb,
        fc.oneof(
          fc.constant('after zlib' as const),
          fc.record({ type: fc.constantFrom('tEXt', 'zTXt', 'iTXt', 'eXIf', 'PLTE', 'tRNS', 'IDAT', 'pHYs', 'gAMA', 'cHRM', 'sRGB', 'iCCP', 'tIME', 'bKGD', 'sBIT', 'acTL', 'caBX', 'prVt') }),
        ),
        async (name, boundary, payload, how) => {
          const base = pngs[name] ?? Buffer.alloc(0);
          await holds(base, insertIntoPng(base, boundary, payload, how), payload, true, how !== 'after zlib' && how.type === 'tRNS');
        },
      ),
      { numRuns: 250, seed: 20261207 },
    );
  }, 120_000);
});
