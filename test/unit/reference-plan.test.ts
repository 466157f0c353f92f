// How an image becomes a reference (normalise.ts): the plan read from the decoder (rebuilt, turned
// or re-encoded, and why), the memory a decode is admitted by, what the encoder writes (quality,
// tables, bit depth, no palette, only the image chunks of a PNG), the preview for the face check,
// and the admission of a decode (its memory, a slot, a cancelled job leaving the line).
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { checkImage, JPEG, PNG, walkJpeg, walkPng, type CheckedImageInfo } from '../../src/image/images.ts';
import { jpegCodec, JpegError, type JpegCodec } from '../../src/image/jpeg.ts';
import {
  decodeMemoryEstimate,
  imageNormaliser,
  JPEG_QUALITY,
  planReference,
  rebuildCeiling,
  type DecodeMemory,
  type ImageLimits,
  type ReferencePlan,
} from '../../src/image/normalise.ts';
import { JobError } from '../../src/job/errors.ts';
import { adobeSegment, cameraJpeg, picture, withJpegSegments } from '../support/images.ts';
import { rejectionOf } from './helpers.ts';

const LIMITS: ImageLimits = { maxImagePixels: 1e8, minImageDimension: 16, maxReferenceDimension: undefined };
const MiB = 2 ** 20;
const checked = (bytes: Buffer) => checkImage(bytes, 'images[0]', 1e9);
const plan = (bytes: Buffer, limits: ImageLimits = LIMITS) => planReference(bytes, checked(bytes), 'images[0]', limits);
const normalise = imageNormaliser({ parallel: 2 });

/** A flat grey-ish picture of `channels` bands, as sharp builds it. */
const flat = (width: number, height: number, channels: 1 | 2 | 3 | 4 = 3) =>
  sharp({ create: { width, height, channels: channels === 1 || channels === 2 ? 3 : channels, background: { r: 90, g: 140, b: 200, alpha: 0.5 } } }).toColourspace(
    channels <= 2 ? 'b-w' : 'srgb',
  );

/** The payloads of a JPEG's segments with this marker, in order. */
function segments(jpeg: Buffer, marker: number): Buffer[] {
  const found: Buffer[] = [];
  walkJpeg(jpeg, 0, (m, start, end) => {
    if (m === marker) found.push(jpeg.subarray(start + 4, end));
  });
  return found;
}
const chunkTypes = (png: Buffer) => {
  const types: string[] = [];
  walkPng(png, (start) => {
    types.push(png.toString('latin1', start + 4, start + 8));
  });
  return types;
};
/** A PNG's bit depth and colour type, from its IHDR. */
const pngFormat = (png: Buffer) => ({ depth: png[24], colourType: png[25] });

