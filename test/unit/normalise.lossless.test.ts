// The two paths of the normaliser: which images are stored as received (without their metadata)
// and which are re-encoded, what each stores, and the optional preview.
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { enroll, type EnrollmentDeps } from '../../src/enroll/enroll.ts';
import { checkImage, walkJpeg, walkPng } from '../../src/enroll/images.ts';
import { stripJpeg } from '../../src/enroll/lossless.ts';
import { imageNormaliser, type ImageLimits, type NormaliseOptions } from '../../src/enroll/normalise.ts';
import { referenceKey, sha256Of, type ReferenceObject } from '../../src/enroll/references.ts';
import { cameraJpeg, COMMENT_SEGMENT, IPTC_SEGMENT, jpegImage, pngChunk, pngImage, withJpegSegments, withPngChunks } from '../support/images.ts';
import { scene } from '../support/jpeg-corpus.ts';
import { inline, job, userId } from './helpers.ts';

const LIMITS: ImageLimits = { maxImagePixels: 40_000_000, minImageDimension: 64, maxReferenceDimension: undefined };
const normalise = imageNormaliser({ parallel: 2 });
const run = (bytes: Buffer, limits: ImageLimits = LIMITS, options?: NormaliseOptions) =>
  normalise(bytes, checkImage(bytes, 'images[0]', 50 * 1024 * 1024), 'images[0]', limits, options);

const raw = (image: Buffer) => sharp(image, { failOn: 'warning' }).raw().toBuffer({ resolveWithObject: true });

function meanDifference(a: Buffer, b: Buffer): number {
  if (a.length !== b.length) throw new Error(`test: ${a.length} bytes against ${b.length}`);
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}

function jpegMarkers(jpeg: Buffer): number[] {
  const markers: number[] = [];
  expect(walkJpeg(jpeg, 0, (marker) => markers.push(marker))).toBe(jpeg.length);
  return markers;
}

const noMetadata = { exif: undefined, icc: undefined, xmp: undefined, iptc: undefined, comments: undefined, orientation: undefined };
const metadataOf = async (image: Buffer) => {
  const m = await sharp(image).metadata();
  return { exif: m.exif, icc: m.icc, xmp: m.xmp, iptc: m.iptc, comments: m.comments, orientation: m.orientation };
};

/** A photo-like JPEG or PNG (smooth, edges, grain), not noise. */
function photo(width: number, height: number, seed: number): sharp.Sharp {
  return sharp(scene(width, height, seed), { raw: { width, height, channels: 3 } });
}

let camera: Buffer;

beforeAll(async () => {
  camera = await cameraJpeg({ width: 120, height: 80, seed: 31, orientation: 1 });
});

