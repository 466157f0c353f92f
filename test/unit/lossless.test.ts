import fc from 'fast-check';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodePlan, fitWithin, loadScaleOf, readsEveryRow, REDUCED_SCALE, validationScale, type ValidationScale } from '../../src/enroll/decode.ts';
import { isSrgbProfile } from '../../src/enroll/icc.ts';
import { JPEG, PNG, walkJpeg, walkPng } from '../../src/enroll/images.ts';
import { stripJpeg, stripPng, type StripResult } from '../../src/enroll/lossless.ts';
import { withRestartInterval } from '../support/jpeg-restart.ts';
import { adobeSegment, cameraJpeg, COMMENT_SEGMENT, IPTC_SEGMENT, jpegImage, jpegSegment, pngChunk, pngImage, withJpegSegments, withPngChunks } from '../support/images.ts';

/** The markers of a JPEG's segments, in order (fill bytes aside). */
function markersOf(jpeg: Buffer): number[] {
  const markers: number[] = [];
  const end = walkJpeg(jpeg, 0, (marker) => markers.push(marker));
  if (end !== jpeg.length) throw new Error(`test: the JPEG ends at ${end}, not at ${jpeg.length}`);
  return markers;
}

function chunksOf(png: Buffer): string[] {
  const types: string[] = [];
  const end = walkPng(png, (start) => types.push(png.toString('latin1', start + 4, start + 8)));
  if (end !== png.length) throw new Error(`test: the PNG ends at ${end}, not at ${png.length}`);
  return types;
}

const pixelsOf = (image: Buffer) => sharp(image, { failOn: 'warning' }).raw().toBuffer();

function stored(result: StripResult): Buffer {
  if (!result.ok) throw new Error(`test: expected a lossless result, got ${result.reason}`);
  return result.strip();
}

/** The frame header (SOF0) of a sharp-made JPEG, to edit. */
function frameOffset(jpeg: Buffer): number {
  let at = -1;
  walkJpeg(jpeg, 0, (marker, start) => {
    if (marker === 0xc0 && at === -1) at = start;
  });
  if (at === -1) throw new Error('test: no SOF0');
  return at;
}

function edited(bytes: Buffer, edit: (copy: Buffer) => void): Buffer {
  const copy = Buffer.from(bytes);
  edit(copy);
  return copy;
}

const KEPT = new Set([0xd8, 0xdb, 0xc4, 0xc0, 0xc1, 0xc2, 0xdd, 0xda, 0xd9]);

let plain: Buffer;
let camera: Buffer;

beforeAll(async () => {
  plain = await jpegImage({ width: 120, height: 90, seed: 21 });
  camera = await cameraJpeg({ width: 120, height: 80, seed: 22, orientation: 1 });
});

