// What a reference is made of: a JPEG rebuilt from its coefficients holds only what the encoder
// writes (SOI, the tables its frame uses, SOF0, Huffman tables, one scan, EOI), decodes to the
// received pixels, and is turned upright in the coefficient domain where the turn is exact; the
// header walk and the decoder must agree on the size; scans are bounded before any decoding.
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { checkImage, MAX_JPEG_SCANS, walkJpeg } from '../../src/image/images.ts';
import { jpegCodec } from '../../src/image/jpeg.ts';
import { decodeMemoryEstimate, imageNormaliser, planReference, type ImageLimits } from '../../src/image/normalise.ts';
import { JobError } from '../../src/job/errors.ts';
import { jpegSegment, picture } from '../support/images.ts';

const LIMITS: ImageLimits = { maxImagePixels: 1e8, minImageDimension: 16, maxReferenceDimension: undefined };
const codec = jpegCodec();
const normalise = imageNormaliser({ parallel: 2 });
const make = (bytes: Buffer, limits: ImageLimits = LIMITS) => normalise(bytes, checkImage(bytes, 'images[0]', 1e9), 'images[0]', limits);

const markersOf = (jpeg: Buffer) => {
  const markers: string[] = [];
  walkJpeg(jpeg, 0, (marker) => {
    markers.push(marker.toString(16));
  });
  return markers;
};
const pixels = async (bytes: Buffer) => (await sharp(bytes).raw().toBuffer({ resolveWithObject: true })).data;

describe('a rebuilt JPEG', () => {
  it('holds only SOI, the tables its frame uses, SOF0, Huffman tables, one scan and EOI, its components named 1..3', async () => {
    // Prepare: a progressive file with restart markers, a comment, APP segments and an unused table
    const progressive = await picture(96, 64).jpeg({ quality: 85, progressive: true }).toBuffer();
    const unusedTable = jpegSegment(0xdb, Buffer.concat([Buffer.from([3]), Buffer.alloc(64, 9)]));
    const sent = Buffer.concat([progressive.subarray(0, 2), jpegSegment(0xe1, 'Exif\0\0private'), jpegSegment(0xfe, 'a comment'), unusedTable, progressive.subarray(2)]);

    // Act
    const made = await make(sent);

    // Assess
    expect(made.path).toBe('rebuilt');
    const markers = markersOf(made.bytes);
    expect(markers[0]).toBe('d8');
    expect(markers.at(-1)).toBe('d9');
    expect(new Set(markers)).toEqual(new Set(['d8', 'db', 'c0', 'c4', 'da', 'd9']));
    expect(markers.filter((m) => m === 'da')).toHaveLength(1);
    expect(made.bytes.includes(Buffer.from('private'))).toBe(false);
    expect(made.bytes.includes(Buffer.from('a comment'))).toBe(false);
    // Two quantisation tables (luma, chroma): table 3 is used by no component, so not written.
    let tables = 0;
    walkJpeg(made.bytes, 0, (marker, start, end) => {
      if (marker === 0xdb) tables += (end - start - 4) / 65;
    });
    expect(tables).toBe(2);
    expect((await pixels(made.bytes)).equals(await pixels(progressive))).toBe(true);
  });

  it.each([2, 3, 4, 5, 6, 7, 8])('turns EXIF orientation %i in the coefficient domain: turned back, the pixels are the received ones bit for bit', async (orientation) => {
    // Prepare: whole MCUs both ways (4:2:0: 16 px)
    const upright = await picture(160, 96).jpeg({ quality: 90 }).toBuffer();
    const inverse = [0, 1, 2, 3, 4, 5, 8, 7, 6][orientation] ?? 1;

    // Act
    const turned = await codec.rebuild(upright, orientation, { maxScans: MAX_JPEG_SCANS, maxBytes: 1 << 22 });
    const back = await codec.rebuild(turned.data, inverse, { maxScans: MAX_JPEG_SCANS, maxBytes: 1 << 22 });

    // Assess
    expect([turned.width, turned.height]).toEqual(orientation >= 5 ? [96, 160] : [160, 96]);
    expect((await pixels(back.data)).equals(await pixels(upright))).toBe(true);
    // And it is the picture libvips would show upright, within the inverse DCT's rounding.
    const shown = await sharp(await sharp(upright).withMetadata({ orientation }).jpeg({ quality: 100 }).toBuffer()).rotate().raw().toBuffer();
    const got = await pixels(turned.data);
    let far = 0;
    for (let i = 0; i < got.length; i += 1) if (Math.abs((got[i] ?? 0) - (shown[i] ?? 0)) > 12) far += 1;
    expect(far / got.length).toBeLessThan(0.01);
  });

  it('is made through the normaliser for a whole-MCU image with EXIF orientation 6 (path turned), re-encoded where an edge is not whole MCUs', async () => {
    // Prepare
    const whole = await picture(160, 96).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer();
    const ragged = await picture(161, 97).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer();

    // Act
    const [a, b] = await Promise.all([make(whole), make(ragged)]);

    // Assess
    expect([a.path, a.width, a.height]).toEqual(['turned', 96, 160]);
    expect([b.path, b.reason, b.width, b.height]).toEqual(['reencoded', 'orientation', 97, 161]);
    expect(markersOf(a.bytes).filter((m) => m.startsWith('e'))).toEqual([]);
  });

  it('re-encodes CMYK, and a photo larger than MAX_REFERENCE_DIMENSION', async () => {
    // Prepare
    const cmyk = await picture(64, 48).toColourspace('cmyk').jpeg().toBuffer();
    const large = await picture(400, 300).jpeg().toBuffer();

    // Act
    const [a, b] = await Promise.all([make(cmyk), make(large, { ...LIMITS, maxReferenceDimension: 200 })]);

    // Assess
    expect([a.path, a.reason]).toEqual(['reencoded', 'cmyk']);
    expect([b.path, b.reason, b.width, b.height]).toEqual(['reencoded', 'dimension', 200, 150]);
  });
});