describe('the lossless path: stored as received, without metadata', () => {
  it('stores an upright JPEG with EXIF, GPS, XMP, an sRGB profile, IPTC and a comment as its coded image alone', async () => {
    // Prepare
    const received = withJpegSegments(await sharp(camera).keepExif().keepXmp().withIccProfile('srgb').toBuffer(), [IPTC_SEGMENT, COMMENT_SEGMENT]);
    expect(await metadataOf(received)).toMatchObject({ exif: expect.any(Buffer), icc: expect.any(Buffer), xmp: expect.any(Buffer), iptc: expect.any(Buffer) });

    // Act
    const stored = await run(received);

    // Assess
    expect(stored).toMatchObject({ path: 'lossless', width: 120, height: 80 });
    expect(stored.reason).toBeUndefined();
    expect(jpegMarkers(stored.bytes).filter((m) => (m >= 0xe0 && m <= 0xef) || m === 0xfe)).toEqual([]);
    expect(await metadataOf(stored.bytes)).toEqual(noMetadata);
    for (const text of ['AcmeCam', 'Spy 3000', 'Someone Private', 'Private Road', 'Exif']) expect(stored.bytes.includes(Buffer.from(text))).toBe(false);
    expect((await raw(stored.bytes)).data.equals((await raw(received)).data)).toBe(true);
  });

  it('stores exactly the byte-level strip of the received JPEG: no decoder output in it', async () => {
    // Prepare
    const received = withJpegSegments(await photo(400, 300, 32).jpeg({ quality: 90 }).toBuffer(), [COMMENT_SEGMENT]);
    const strip = stripJpeg(received);

    // Act
    const stored = await run(received);

    // Assess
    expect(strip.ok && stored.bytes.equals(strip.strip())).toBe(true);
  });

  it('stores a progressive JPEG as received too, validated at a reduced scale, with the same pixels', async () => {
    // Prepare: over 0.2 MP, so it is decoded at 1/8.
    const received = await photo(1000, 700, 33).jpeg({ progressive: true, quality: 88 }).withExif({ IFD0: { Artist: 'Someone Private' } }).toBuffer();

    // Act
    const stored = await run(received);

    // Assess
    expect(stored).toMatchObject({ path: 'lossless', width: 1000, height: 700 });
    expect((await raw(stored.bytes)).data.equals((await raw(received)).data)).toBe(true);
    expect(stored.bytes.includes(Buffer.from('Someone Private'))).toBe(false);
  });

  it('stores a PNG with text, XMP, EXIF, an sRGB profile and colour chunks as its critical chunks and transparency', async () => {
    // Prepare
    const rgba = Buffer.alloc(80 * 70 * 4);
    for (let i = 0; i < rgba.length; i += 1) rgba[i] = i % 4 === 3 ? 200 : (i * 13) & 0xff;
    const withProfile = await sharp(rgba, { raw: { width: 80, height: 70, channels: 4 } })
      .png()
      .withIccProfile('srgb')
      .withExif({ IFD0: { Artist: 'Someone Private' } })
      .withXmp('<x:xmpmeta xmlns:x="adobe:ns:meta/">Someone Private</x:xmpmeta>')
      .toBuffer();
    const received = withPngChunks(withProfile, [pngChunk('gAMA', Buffer.from([0, 0, 0xb1, 0x8f])), pngChunk('tEXt', 'Comment\0Private Road')]);
    const types: string[] = [];
    walkPng(received, (start) => types.push(received.toString('latin1', start + 4, start + 8)));
    expect(types).toEqual(expect.arrayContaining(['iCCP', 'tEXt', 'gAMA']));

    // Act
    const stored = await run(received);

    // Assess
    expect(stored).toMatchObject({ path: 'lossless', width: 80, height: 70 });
    const kept: string[] = [];
    walkPng(stored.bytes, (start) => kept.push(stored.bytes.toString('latin1', start + 4, start + 8)));
    expect(new Set(kept)).toEqual(new Set(['IHDR', 'IDAT', 'IEND']));
    expect(await metadataOf(stored.bytes)).toEqual(noMetadata);
    expect(stored.bytes.includes(Buffer.from('Someone Private'))).toBe(false);
    expect((await raw(stored.bytes)).data.equals((await raw(received)).data)).toBe(true);
  });

  it('keeps an image exactly at MAX_REFERENCE_DIMENSION as received', async () => {
    // Act
    const stored = await run(await jpegImage({ width: 200, height: 100, seed: 34 }), { ...LIMITS, maxReferenceDimension: 200 });

    // Assess
    expect(stored).toMatchObject({ path: 'lossless', width: 200, height: 100 });
  });

  it('still refuses a corrupt image on the lossless path: a progressive JPEG cut short, and a PNG with a bad IDAT', async () => {
    // Prepare
    const progressive = await photo(1000, 700, 35).jpeg({ progressive: true }).toBuffer();
    const cut = Buffer.concat([progressive.subarray(0, Math.floor(progressive.length * 0.9)), Buffer.from([0xff, 0xd9])]);
    const png = await photo(300, 200, 36).png().toBuffer();
    const idat = png.indexOf('IDAT');
    const damaged = Buffer.from(png);
    damaged.fill(0x55, idat + 40, idat + 80);
    // Keep the CRC right, so only the compressed data is wrong.
    const length = damaged.readUInt32BE(idat - 4);
    const { crc32 } = await import('node:zlib');
    damaged.writeUInt32BE(crc32(damaged.subarray(idat, idat + 4 + length)), idat + 4 + length);

    // Act + Assess
    await expect(run(cut)).rejects.toMatchObject({ code: 'INVALID_IMAGE' });
    await expect(run(damaged)).rejects.toMatchObject({ code: 'INVALID_IMAGE' });
  });
});