describe('stripJpeg: what a stored JPEG keeps', () => {
  it('keeps only SOI, DQT, DHT, SOF, SOS with its data and EOI, in order, and decodes to the same pixels', async () => {
    // Prepare: EXIF, GPS, XMP and an sRGB ICC profile (sharp), IPTC, a comment and Adobe's marker.
    const received = withJpegSegments(await sharp(camera).withIccProfile('srgb').keepExif().keepXmp().toBuffer(), [IPTC_SEGMENT, COMMENT_SEGMENT, adobeSegment(1)]);

    // Act
    const result = stripJpeg(received);

    // Assess
    const out = stored(result);
    const before = markersOf(received);
    expect(before).toEqual(expect.arrayContaining([0xe1, 0xe2, 0xed, 0xee, 0xfe]));
    expect(markersOf(out)).toEqual(before.filter((m) => KEPT.has(m)));
    expect((await pixelsOf(out)).equals(await pixelsOf(received))).toBe(true);
    for (const text of ['Exif', 'AcmeCam', 'Someone Private', 'Private Road', 'ICC_PROFILE', 'Photoshop', 'Adobe', 'JFIF', 'http://ns.adobe.com']) {
      expect(out.includes(Buffer.from(text, 'latin1'))).toBe(false);
    }
    expect(result).toMatchObject({ mayHoldOrientationOrProfile: true, progressive: false });
  });

  it('keeps the segments themselves byte for byte: the output is the input minus whole segments', () => {
    // Prepare: sharp writes no APP0; add a JFIF one, a comment and fill bytes.
    const jfif = jpegSegment(0xe0, Buffer.from([...Buffer.from('JFIF\0', 'latin1'), 1, 1, 0, 0, 1, 0, 1, 0, 0]));
    const received = withJpegSegments(plain, [jfif, Buffer.from([0xff, 0xff]), COMMENT_SEGMENT]);

    // Act
    const out = stored(stripJpeg(received));

    // Assess
    expect(out).toEqual(plain);
  });

  it('removes everything after EOI: the secondary images of a multi-picture file and padding', async () => {
    // Prepare
    const secondary = await jpegImage({ width: 64, height: 64, seed: 23 });
    const mpf = jpegSegment(0xe2, Buffer.concat([Buffer.from('MPF\0', 'latin1'), Buffer.alloc(40)]));
    const received = withJpegSegments(plain, [mpf], Buffer.concat([secondary, Buffer.alloc(16)]));

    // Act
    const out = stored(stripJpeg(received));

    // Assess
    expect(out.subarray(-2)).toEqual(Buffer.from([0xff, 0xd9]));
    expect(markersOf(out).filter((m) => m === 0xd8)).toHaveLength(1);
    expect(out).toEqual(plain);
  });

  it('keeps a progressive JPEG\u2019s scans and the tables between them', async () => {
    // Prepare
    const progressive = await sharp(plain).jpeg({ progressive: true, quality: 90 }).withExif({ IFD0: { Artist: 'Someone Private' } }).toBuffer();

    // Act
    const result = stripJpeg(progressive);

    // Assess
    const out = stored(result);
    expect(markersOf(out).filter((m) => m === 0xda).length).toBeGreaterThan(1);
    expect(markersOf(out).filter((m) => m === 0xda)).toEqual(markersOf(progressive).filter((m) => m === 0xda));
    expect((await pixelsOf(out)).equals(await pixelsOf(progressive))).toBe(true);
    expect(result).toMatchObject({ progressive: true });
  });

  it('keeps the restart interval and the restart markers inside the scan', async () => {
    // Prepare
    const baseline = await sharp(plain).jpeg({ quality: 85, optimiseCoding: false }).toBuffer();
    const restarted = withJpegSegments(withRestartInterval(baseline, 2), [COMMENT_SEGMENT]);

    // Act
    const out = stored(stripJpeg(restarted));

    // Assess
    expect(markersOf(out)).toContain(0xdd);
    const restarts = (b: Buffer) => [...b.entries()].filter(([i, v]) => v === 0xff && (b[i + 1] ?? 0) >= 0xd0 && (b[i + 1] ?? 0) <= 0xd7).length;
    expect(restarts(out)).toBeGreaterThan(10);
    expect(restarts(out)).toBe(restarts(restarted));
    expect((await pixelsOf(out)).equals(await pixelsOf(baseline))).toBe(true);
  });

  it('needs no metadata read when nothing removed could hold an orientation or a profile', () => {
    // Act
    const result = stripJpeg(withJpegSegments(plain, [COMMENT_SEGMENT, IPTC_SEGMENT]));

    // Assess: APP0, APP13 and COM cannot; APP1 (EXIF) and APP2 (ICC) can.
    expect(result).toMatchObject({ ok: true, mayHoldOrientationOrProfile: false });
    expect(stripJpeg(withJpegSegments(plain, [jpegSegment(0xe1, 'Exif\0\0')]))).toMatchObject({ ok: true, mayHoldOrientationOrProfile: true });
    expect(stripJpeg(withJpegSegments(plain, [jpegSegment(0xe2, 'ICC_PROFILE\0')]))).toMatchObject({ ok: true, mayHoldOrientationOrProfile: true });
  });
});

