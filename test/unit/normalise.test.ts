import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkImage } from '../../src/image/images.ts';
import { imageNormaliser, type ImageLimits } from '../../src/image/normalise.ts';
import { cameraJpeg, jpegImage, pngImage } from '../support/images.ts';
import { rejectionOf } from './helpers.ts';

const LIMITS: ImageLimits = { maxImagePixels: 40_000_000, minImageDimension: 64, maxReferenceDimension: undefined };
const normalise = imageNormaliser({ parallel: 2 });
const run = (bytes: Buffer, limits: ImageLimits = LIMITS) => normalise(bytes, checkImage(bytes, 'images[0]', 50 * 1024 * 1024), 'images[0]', limits);

let camera: Buffer;

beforeAll(async () => {
  camera = await cameraJpeg({ width: 120, height: 80, seed: 7 });
});

describe('imageNormaliser: what is stored', () => {
  it('turns an orientation-6 photo upright and keeps no metadata: no EXIF, GPS, XMP, ICC', async () => {
    // Prepare
    const before = await sharp(camera).metadata();

    // Act
    const stored = await run(camera);

    // Assess
    expect(before).toMatchObject({ width: 120, height: 80, orientation: 6 });
    const after = await sharp(stored.bytes).metadata();
    expect(after).toMatchObject({ format: 'jpeg', width: 80, height: 120 });
    expect({ exif: after.exif, xmp: after.xmp, icc: after.icc, iptc: after.iptc, orientation: after.orientation, comments: after.comments }).toEqual({
      exif: undefined,
      xmp: undefined,
      icc: undefined,
      iptc: undefined,
      orientation: undefined,
      comments: undefined,
    });
    expect(stored).toMatchObject({ width: 80, height: 120 });
    for (const text of ['AcmeCam', 'Spy 3000', 'Someone Private', 'Exif']) expect(stored.bytes.includes(Buffer.from(text))).toBe(false);
  });

  it('keeps a PNG a PNG, without its text chunks', async () => {
    // Prepare
    const png = await sharp(await pngImage({ width: 80, height: 70, seed: 3 }))
      .png()
      .withMetadata()
      .withXmp('<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>')
      .toBuffer();

    // Act
    const stored = await run(png);

    // Assess
    const after = await sharp(stored.bytes).metadata();
    expect(after).toMatchObject({ format: 'png', width: 80, height: 70 });
    expect(after.xmp).toBeUndefined();
    expect(after.comments).toBeUndefined();
  });

  it('bounds the longest side with MAX_REFERENCE_DIMENSION, keeping the aspect ratio, never enlarging', async () => {
    // Prepare
    const large = await jpegImage({ width: 400, height: 200, seed: 4 });
    const small = await jpegImage({ width: 100, height: 80, seed: 5 });
    const limits = { ...LIMITS, maxReferenceDimension: 200 };

    // Act
    const bounded = await run(large, limits);
    const untouched = await run(small, limits);

    // Assess
    expect(bounded).toMatchObject({ width: 200, height: 100 });
    expect(untouched).toMatchObject({ width: 100, height: 80 });
  });

  it('refuses an image that bounding would leave too small as IMAGE_TOO_SMALL', async () => {
    // Prepare: 1000×70 bounded to 500 would be 500×35.
    const wide = await jpegImage({ width: 1000, height: 70, seed: 6 });

    // Act
    const error = await rejectionOf(() => run(wide, { ...LIMITS, maxReferenceDimension: 500 }));

    // Assess
    expect(error).toMatchObject({ code: 'IMAGE_TOO_SMALL' });
  });

  it('writes high-quality JPEGs: the stored pixels stay close to the received ones', async () => {
    // Prepare
    const smooth = await sharp({ create: { width: 128, height: 128, channels: 3, background: { r: 200, g: 120, b: 60 } } }).jpeg({ quality: 95 }).toBuffer();

    // Act
    const stored = await run(smooth);

    // Assess
    const { channels } = await sharp(stored.bytes).stats();
    const drift = channels.map((c, i) => Math.abs(c.mean - ([200, 120, 60][i] ?? 0)));
    expect(Math.max(...drift)).toBeLessThan(2);
  });
});

describe('imageNormaliser: what is refused', () => {
  it('refuses an image whose shorter side is under MIN_IMAGE_DIMENSION as IMAGE_TOO_SMALL', async () => {
    // Prepare
    const tiny = await jpegImage({ width: 200, height: 63, seed: 8 });

    // Act
    const error = await rejectionOf(() => run(tiny));

    // Assess
    expect(error).toMatchObject({
      code: 'IMAGE_TOO_SMALL',
      message: 'images[0] is 200×63 pixels; its shorter side must be at least 64 (MIN_IMAGE_DIMENSION)',
    });
  });

  it('refuses more pixels than MAX_IMAGE_PIXELS as IMAGE_TOO_LARGE', async () => {
    // Prepare
    const image = await pngImage({ width: 100, height: 100, seed: 9 });

    // Act
    const error = await rejectionOf(() => run(image, { ...LIMITS, maxImagePixels: 9_999 }));

    // Assess
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE', message: 'images[0] is 100×100 pixels (10000); the limit is 9999 (MAX_IMAGE_PIXELS)' });
  });

  it('refuses a JPEG whose entropy-coded data is corrupt as INVALID_IMAGE, saying what the decoder said', async () => {
    // Prepare: half the scan, then a proper end-of-image marker — the structure is whole, the data is not.
    const full = await jpegImage({ width: 128, height: 96, seed: 10 });
    const damaged = Buffer.concat([full.subarray(0, Math.floor(full.length / 2)), Buffer.from([0xff, 0xd9])]);

    // Act
    const error = await rejectionOf(() => run(damaged));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE' });
    expect((error as Error).message).toMatch(/^images\[0\] could not be decoded: \S/);
    expect((error as Error).message).not.toContain('\n');
  });
});

describe('imageNormaliser: bounded CPU', () => {
  it('decodes at most `parallel` images at once, and all of them in the end', async () => {
    // Prepare
    const one = imageNormaliser({ parallel: 1 });
    const images = await Promise.all([1, 2, 3, 4].map((seed) => jpegImage({ width: 256, height: 256, seed })));
    const order: string[] = [];

    // Act
    const results = await Promise.all(
      images.map(async (bytes, i) => {
        const out = await one(bytes, checkImage(bytes, `images[${i}]`, 1e7), `images[${i}]`, LIMITS);
        order.push(`images[${i}]`);
        return out;
      }),
    );

    // Assess
    expect(results).toHaveLength(4);
    expect(order).toEqual(['images[0]', 'images[1]', 'images[2]', 'images[3]']);
  });
});