describe('the re-encode path: whatever needs a pixel change', () => {
  it.each([2, 3, 4, 5, 6, 7, 8])('turns an orientation-%i photo upright', async (orientation) => {
    // Prepare
    const received = await sharp(await photo(120, 80, 40 + orientation).jpeg({ quality: 95 }).toBuffer()).withMetadata({ orientation }).toBuffer();
    const upright = await sharp(received).rotate().raw().toBuffer({ resolveWithObject: true });
    const asStored = await raw(received);

    // Act
    const stored = await run(received);

    // Assess
    expect(stored).toMatchObject({ path: 'reencoded', reason: 'orientation', width: upright.info.width, height: upright.info.height });
    expect(await metadataOf(stored.bytes)).toEqual(noMetadata);
    const pixels = (await raw(stored.bytes)).data;
    expect(meanDifference(pixels, upright.data)).toBeLessThan(3);
    if (orientation <= 4) expect(meanDifference(pixels, asStored.data)).toBeGreaterThan(10);
  });

  it('turns a PNG upright by its EXIF orientation too', async () => {
    // Prepare
    const received = await photo(90, 70, 48).png().withMetadata({ orientation: 6 }).toBuffer();
    expect((await sharp(received).metadata()).orientation).toBe(6);

    // Act
    const stored = await run(received);

    // Assess
    expect(stored).toMatchObject({ path: 'reencoded', reason: 'orientation', width: 70, height: 90 });
  });

  it('converts a Display P3 photo to sRGB and drops the profile', async () => {
    // Prepare
    const received = await photo(100, 80, 49).jpeg().withIccProfile('p3').toBuffer();

    // Act
    const stored = await run(received);

    // Assess
    expect(stored).toMatchObject({ path: 'reencoded', reason: 'colour profile' });
    expect(await metadataOf(stored.bytes)).toEqual(noMetadata);
  });

  it('re-encodes CMYK JPEGs, 16-bit PNGs and images over MAX_REFERENCE_DIMENSION, saying why', async () => {
    // Prepare
    const cmyk = await photo(100, 80, 50).toColourspace('cmyk').jpeg().toBuffer();
    const deep = await photo(100, 80, 51).toColourspace('rgb16').png().toBuffer();
    const large = await jpegImage({ width: 300, height: 150, seed: 52 });

    // Act
    const results = [await run(cmyk), await run(deep), await run(large, { ...LIMITS, maxReferenceDimension: 200 })];

    // Assess
    expect(results.map((r) => [r.path, r.reason])).toEqual([
      ['reencoded', 'cmyk'],
      ['reencoded', 'bit depth'],
      ['reencoded', 'dimension'],
    ]);
    expect(results[2]).toMatchObject({ width: 200, height: 100 });
  });
});