describe('planReference: a JPEG', () => {
  it('is rebuilt when it is upright YCbCr or grey, with no profile or an sRGB one, within the dimension bound', async () => {
    // Prepare
    const colour = await picture(64, 48).jpeg().toBuffer();
    const grey = await picture(64, 48).toColourspace('b-w').jpeg().toBuffer();
    const srgbProfile = await picture(64, 48).withIccProfile('srgb').jpeg().toBuffer();

    // Act
    const plans = await Promise.all([colour, grey, srgbProfile].map((bytes) => plan(bytes, { ...LIMITS, maxReferenceDimension: 64 })));

    // Assess
    for (const made of plans) expect(made).toMatchObject({ type: { ext: 'jpg' }, width: 64, height: 48, path: 'rebuilt', orientation: 1, progressive: false, bytesPerPixel: 3 });
    for (const made of plans) expect(made.reason).toBeUndefined();
  });

  it('is turned when its EXIF orientation can be applied exactly, and reads progressive coding and the coefficients', async () => {
    // Prepare: whole MCUs both ways
    const bytes = await picture(160, 96).withMetadata({ orientation: 6 }).jpeg({ progressive: true }).toBuffer();

    // Act
    const made = await plan(bytes);

    // Assess
    expect(made).toMatchObject({ width: 160, height: 96, path: 'turned', orientation: 6, progressive: true, coefficientBytes: jpegCodec().inspect(bytes, 64).coefficientBytes });
    expect(made.coefficientBytes).toBeGreaterThan(0);
  });

  it('reads no orientation where no segment could hold one: the decoder is not asked', async () => {
    // Prepare: an orientation-6 photo whose walk is told it holds no APP1 or APP2
    const bytes = await cameraJpeg({ width: 160, height: 96, seed: 3 });
    const info: CheckedImageInfo = { ...checked(bytes), mayHoldOrientationOrProfile: false };

    // Act
    const [asked, notAsked] = await Promise.all([plan(bytes), planReference(bytes, info, 'images[0]', LIMITS)]);

    // Assess
    expect([asked.orientation, asked.path]).toEqual([6, 'turned']);
    expect([notAsked.orientation, notAsked.path]).toEqual([1, 'rebuilt']);
  });

  it.each([
    ['three components coded as RGB (Adobe transform 0)', async () => withJpegSegments(await picture(64, 48).jpeg().toBuffer(), [adobeSegment(0)]), 'colour transform'],
    ['a Display P3 profile', () => picture(64, 48).withIccProfile('p3').jpeg().toBuffer(), 'colour profile'],
    ['CMYK with a CMYK profile', () => picture(64, 48).toColourspace('cmyk').withIccProfile('cmyk').jpeg().toBuffer(), 'cmyk'],
    ['a P3 profile and an orientation that is not exact', () => picture(65, 49).withMetadata({ orientation: 6 }).withIccProfile('p3').jpeg().toBuffer(), 'colour profile'],
  ] as const)('is re-encoded for %s', async (_name, make, reason) => {
    // Act
    const made = await plan(await make());

    // Assess
    expect([made.path, made.reason]).toEqual(['reencoded', reason]);
  });

  it('is re-encoded for its size when its longer side is past MAX_REFERENCE_DIMENSION, turned or not, and not at it', async () => {
    // Prepare
    const bytes = await picture(160, 96).withMetadata({ orientation: 6 }).jpeg().toBuffer();

    // Act
    const [at, past] = await Promise.all([plan(bytes, { ...LIMITS, maxReferenceDimension: 160 }), plan(bytes, { ...LIMITS, maxReferenceDimension: 159 })]);

    // Assess
    expect([at.path, at.reason]).toEqual(['turned', undefined]);
    expect([past.path, past.reason]).toEqual(['reencoded', 'dimension']);
  });

  it('refuses what libjpeg refuses as INVALID_IMAGE, naming the image; any other failure of the codec is passed on as it is', async () => {
    // Prepare
    const bytes = await picture(64, 48).jpeg().toBuffer();
    const failing = (error: Error): JpegCodec => ({ ...jpegCodec(), inspect: () => { throw error; } });
    const bug = new TypeError('not a buffer');

    // Act
    const refused = await rejectionOf(() => planReference(bytes, checked(bytes), 'images[1]', LIMITS, failing(new JpegError('Bogus marker length'))));
    const passed = await rejectionOf(() => planReference(bytes, checked(bytes), 'images[1]', LIMITS, failing(bug)));

    // Assess
    expect(refused).toBeInstanceOf(JobError);
    expect(refused).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[1] could not be decoded: Bogus marker length' });
    expect(passed).toBe(bug);
  });
});