describe('stripJpeg: what must be re-encoded instead', () => {
  it('sends arithmetic-coded, lossless and hierarchical frames to the re-encode (coding)', () => {
    for (const marker of [0xc3, 0xc5, 0xc9, 0xca, 0xcb, 0xcd]) {
      // Prepare
      const other = edited(plain, (b) => {
        b[frameOffset(plain) + 1] = marker;
      });

      // Act + Assess
      expect(stripJpeg(other)).toEqual({ ok: false, reason: 'coding' });
    }
  });

  it('sends a 12-bit JPEG to the re-encode (coding)', () => {
    // Prepare
    const twelveBit = edited(plain, (b) => {
      b[frameOffset(plain) + 4] = 12;
    });

    // Act + Assess
    expect(stripJpeg(twelveBit)).toEqual({ ok: false, reason: 'coding' });
  });

  it('sends a CMYK JPEG to the re-encode', async () => {
    // Prepare
    const cmyk = await sharp(plain).toColourspace('cmyk').jpeg().toBuffer();

    // Act + Assess
    expect(stripJpeg(cmyk)).toEqual({ ok: false, reason: 'cmyk' });
  });

  it('sends three components coded as RGB to the re-encode: Adobe transform 0, or components named R, G, B', () => {
    // Prepare
    const at = frameOffset(plain);
    const named = edited(plain, (b) => {
      b[at + 10] = 0x52;
      b[at + 13] = 0x47;
      b[at + 16] = 0x42;
    });

    // Act + Assess
    expect(stripJpeg(withJpegSegments(plain, [adobeSegment(0)]))).toEqual({ ok: false, reason: 'colour transform' });
    expect(stripJpeg(named)).toEqual({ ok: false, reason: 'colour transform' });
    expect(stripJpeg(withJpegSegments(plain, [adobeSegment(1)]))).toMatchObject({ ok: true });
  });

  it('leaves to the decoder what it alone can judge: a second frame, an unknown marker (structure)', () => {
    // Prepare
    const frame = plain.subarray(frameOffset(plain), frameOffset(plain) + 2 + plain.readUInt16BE(frameOffset(plain) + 2));
    const dnl = jpegSegment(0xdc, Buffer.from([0, 90]));

    // Act + Assess
    expect(stripJpeg(withJpegSegments(plain, [frame]))).toEqual({ ok: false, reason: 'structure' });
    expect(stripJpeg(withJpegSegments(plain, [dnl]))).toEqual({ ok: false, reason: 'structure' });
    expect(stripJpeg(plain.subarray(0, plain.length - 2))).toEqual({ ok: false, reason: 'structure' });
  });
});

