// The JPEG codec's glue (jpeg.ts) around the native addon: loaded once, libjpeg's refusals as
// JpegError (with the addon's error as the cause), and the coefficient read the benchmark uses.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { MAX_JPEG_SCANS } from '../../src/image/images.ts';
import { jpegCodec, JpegError } from '../../src/image/jpeg.ts';
import { rejectionOf, thrownBy } from './helpers.ts';

const codec = jpegCodec();
const photo = (progressive: boolean) =>
  sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 10, g: 200, b: 90 } } })
    .jpeg({ progressive })
    .toBuffer();

describe('jpegCodec', () => {
  it('is loaded once', () => {
    // Act / Assess
    expect(jpegCodec()).toBe(codec);
  });

  it('reads the frame as libjpeg does', async () => {
    // Act
    const facts = codec.inspect(await photo(true), MAX_JPEG_SCANS);

    // Assess
    expect(facts).toMatchObject({ width: 64, height: 48, components: 3, precision: 8, progressive: true, arithmetic: false, colorSpace: 'ycbcr' });
  });

  it('throws what libjpeg refuses as a JpegError, its message libjpeg\u2019s and its cause the addon\u2019s error', () => {
    // Act
    const error = thrownBy(() => codec.inspect(Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x03, 0x08, 0xff, 0xd9]), MAX_JPEG_SCANS));

    // Assess
    expect(error).toBeInstanceOf(JpegError);
    expect(error).toMatchObject({ name: 'JpegError', cause: { code: 'EJPEG' } });
    expect((error as Error).message).toBe(((error as Error).cause as Error).message);
  });

  it('passes on an error that is not libjpeg\u2019s as it is', () => {
    // Act
    const error = thrownBy(() => codec.inspect('not a buffer' as unknown as Buffer, MAX_JPEG_SCANS));

    // Assess
    expect(error).not.toBeInstanceOf(JpegError);
    expect(error).toBeInstanceOf(Error);
  });

  it('reads the coefficients of every scan, and rejects past the scan limit with a JpegError', async () => {
    // Prepare: libjpeg's progressive script writes 10 scans
    const progressive = await photo(true);

    // Act
    const read = await codec.readCoefficients(progressive, MAX_JPEG_SCANS);
    const error = await rejectionOf(() => codec.readCoefficients(progressive, 5));

    // Assess
    expect(read).toMatchObject({ scans: 10 });
    expect(error).toBeInstanceOf(JpegError);
    expect((error as Error).message).toContain('more than 5 scans');
  });

  it('rejects a rebuild libjpeg refuses with a JpegError', async () => {
    // Prepare: noise, which no JPEG holds in 1024 bytes
    const noise = await sharp({ create: { width: 320, height: 240, channels: 3, background: '#000000', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).jpeg({ quality: 95 }).toBuffer();

    // Act
    const error = await rejectionOf(() => codec.rebuild(noise, 1, { maxScans: MAX_JPEG_SCANS, maxBytes: 1024 }));

    // Assess
    expect(error).toBeInstanceOf(JpegError);
    expect((error as Error).message).toBe('the rebuilt image would be larger than 1024 bytes');
  });
});