describe('the size the rules use is the decoder\u2019s', () => {
  /**
   * FF D8, RST0 (no length), then an APP0 long enough to hold a frame header where a reader that
   * gives RST0 a length would land: 16×16 in the fake, the real frame after it.
   */
  async function forged(real: Buffer): Promise<Buffer> {
    const payload = Buffer.alloc(0xffee, 0x20);
    const fakeAt = 0xffe4 - 8; // offset 2 + 2 + 0xFFE0, inside the APP0 payload that starts at 8
    Buffer.from([0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x10, 0x00, 0x10, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]).copy(payload, fakeAt);
    return Buffer.concat([real.subarray(0, 2), Buffer.from([0xff, 0xd0]), jpegSegment(0xe0, payload), real.subarray(2)]);
  }

  it('reads past RST0 as libjpeg does: the real 640×480 frame, not the forged 16×16', async () => {
    // Prepare
    const sent = await forged(await picture(640, 480).jpeg().toBuffer());

    // Act
    const info = checkImage(sent, 'images[0]', 1e9);
    const made = await make(sent, { ...LIMITS, maxReferenceDimension: 320 });

    // Assess
    expect([info.width, info.height]).toEqual([640, 480]);
    expect([made.path, made.reason, made.width, made.height]).toEqual(['reencoded', 'dimension', 320, 240]);
    await expect(make(sent, { ...LIMITS, minImageDimension: 481 })).rejects.toMatchObject({ code: 'IMAGE_TOO_SMALL' });
  });

  it('refuses an image whose header walk and decoder disagree, saying what each read', async () => {
    // Prepare
    const jpeg = await picture(64, 48).jpeg().toBuffer();
    const info = { ...checkImage(jpeg, 'images[0]', 1e9), width: 6000, height: 4000 };

    // Act
    const plan = planReference(jpeg, info, 'images[0]', { ...LIMITS, maxImagePixels: 1e9 });

    // Assess
    await expect(plan).rejects.toThrow(new JobError('INVALID_IMAGE', 'images[0]: its header reads 6000×4000 pixels but the decoder reads 64×48'));
  });
});