describe('stripPng', () => {
  it('keeps IHDR, PLTE, tRNS, IDAT and IEND, drops every other chunk, and decodes to the same pixels', async () => {
    // Prepare: a palette PNG with transparency, plus text, EXIF, time, colour and size chunks.
    const rgba = Buffer.alloc(40 * 30 * 4);
    for (let i = 0; i < rgba.length; i += 1) rgba[i] = i % 4 === 3 ? (i % 3 === 0 ? 0 : 255) : (i * 7) & 0xe0;
    const palette = await sharp(rgba, { raw: { width: 40, height: 30, channels: 4 } }).png({ palette: true }).toBuffer();
    const received = withPngChunks(
      palette,
      [pngChunk('gAMA', Buffer.from([0, 0, 0xb1, 0x8f])), pngChunk('sRGB', Buffer.from([0])), pngChunk('pHYs', Buffer.alloc(9)), pngChunk('eXIf', 'MM\0*')],
      [pngChunk('tEXt', 'Author\0Someone Private'), pngChunk('iTXt', 'XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta/>'), pngChunk('tIME', Buffer.alloc(7))],
    );

    // Act
    const result = stripPng(received);

    // Assess
    const out = stored(result);
    expect(chunksOf(palette)).toEqual(expect.arrayContaining(['PLTE', 'tRNS']));
    expect(chunksOf(out)).toEqual(chunksOf(received).filter((t) => ['IHDR', 'PLTE', 'tRNS', 'IDAT', 'IEND'].includes(t)));
    expect((await pixelsOf(out)).equals(await pixelsOf(received))).toBe(true);
    expect(out.includes(Buffer.from('Someone Private'))).toBe(false);
    expect(result).toMatchObject({ mayHoldOrientationOrProfile: true });
  });

  it('keeps an interlaced PNG as it is: the same pixels', async () => {
    // Prepare
    const interlaced = await sharp(await pngImage({ width: 70, height: 66, seed: 24 })).png({ progressive: true }).toBuffer();

    // Act
    const out = stored(stripPng(interlaced));

    // Assess
    expect(out[28]).toBe(1);
    expect((await pixelsOf(out)).equals(await pixelsOf(interlaced))).toBe(true);
  });

  it('needs no metadata read when only colour and layout chunks were removed', async () => {
    // Prepare
    const png = withPngChunks(await pngImage({ width: 64, height: 64, seed: 25 }), [pngChunk('gAMA', Buffer.from([0, 0, 0xb1, 0x8f])), pngChunk('pHYs', Buffer.alloc(9))]);

    // Act + Assess
    expect(stripPng(png)).toMatchObject({ ok: true, mayHoldOrientationOrProfile: false });
  });

  it('sends a 16-bit PNG to the re-encode (bit depth)', async () => {
    // Prepare
    const deep = await sharp(await pngImage({ width: 64, height: 64, seed: 26 })).toColourspace('rgb16').png().toBuffer();

    // Act + Assess
    expect(deep[24]).toBe(16);
    expect(stripPng(deep)).toEqual({ ok: false, reason: 'bit depth' });
  });

  it('leaves to the decoder a kept chunk with a bad CRC and an unknown critical chunk (structure)', async () => {
    // Prepare
    const png = await pngImage({ width: 64, height: 64, seed: 27 });
    const badCrc = edited(png, (b) => {
      b[b.length - 13] = (b[b.length - 13] ?? 0) ^ 1; // the last IDAT's CRC
    });

    // Act + Assess
    expect(stripPng(badCrc)).toEqual({ ok: false, reason: 'structure' });
    expect(stripPng(withPngChunks(png, [pngChunk('ABCD', 'x')]))).toEqual({ ok: false, reason: 'structure' });
  });
});

/** An ICC profile made from sharp's sRGB profile with its tone curves or colorants replaced. */
async function srgbProfile(): Promise<Buffer> {
  const tagged = await sharp(plain).withIccProfile('srgb').toBuffer();
  const icc = (await sharp(tagged).metadata()).icc;
  if (!icc) throw new Error('test: no profile');
  return icc;
}

/** Appends `data` to `icc` and points every tag named in `names` at it. */
function retagged(icc: Buffer, names: readonly string[], data: Buffer): Buffer {
  const out = Buffer.concat([icc, data]);
  const count = out.readUInt32BE(128);
  for (let i = 0; i < count; i += 1) {
    const entry = 132 + 12 * i;
    if (names.includes(out.toString('latin1', entry, entry + 4))) {
      out.writeUInt32BE(icc.length, entry + 4);
      out.writeUInt32BE(data.length, entry + 8);
    }
  }
  out.writeUInt32BE(out.length, 0);
  return out;
}

/** A `curv` tag of `points` samples of `curve`. */
function curv(points: number, curve: (x: number) => number): Buffer {
  const data = Buffer.alloc(12 + 2 * points);
  data.write('curv', 0, 'latin1');
  data.writeUInt32BE(points, 8);
  for (let i = 0; i < points; i += 1) data.writeUInt16BE(Math.round(curve(i / (points - 1)) * 65535), 12 + 2 * i);
  return data;
}

const srgbDecode = (v: number) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);

/** A `para` tag: ICC's parametric curve `fn` (0–4) with its parameters, as s15Fixed16 numbers. */
function para(fn: number, parameters: readonly number[]): Buffer {
  const data = Buffer.alloc(12 + 4 * parameters.length);
  data.write('para', 0, 'latin1');
  data.writeUInt16BE(fn, 8);
  parameters.forEach((value, i) => data.writeInt32BE(Math.round(value * 65536), 12 + 4 * i));
  return data;
}

/** sRGB's curve as ICC's parametric function 3 (IEC 61966-2-1): g, a, b, c, d. */
const SRGB_PARA = [2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045] as const;