describe('planReference: a PNG', () => {
  it('is rebuilt (written anew, no pixel changed) when it is upright, with no profile or an sRGB one, within the bound', async () => {
    // Prepare
    const plain = await flat(80, 64).png().toBuffer();
    const srgbProfile = await flat(80, 64).withIccProfile('srgb').png().toBuffer();

    // Act
    const plans = await Promise.all([plain, srgbProfile].map((bytes) => plan(bytes, { ...LIMITS, maxReferenceDimension: 80 })));

    // Assess
    for (const made of plans) expect(made).toMatchObject({ type: { ext: 'png' }, width: 80, height: 64, path: 'rebuilt', orientation: 1, coefficientBytes: 0, progressive: false });
    for (const made of plans) expect(made.reason).toBeUndefined();
  });

  it.each([
    ['an orientation', () => flat(80, 64).png().withMetadata({ orientation: 6 }).toBuffer(), LIMITS],
    ['a Display P3 profile', () => flat(80, 64).withIccProfile('p3').png().toBuffer(), LIMITS],
    ['its longer side past MAX_REFERENCE_DIMENSION', () => flat(80, 64).png().toBuffer(), { ...LIMITS, maxReferenceDimension: 79 }],
  ] as const)('is re-encoded for %s (reason png)', async (_name, make, limits) => {
    // Act
    const made = await plan(await make(), limits);

    // Assess
    expect([made.path, made.reason]).toEqual(['reencoded', 'png']);
  });

  it.each([
    ['RGB', 3, 'png', 4, false],
    ['RGBA', 4, 'png', 4, false],
    ['grey', 1, 'png', 4, true],
    ['grey and alpha', 2, 'png', 4, true],
    ['16-bit RGB', 3, 'rgb16', 8, false],
  ] as const)('counts the bytes a pixel of %s decodes to, and whether it is grey', async (_name, channels, space, bytesPerPixel, grey) => {
    // Prepare
    let image = flat(40, 32, channels);
    if (channels === 2) image = image.ensureAlpha(0.5);
    if (space === 'rgb16') image = image.toColourspace('rgb16');
    const bytes = await image.png().toBuffer();

    // Act
    const made = await plan(bytes);

    // Assess
    expect({ bytesPerPixel: made.bytesPerPixel, grey: made.grey }).toEqual({ bytesPerPixel, grey });
  });

  it('refuses a PNG whose header and decoder disagree on its size', async () => {
    // Prepare
    const bytes = await flat(80, 64).png().toBuffer();

    // Act
    const error = await rejectionOf(() => planReference(bytes, { ...checked(bytes), width: 81 }, 'images[2]', LIMITS));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[2]: its header reads 81×64 pixels but the decoder reads 80×64' });
  });
});

describe('decodeMemoryEstimate', () => {
  const base: ReferencePlan = { type: JPEG, width: 1000, height: 600, path: 'rebuilt', orientation: 1, coefficientBytes: 5_000_000, progressive: false, bytesPerPixel: 3 };
  const input = 300_001;

  it('for a rebuild: the input twice, the output ceiling, the coefficients (twice turned), the codec, and a streamed preview', () => {
    // Act
    const upright = decodeMemoryEstimate(input, base, false);
    const turned = decodeMemoryEstimate(input, { ...base, path: 'turned', orientation: 6 }, false);
    const withPreview = decodeMemoryEstimate(input, base, true);

    // Assess
    expect(upright).toBe(2 * input + rebuildCeiling(input) + 5_000_000 + MiB);
    expect(turned - upright).toBe(5_000_000);
    expect(withPreview - upright).toBe(8 * MiB);
  });

  it('for a re-encode: the input, what is written, and half the pixels streaming, all of them and half again kept for a preview, twice turned', () => {
    // Prepare
    const reencoded: ReferencePlan = { ...base, path: 'reencoded', reason: 'colour profile' };
    const pixels = 1000 * 600 * 3;
    const fixed = input + Math.ceil(input * 1.5) + MiB;

    // Act / Assess
    expect(decodeMemoryEstimate(input, reencoded, false)).toBe(fixed + pixels * 0.5);
    expect(decodeMemoryEstimate(input, reencoded, true)).toBe(fixed + pixels * 1.5);
    for (const orientation of [5, 6, 7, 8]) {
      expect(decodeMemoryEstimate(input, { ...reencoded, orientation }, false)).toBe(fixed + pixels * 2);
      expect(decodeMemoryEstimate(input, { ...reencoded, orientation }, true)).toBe(fixed + pixels * 2);
    }
    for (const orientation of [2, 3, 4]) expect(decodeMemoryEstimate(input, { ...reencoded, orientation }, false)).toBe(fixed + pixels * 0.5);
    expect(decodeMemoryEstimate(input, { ...reencoded, progressive: true }, false)).toBe(fixed + pixels * 0.5 + 5_000_000);
  });

  it('for a PNG, even one that no pixel changes: the decode, never the coefficients path', () => {
    // Prepare
    const png: ReferencePlan = { ...base, type: PNG, coefficientBytes: 0, bytesPerPixel: 8 };

    // Act / Assess
    expect(decodeMemoryEstimate(input, png, false)).toBe(input + Math.ceil(input * 1.5) + MiB + 1000 * 600 * 8 * 0.5);
  });
});