describe('scans', () => {
  it(`refuses a JPEG of more than ${MAX_JPEG_SCANS} scans at the header walk, before any decoding`, async () => {
    // Prepare: the last scan of a progressive file repeated (a no-op pass each, for libjpeg)
    const progressive = await picture(64, 48).jpeg({ progressive: true }).toBuffer();
    let last: [number, number] = [0, 0];
    walkJpeg(progressive, 0, (marker, start, end) => {
      if (marker === 0xda) last = [start, end];
    });
    const scan = progressive.subarray(...last);
    const many = Buffer.concat([progressive.subarray(0, last[1]), ...Array.from({ length: MAX_JPEG_SCANS }, () => scan), progressive.subarray(last[1])]);

    // Act + Assess
    expect(() => checkImage(many, 'images[0]', 1e9)).toThrow(new JobError('INVALID_IMAGE', `images[0] is a JPEG of ${10 + MAX_JPEG_SCANS} scans; at most ${MAX_JPEG_SCANS} are accepted`));
  });

  it('is bounded in the decoder too: libjpeg stops at the scan past the limit', async () => {
    // Prepare: libjpeg's progressive script writes 10 scans
    const progressive = await picture(64, 48).jpeg({ progressive: true }).toBuffer();

    // Act + Assess
    await expect(codec.rebuild(progressive, 1, { maxScans: 5, maxBytes: 1 << 20 })).rejects.toThrow('more than 5 scans');
    await expect(codec.rebuild(progressive, 1, { maxScans: 10, maxBytes: 1 << 20 })).resolves.toMatchObject({ scans: 10 });
  });

  it('refuses to write past the output ceiling rather than hold it', async () => {
    // Prepare
    const jpeg = await picture(320, 240).jpeg({ quality: 95 }).toBuffer();

    // Act + Assess
    await expect(codec.rebuild(jpeg, 1, { maxScans: 10, maxBytes: 2048 })).rejects.toThrow('the rebuilt image would be larger than 2048 bytes');
  });
});

describe('what the codec refuses rather than writes', () => {
  const fixture = (name: string) => readFileSync(new URL(`../fixtures/jpeg/${name}`, import.meta.url));

  it.each([
    ['baseline-ac1264.jpg', 'an AC coefficient of 1264 (a DHT of category 11)'],
    ['arith-ac-32768.jpg', 'an arithmetic-coded AC coefficient of -32768'],
    ['arith-dc16000.jpg', 'an arithmetic-coded DC of 16000'],
  ])('%s: %s, which the standard Huffman tables cannot code, is INVALID_IMAGE', async (name) => {
    // Prepare: libjpeg decodes these; writing them baseline would give a broken bitstream
    const sent = fixture(name);

    // Act + Assess
    await expect(make(sent)).rejects.toMatchObject({ code: 'INVALID_IMAGE', message: expect.stringContaining('a DCT coefficient outside the range of 8-bit baseline JPEG') });
  });

  it('refuses sampling factors that do not divide the largest (libjpeg could not read the result back)', () => {
    // Prepare: Y 3×1, Cb 2×1, Cr 1×1
    const sent = fixture('frac-3x1-2x1-1x1.jpg');

    // Act + Assess
    expect(() => codec.inspect(sent, MAX_JPEG_SCANS)).toThrow('sampling factors 2x1 of a component do not divide 3x1');
  });

  it('takes no output ceiling that is not a finite number of bytes', async () => {
    // Prepare
    const jpeg = await picture(64, 48).jpeg().toBuffer();

    // Act + Assess
    for (const maxBytes of [Number.POSITIVE_INFINITY, Number.NaN, 2 ** 64, 100]) {
      expect(() => codec.rebuild(jpeg, 1, { maxScans: 10, maxBytes })).toThrow(TypeError);
    }
  });

  it('reads its own copy of the input: a Buffer detached while it works changes nothing', async () => {
    // Prepare
    const jpeg = await picture(320, 240).jpeg().toBuffer();
    const sent = Buffer.alloc(jpeg.length); // its own ArrayBuffer (Buffer.from may share the pool's)
    jpeg.copy(sent);

    // Act
    const rebuilt = codec.rebuild(sent, 6, { maxScans: 10, maxBytes: 1 << 22 });
    sent.buffer.transfer(0);
    const made = await rebuilt;

    // Assess
    expect([made.width, made.height]).toEqual([240, 320]);
    expect(sent.length).toBe(0);
  });
});

describe('the memory a rebuild is admitted by', () => {
  it('counts every coefficient of the image, twice when it is turned, and the output ceiling', async () => {
    // Prepare
    const jpeg = await picture(160, 96).jpeg({ chromaSubsampling: '4:4:4' }).toBuffer();
    const info = checkImage(jpeg, 'images[0]', 1e9);
    const plan = await planReference(jpeg, info, 'images[0]', LIMITS);
    const blocks = 3 * (160 / 8) * (96 / 8);

    // Act
    const upright = decodeMemoryEstimate(jpeg.length, plan, false);
    const turned = decodeMemoryEstimate(jpeg.length, { ...plan, path: 'turned', orientation: 6 }, false);

    // Assess
    expect(plan.coefficientBytes).toBe(blocks * 128);
    expect(turned - upright).toBe(blocks * 128);
    expect(upright).toBe(2 * jpeg.length + (2 * jpeg.length + 2 ** 20) + blocks * 128 + 2 ** 20);
  });
});