describe('the preview', () => {
  it('is not made unless asked for', async () => {
    // Act
    const stored = await run(await jpegImage({ width: 300, height: 200, seed: 60 }));

    // Assess
    expect(stored.preview).toBeUndefined();
  });

  it.each([
    ['a baseline JPEG', () => photo(1600, 1200, 61).jpeg().toBuffer(), 512, 384],
    ['a progressive JPEG (decoded at a reduced scale)', () => photo(1600, 1200, 62).jpeg({ progressive: true }).toBuffer(), 512, 384],
    ['a PNG', () => photo(900, 600, 63).png().toBuffer(), 512, 341],
    ['a long thin baseline JPEG', () => photo(4000, 200, 64).jpeg().toBuffer(), 512, 26],
  ] as const)('of %s stored as received: RGB, within the bound, the picture itself', async (_, make, width, height) => {
    // Prepare
    const received = await make();
    const info = checkImage(received, 'x', 1e9);

    // Act
    const stored = await run(received, LIMITS, { preview: { maxDimension: 512 } });

    // Assess
    expect(stored.path).toBe('lossless');
    expect(stored.preview).toMatchObject({ width, height, channels: 3, scale: width / info.width });
    expect(stored.preview?.data.length).toBe(width * height * 3);
    const expected = await sharp(received).resize({ width, height, fit: 'fill' }).raw().toBuffer();
    expect(meanDifference(stored.preview?.data ?? Buffer.alloc(0), expected)).toBeLessThan(8);
  });

  it('of an image within the bound is the whole image, at scale 1, alpha on white', async () => {
    // Prepare
    const rgba = Buffer.alloc(100 * 80 * 4, 0); // transparent black
    const received = await sharp(rgba, { raw: { width: 100, height: 80, channels: 4 } }).png().toBuffer();

    // Act
    const stored = await run(received, LIMITS, { preview: { maxDimension: 512 } });

    // Assess
    expect(stored.preview).toMatchObject({ width: 100, height: 80, channels: 3, scale: 1 });
    expect(stored.preview?.data.every((v) => v === 255)).toBe(true);
  });

  it('of a re-encoded image is upright, and asking for it changes nothing that is stored', async () => {
    // Prepare
    const received = await sharp(await photo(800, 600, 65).jpeg().toBuffer()).withMetadata({ orientation: 6 }).toBuffer();

    // Act
    const without = await run(received);
    const withPreview = await run(received, LIMITS, { preview: { maxDimension: 400 } });

    // Assess
    expect(withPreview).toMatchObject({ path: 'reencoded', width: 600, height: 800 });
    expect(withPreview.preview).toMatchObject({ width: 300, height: 400, channels: 3, scale: 0.5 });
    expect(withPreview.bytes.equals(without.bytes)).toBe(true);
    const upright = await sharp(received).rotate().resize({ width: 300, height: 400, fit: 'fill' }).raw().toBuffer();
    expect(meanDifference(withPreview.preview?.data ?? Buffer.alloc(0), upright)).toBeLessThan(8);
  });
});

describe('enroll with the lossless path', () => {
  it('names the reference by the photo as received and checksums the stored bytes', async () => {
    // Prepare
    const received = withJpegSegments(camera, [COMMENT_SEGMENT]);
    const writes: ReferenceObject[] = [];
    const deps: EnrollmentDeps = {
      rules: { stagingBucket: 'staging', stagingPrefix: 'incoming/', maxImageBytes: 1024 * 1024, ...LIMITS },
      readStaged: () => Promise.reject(new Error('test: nothing is staged')),
      normalise,
      writeReference: async (object) => {
        writes.push(object);
        return 'created';
      },
    };

    // Act
    const result = await enroll(job([inline(received)], { userId: 'lossless-user' }), deps);

    // Assess
    const [write] = writes;
    expect(write?.body.equals(received)).toBe(false);
    expect(write?.body.length).toBeLessThan(received.length);
    expect(write?.key).toBe(referenceKey(userId('lossless-user'), sha256Of(received).toString('hex'), 'jpg'));
    expect(write?.sha256).toEqual(sha256Of(received));
    expect(write?.storedSha256).toEqual(sha256Of(write?.body ?? Buffer.alloc(0)));
    expect(result.references[0]).toMatchObject({ sha256: sha256Of(received).toString('hex'), bytes: write?.body.length });
  });
});