describe('imageNormaliser: what the encoder writes', () => {
  it(`re-encodes a JPEG at quality ${JPEG_QUALITY} with the standard Huffman tables`, async () => {
    // Prepare: a profile to convert, so it is re-encoded; what sharp writes for the same settings
    const received = await picture(96, 64).withIccProfile('p3').jpeg({ quality: 75 }).toBuffer();
    const expected = await picture(96, 64).jpeg({ quality: JPEG_QUALITY, optimiseCoding: false }).toBuffer();

    // Act
    const stored = await normalise(received, checked(received), 'images[0]', LIMITS);

    // Assess
    expect(stored.path).toBe('reencoded');
    expect(segments(stored.bytes, 0xdb)).toEqual(segments(expected, 0xdb));
    expect(segments(stored.bytes, 0xc4)).toEqual(segments(expected, 0xc4));
  });

  it('writes a PNG at its own bit depth, grey as grey, a palette image as truecolour, and only its image chunks', async () => {
    // Prepare
    const deep = await flat(40, 32).toColourspace('rgb16').png().toBuffer();
    const deepGrey = await flat(40, 32, 1).toColourspace('grey16').png().toBuffer();
    const shallow = await flat(40, 32).png().withMetadata({ density: 300 }).toBuffer();
    const palette = await picture(40, 32).png({ palette: true }).toBuffer();

    // Act
    const [a, b, c, d] = await Promise.all([deep, deepGrey, shallow, palette].map((bytes) => normalise(bytes, checked(bytes), 'images[0]', LIMITS)));

    // Assess: colour types 0 grey, 2 RGB, 3 palette
    expect(pngFormat(a?.bytes as Buffer)).toEqual({ depth: 16, colourType: 2 });
    expect(pngFormat(b?.bytes as Buffer)).toEqual({ depth: 16, colourType: 0 });
    expect(pngFormat(c?.bytes as Buffer)).toEqual({ depth: 8, colourType: 2 });
    expect(pngFormat(d?.bytes as Buffer).colourType).not.toBe(3);
    expect(shallow.includes(Buffer.from('pHYs'))).toBe(true);
    for (const stored of [a, b, c, d]) expect(new Set(chunkTypes(stored?.bytes as Buffer))).toEqual(new Set(['IHDR', 'IDAT', 'IEND']));
  });
});

describe('imageNormaliser: the preview for the face check', () => {
  it.each([
    ['a rebuilt grey JPEG', () => flat(200, 100, 1).jpeg().toBuffer(), 'rebuilt'],
    ['a re-encoded JPEG', () => flat(200, 100).withIccProfile('p3').jpeg().toBuffer(), 'reencoded'],
    ['a grey PNG with alpha', () => flat(200, 100, 2).ensureAlpha(0.5).png().toBuffer(), 'rebuilt'],
  ] as const)('of %s: RGB, within its bound, its scale to the stored size', async (_name, make, path) => {
    // Prepare
    const bytes = await make();

    // Act
    const stored = await normalise(bytes, checked(bytes), 'images[0]', LIMITS, { preview: { maxDimension: 50 } });
    const whole = await normalise(bytes, checked(bytes), 'images[0]', LIMITS, { preview: { maxDimension: 400 } });
    const none = await normalise(bytes, checked(bytes), 'images[0]', LIMITS);

    // Assess
    expect(stored.path).toBe(path);
    expect(stored.preview).toMatchObject({ width: 50, height: 25, channels: 3, scale: 0.25 });
    expect(stored.preview?.data.length).toBe(50 * 25 * 3);
    expect(whole.preview).toMatchObject({ width: 200, height: 100, channels: 3, scale: 1 });
    expect(none.preview).toBeUndefined();
    // Every preview pixel is a pixel of the picture (flat: one colour), not of a default or a blank.
    const [r, g, b] = (await sharp(stored.bytes).flatten({ background: '#ffffff' }).toColourspace('srgb').raw().toBuffer()).subarray(0, 3);
    for (let i = 0; i < (stored.preview?.data.length ?? 0); i += 3) {
      expect(Math.abs((stored.preview?.data[i] ?? 0) - (r ?? 0))).toBeLessThanOrEqual(3);
      expect(Math.abs((stored.preview?.data[i + 1] ?? 0) - (g ?? 0))).toBeLessThanOrEqual(3);
      expect(Math.abs((stored.preview?.data[i + 2] ?? 0) - (b ?? 0))).toBeLessThanOrEqual(3);
    }
  });

  it('with a preview, bounds the stored size by MAX_REFERENCE_DIMENSION and refuses what that leaves too small', async () => {
    // Prepare
    const bytes = await flat(400, 200).withIccProfile('p3').jpeg().toBuffer();
    const thin = await flat(400, 60).withIccProfile('p3').jpeg().toBuffer();

    // Act
    const stored = await normalise(bytes, checked(bytes), 'images[0]', { ...LIMITS, maxReferenceDimension: 100 }, { preview: { maxDimension: 50 } });
    const error = await rejectionOf(() => normalise(thin, checked(thin), 'images[0]', { ...LIMITS, minImageDimension: 32, maxReferenceDimension: 200 }, { preview: { maxDimension: 50 } }));

    // Assess
    expect(stored).toMatchObject({ width: 100, height: 50, preview: { width: 50, height: 25, scale: 0.5 } });
    expect(error).toMatchObject({ code: 'IMAGE_TOO_SMALL' });
  });
});