describe('isSrgbProfile', () => {
  it('recognises sRGB by what it does: parametric or sampled tone curves', async () => {
    // Prepare
    const icc = await srgbProfile();

    // Act + Assess
    expect(isSrgbProfile(icc)).toBe(true);
    expect(isSrgbProfile(retagged(icc, ['rTRC', 'gTRC', 'bTRC'], curv(1024, srgbDecode)))).toBe(true);
  });

  it('refuses what is not sRGB: Display P3, a gamma of 2.2, a linear curve, other colorants', async () => {
    // Prepare
    const icc = await srgbProfile();
    const p3 = (await sharp(await sharp(plain).withIccProfile('p3').toBuffer()).metadata()).icc;
    const otherRed = Buffer.from(icc);
    const count = otherRed.readUInt32BE(128);
    for (let i = 0; i < count; i += 1) {
      if (otherRed.toString('latin1', 132 + 12 * i, 136 + 12 * i) === 'rXYZ') otherRed.writeInt32BE(Math.round(0.6 * 65536), otherRed.readUInt32BE(136 + 12 * i) + 8);
    }

    // Act + Assess
    expect(p3 && isSrgbProfile(p3)).toBe(false);
    expect(isSrgbProfile(retagged(icc, ['rTRC', 'gTRC', 'bTRC'], curv(1024, (x) => x ** 2.2)))).toBe(false);
    expect(isSrgbProfile(retagged(icc, ['rTRC', 'gTRC', 'bTRC'], curv(2, (x) => x)))).toBe(false);
    expect(isSrgbProfile(otherRed)).toBe(false);
  });

  it('reads every parametric function: sRGB written as function 3 or 4 passes, near misses do not', async () => {
    // Prepare
    const icc = await srgbProfile();
    const withCurve = (tag: Buffer) => isSrgbProfile(retagged(icc, ['rTRC', 'gTRC', 'bTRC'], tag));
    const [g, a, b, c, d] = SRGB_PARA;

    // Act + Assess
    expect(withCurve(para(3, SRGB_PARA))).toBe(true);
    expect(withCurve(para(4, [...SRGB_PARA, 0, 0]))).toBe(true);
    // Function 4's offsets are added: a lift of 1 % above or below the threshold is not sRGB.
    expect(withCurve(para(4, [...SRGB_PARA, 0.01, 0]))).toBe(false);
    expect(withCurve(para(4, [...SRGB_PARA, 0, 0.01]))).toBe(false);
    // Function 3 with the threshold moved: the straight segment then covers too much or too little.
    expect(withCurve(para(3, [g, a, b, c, 0.2]))).toBe(false);
    expect(withCurve(para(3, [g, a, b, c / 2, d]))).toBe(false);
    // Functions 0–2 have no straight segment near black, so sRGB's parameters in them are not sRGB.
    expect(withCurve(para(0, [2.2]))).toBe(false);
    expect(withCurve(para(1, [g, a, b]))).toBe(false);
    expect(withCurve(para(2, [g, a, b, 0]))).toBe(false);
    // Function 2's constant lifts black: not sRGB even where the rest would be close.
    expect(withCurve(para(2, [g, a, b, 0.05]))).toBe(false);
  });

  it('refuses tone curves it cannot read: an unknown function, too few parameters, a table cut short, another type', async () => {
    // Prepare
    const icc = await srgbProfile();
    const withCurve = (tag: Buffer) => isSrgbProfile(retagged(icc, ['rTRC', 'gTRC', 'bTRC'], tag));
    const shortTable = curv(1024, srgbDecode).subarray(0, 12 + 2 * 512);
    const unknownType = Buffer.from(para(3, SRGB_PARA));
    unknownType.write('sf32', 0, 'latin1');

    // Act + Assess
    expect(withCurve(para(5, [...SRGB_PARA, 0, 0]))).toBe(false);
    expect(withCurve(para(3, SRGB_PARA.slice(0, 4)))).toBe(false);
    expect(withCurve(shortTable)).toBe(false);
    expect(withCurve(unknownType)).toBe(false);
    expect(withCurve(Buffer.from('curv\0\0\0\0', 'latin1'))).toBe(false);
  });

  it('reads a one-entry curv as a gamma (u8.8) and an empty one as the identity, neither of them sRGB', async () => {
    // Prepare
    const icc = await srgbProfile();
    const withCurve = (tag: Buffer) => isSrgbProfile(retagged(icc, ['rTRC', 'gTRC', 'bTRC'], tag));
    const gamma = (value: number) => {
      const data = Buffer.alloc(14);
      data.write('curv', 0, 'latin1');
      data.writeUInt32BE(1, 8);
      data.writeUInt16BE(Math.round(value * 256), 12);
      return data;
    };
    const identity = Buffer.alloc(12);
    identity.write('curv', 0, 'latin1');

    // Act + Assess
    expect(withCurve(gamma(2.2))).toBe(false);
    expect(withCurve(gamma(1))).toBe(false);
    expect(withCurve(identity)).toBe(false);
  });

  it('refuses a profile with lookup tables, which a colour engine would use instead of the matrix', async () => {
    // Prepare
    const icc = await srgbProfile();
    const withLut = Buffer.from(icc);
    withLut.write('A2B0', 132, 'latin1'); // rename the first tag

    // Act + Assess
    expect(isSrgbProfile(withLut)).toBe(false);
  });

  it('refuses what is not a profile at all, without throwing', async () => {
    // Prepare
    const icc = await srgbProfile();

    // Act + Assess
    expect(isSrgbProfile(Buffer.alloc(0))).toBe(false);
    expect(isSrgbProfile(icc.subarray(0, 200))).toBe(false);
    expect(isSrgbProfile(Buffer.from('not a profile at all'.repeat(20)))).toBe(false);
  });
});