describe('imageNormaliser: admission', () => {
  /** A decode share that grants at once and records what was asked and given back. */
  function recordingMemory() {
    const events: string[] = [];
    const memory: DecodeMemory = {
      acquire: async (bytes, options) => {
        events.push(`acquire ${bytes}${options?.signal ? ' with the signal' : ''}`);
        return { release: () => events.push(`release ${bytes}`) };
      },
    };
    return { memory, events };
  }

  it('admits each decode by its estimate against the decode memory, given back once it is done', async () => {
    // Prepare
    const { memory, events } = recordingMemory();
    const bytes = await picture(64, 48).jpeg().toBuffer();
    const estimate = decodeMemoryEstimate(bytes.length, await plan(bytes), true);
    const waits: string[] = [];

    // Act
    const stored = await imageNormaliser({ parallel: 1, memory })(bytes, checked(bytes), 'images[0]', LIMITS, {
      preview: { maxDimension: 32 },
      waitFor: (wait) => {
        waits.push('waited');
        return wait;
      },
    });

    // Assess
    expect(stored.path).toBe('rebuilt');
    expect(events).toEqual([`acquire ${estimate}`, `release ${estimate}`]);
    expect(waits).toEqual(['waited']);
  });

  it('lets a cancelled job leave the line for a slot, giving its memory back, and keeps the slot for the next', async () => {
    // Prepare: one slot, held by a first rebuild (its codec waits for the test) while a second waits for the slot
    const { memory, events } = recordingMemory();
    const codec = jpegCodec();
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const held: JpegCodec = { ...codec, rebuild: async (...args) => gate.then(() => codec.rebuild(...args)) };
    const one = imageNormaliser({ parallel: 1, memory, jpeg: held });
    const bytes = await picture(64, 48).jpeg().toBuffer();
    const controller = new AbortController();
    const first = one(bytes, checked(bytes), 'images[0]', LIMITS);
    const second = one(bytes, checked(bytes), 'images[1]', LIMITS, { signal: controller.signal });
    while (events.length < 2) await new Promise((resolve) => setImmediate(resolve));

    // Act
    controller.abort(new Error('job cancelled'));
    const error = await rejectionOf(() => second);
    open();
    const third = await one(bytes, checked(bytes), 'images[2]', LIMITS);

    // Assess
    expect(error).toMatchObject({ message: 'job cancelled' });
    expect((await first).path).toBe('rebuilt');
    expect(third.path).toBe('rebuilt');
    // The second's memory given back at its cancellation; the third's taken while the first still held the slot.
    expect(events.map((e) => e.split(' ')[0])).toEqual(['acquire', 'acquire', 'release', 'acquire', 'release', 'release']);
  });

  it('refuses at once a job already cancelled, its memory given back', async () => {
    // Prepare
    const { memory, events } = recordingMemory();
    const bytes = await picture(64, 48).jpeg().toBuffer();

    // Act
    const error = await rejectionOf(() => imageNormaliser({ parallel: 1, memory })(bytes, checked(bytes), 'images[0]', LIMITS, { signal: AbortSignal.abort(new Error('gone')) }));

    // Assess
    expect(error).toMatchObject({ message: 'gone' });
    expect(events.map((e) => e.split(' ')[0])).toEqual(['acquire', 'release']);
    expect(events[0]).toMatch(/ with the signal$/);
  });

  it('decodes one image at a time when told none may run at once (at least one slot)', async () => {
    // Prepare
    const bytes = await picture(64, 48).jpeg().toBuffer();

    // Act
    const stored = await imageNormaliser({ parallel: 0 })(bytes, checked(bytes), 'images[0]', LIMITS);

    // Assess
    expect(stored.path).toBe('rebuilt');
  });
});

describe('imageNormaliser: the rebuild', () => {
  /** The real codec, its rebuild calls recorded (or failing with `error`). */
  function recordingCodec(error?: Error) {
    const codec = jpegCodec();
    const calls: { orientation: number; maxScans: number; maxBytes: number }[] = [];
    const recording: JpegCodec = {
      ...codec,
      rebuild: async (jpeg, orientation, limits) => {
        calls.push({ orientation, ...limits });
        if (error) throw error;
        return codec.rebuild(jpeg, orientation, limits);
      },
    };
    return { recording, calls };
  }

  it('asks the codec for the plan\u2019s turn, within the scan limit and the output ceiling', async () => {
    // Prepare
    const bytes = await picture(160, 96).withMetadata({ orientation: 6 }).jpeg().toBuffer();
    const { recording, calls } = recordingCodec();

    // Act
    const stored = await imageNormaliser({ jpeg: recording })(bytes, checked(bytes), 'images[0]', LIMITS);

    // Assess
    expect(stored).toMatchObject({ path: 'turned', width: 96, height: 160 });
    expect(calls).toEqual([{ orientation: 6, maxScans: 64, maxBytes: rebuildCeiling(bytes.length) }]);
  });

  it('refuses what libjpeg refuses while rebuilding as INVALID_IMAGE, and a rebuild whose scans are not the walk\u2019s', async () => {
    // Prepare
    const bytes = await picture(64, 48).jpeg().toBuffer();
    const { recording } = recordingCodec(new JpegError('Corrupt JPEG data: bad Huffman code'));

    // Act
    const refused = await rejectionOf(() => imageNormaliser({ jpeg: recording })(bytes, checked(bytes), 'images[1]', LIMITS));
    const disagreeing = await rejectionOf(() => normalise(bytes, { ...checked(bytes), scans: 2 }, 'images[1]', LIMITS));

    // Assess
    expect(refused).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[1] could not be decoded: Corrupt JPEG data: bad Huffman code' });
    expect(disagreeing).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[1]: its structure holds 2 scans but the decoder read 1' });
  });
});

describe('planReference: the dimensions', () => {
  it('takes exactly MAX_IMAGE_PIXELS and a shorter side of exactly MIN_IMAGE_DIMENSION', async () => {
    // Prepare
    const bytes = await picture(80, 64).jpeg().toBuffer();

    // Act
    const made = await plan(bytes, { ...LIMITS, maxImagePixels: 80 * 64, minImageDimension: 64 });

    // Assess
    expect(made).toMatchObject({ width: 80, height: 64 });
  });

  it('refuses a JPEG whose header and decoder disagree on its height', async () => {
    // Prepare
    const bytes = await picture(80, 64).jpeg().toBuffer();

    // Act
    const error = await rejectionOf(() => planReference(bytes, { ...checked(bytes), height: 65 }, 'images[0]', LIMITS));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[0]: its header reads 80×65 pixels but the decoder reads 80×64' });
  });

  it('never enlarges an image re-encoded for another reason than its size', async () => {
    // Prepare
    const bytes = await picture(64, 48).withIccProfile('p3').jpeg().toBuffer();

    // Act
    const stored = await normalise(bytes, checked(bytes), 'images[0]', { ...LIMITS, maxReferenceDimension: 200 });

    // Assess
    expect(stored).toMatchObject({ path: 'reencoded', reason: 'colour profile', width: 64, height: 48 });
  });
});