describe('validationScale: the scale a JPEG stored as received is validated at', () => {
  const jpeg = (width: number, height: number) => ({ width, height, type: JPEG });

  it('decodes in full below 0.2 megapixels, and a PNG always', () => {
    // Act + Assess
    expect(validationScale(jpeg(480, 416), false)).toBe(1);
    expect(validationScale(jpeg(480, 416), true)).toBe(1);
    expect(validationScale(jpeg(480, 640), false)).toBe(8);
    expect(validationScale({ width: 4000, height: 3000, type: PNG }, false)).toBe(1);
  });

  it('takes 1/8 for a progressive JPEG, and for a single-scan one of the usual heights', () => {
    // Act + Assess
    expect([4032, 3024, 4000, 3000, 1920, 1080, 1200, 767].map((h) => validationScale(jpeg(4000, h), false))).toEqual([8, 8, 8, 8, 8, 8, 8, 8]);
    expect(validationScale(jpeg(4000, 833), true)).toBe(8);
  });

  it('takes a finer scale for a single-scan JPEG whose height would leave its last row of blocks unread at 1/8', () => {
    // Act + Assess: 64k+1 … 64k+7 rows: the partial last row would begin a strip of its own
    expect([385, 389, 391].map((h) => validationScale(jpeg(2000, h), false))).toEqual([1, 4, 4]);
    expect(validationScale(jpeg(1203, 899), false)).toBe(2);
    expect(validationScale(jpeg(1111, 833), false)).toBe(1);
    expect([384, 392, 448].map((h) => validationScale(jpeg(2000, h), false))).toEqual([8, 8, 8]);
  });
});

describe('decodePlan: the sizes a validating decode is resized to', () => {
  const jpeg = (width: number, height: number) => ({ width, height, type: JPEG });
  const png = (width: number, height: number) => ({ width, height, type: PNG });

  it('states sharp 0.34\u2019s rule: with fastShrinkOnLoad false, a load at 1/2, 1/4, 1/8 from a shrink of 4, 8, 16', () => {
    // Act + Assess
    expect([3.99, 4, 7.99, 8, 15.99, 16, 40].map((s) => loadScaleOf({ width: 1600, height: 1600 }, { width: 1600 / s, height: 1600 / s }))).toEqual([1, 2, 2, 4, 4, 8, 8]);
    expect(loadScaleOf({ width: 1600, height: 1200 }, { width: 100, height: 600 })).toBe(1); // the smaller factor decides
  });

  it('decodes a baseline JPEG at full scale: raw pixels when small, streamed into a smaller image (shrink < 4) when large', () => {
    // Act + Assess
    expect(decodePlan(jpeg(2000, 1500), 1, undefined)).toEqual({ output: undefined, preview: undefined });
    expect(decodePlan(jpeg(4000, 3000), 1, undefined)).toEqual({ output: { width: 1143, height: 858 }, preview: undefined });
  });

  it('decodes a JPEG at 1/8 (or 1/4, 1/2) and a large PNG into an eighth', () => {
    // Act
    const eighth = decodePlan(jpeg(4000, 3000), REDUCED_SCALE, undefined);
    const quarter = decodePlan(jpeg(4000, 3000), 4, undefined);

    // Assess
    expect(eighth).toEqual({ output: { width: 250, height: 187 }, preview: undefined });
    expect(eighth.output && loadScaleOf({ width: 4000, height: 3000 }, eighth.output)).toBe(8);
    expect(quarter.output && loadScaleOf({ width: 4000, height: 3000 }, quarter.output)).toBe(4);
    expect(decodePlan(png(4000, 3000), 1, undefined)).toEqual({ output: { width: 500, height: 375 }, preview: undefined });
  });

  it('makes the preview the output when sharp can get there without a coarser load, and from the output otherwise', () => {
    // Act + Assess
    expect(decodePlan(jpeg(800, 600), 1, 1024)).toEqual({ output: undefined, preview: 'output' });
    expect(decodePlan(jpeg(3000, 2000), 1, 1024)).toEqual({ output: { width: 1024, height: 683 }, preview: 'output' });
    expect(decodePlan(jpeg(6000, 4000), 1, 1024)).toEqual({ output: { width: 1715, height: 1143 }, preview: { width: 1024, height: 682 } });
    expect(decodePlan(jpeg(6000, 4000), REDUCED_SCALE, 1024)).toEqual({ output: { width: 1024, height: 683 }, preview: 'output' });
    expect(decodePlan(png(6000, 4000), 1, 1024)).toEqual({ output: { width: 1024, height: 683 }, preview: 'output' });
  });

  it('never lets a preview load a JPEG at a finer scale that skips rows: it goes through a scale that reads them', () => {
    // Prepare: 6000×4001 at 1/8 reads every row, at 1/2 not (floor(4001 / 2) = 2000 ends a strip)
    const size = jpeg(6000, 4001);
    expect([readsEveryRow(4001, 8), readsEveryRow(4001, 2)]).toEqual([true, false]);

    // Act
    const plan = decodePlan(size, REDUCED_SCALE, 1024);

    // Assess: the preview would load at 1/2; the decode goes at full scale instead
    expect(loadScaleOf(size, fitWithin(size, 1024))).toBe(2);
    expect(plan.output && loadScaleOf(size, plan.output)).toBe(1);
    expect(plan.preview).toEqual({ width: 1024, height: 683 });
  });

  it('never has sharp load a JPEG coarser than the scale it is validated at, nor at one that skips rows, whatever the size and the preview', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30_000 }),
        fc.integer({ min: 1, max: 30_000 }),
        fc.option(fc.integer({ min: 16, max: 4096 }), { nil: undefined }),
        fc.constantFrom<ValidationScale>(1, 2, 4, 8),
        (width, height, previewMax, scale) => {
          const size = { width, height };
          const plan = decodePlan(jpeg(width, height), scale, previewMax);
          const loaded = plan.output ? loadScaleOf(size, plan.output) : 1;
          expect(loaded).toBeLessThanOrEqual(scale);
          // A finer scale than the one chosen only when it too reads every row of blocks.
          if (loaded !== scale) expect(readsEveryRow(height, loaded)).toBe(true);
          const preview = plan.preview === 'output' ? (plan.output ?? size) : plan.preview;
          if (previewMax !== undefined) expect(Math.max(preview?.width ?? 0, preview?.height ?? 0)).toBeLessThanOrEqual(Math.max(previewMax, 1));
        },
      ),
    );
  });
});
