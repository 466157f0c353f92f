// The pure rules of decode.ts: which scale a validating decode runs at, sizes within a bound, the
// raw-pixel boundary, and what a libvips failure means for the job (decodePlan's sizes are pinned
// in lossless.test.ts).
import { describe, expect, it } from 'vitest';
import { decodeError, decodePlan, fitWithin, loadScaleOf, RAW_SINK_MAX_PIXELS, readsEveryRow, REDUCED_SCALE, REDUCED_SCALE_MIN_PIXELS, validationScale } from '../../src/enroll/decode.ts';
import { JPEG, PNG } from '../../src/enroll/images.ts';
import { JobError } from '../../src/job/errors.ts';

const LIMITS = { maxImagePixels: 50_000_000, minImageDimension: 8, maxReferenceDimension: undefined };

describe('validationScale', () => {
  const jpeg = (width: number, height: number) => ({ width, height, type: JPEG });

  it('validates a JPEG at a reduced scale from REDUCED_SCALE_MIN_PIXELS, and at full scale one row short of it', () => {
    // Prepare: 1000 × 200 is exactly the threshold, and 200 rows are read whole at 1/8.
    const at = jpeg(1000, REDUCED_SCALE_MIN_PIXELS / 1000);
    const short = jpeg(1000, REDUCED_SCALE_MIN_PIXELS / 1000 - 1);

    // Act + Assess
    expect(validationScale(at, true)).toBe(REDUCED_SCALE);
    expect(validationScale(at, false)).toBe(REDUCED_SCALE);
    expect(validationScale(short, true)).toBe(1);
  });

  it('counts pixels, not the aspect: a tall image of many pixels is validated at 1/8', () => {
    // Act + Assess
    expect(validationScale(jpeg(500, 2000), true)).toBe(REDUCED_SCALE);
  });

  it('validates a PNG at full scale however large', () => {
    // Act + Assess
    expect(validationScale({ width: 10_000, height: 10_000, type: PNG }, false)).toBe(1);
  });

  it('gives a single-scan JPEG whose last block row 1/8 would skip the coarsest scale that reads it, and a progressive one 1/8', () => {
    // Prepare: 1029 rows = 64 × 16 + 5: at 1/8 libvips keeps 128 rows, which end a strip, and the
    // last partial block row is never decoded; at 1/4 it keeps 257, which do not.
    const skipped = jpeg(1000, 1029);

    // Act + Assess
    expect(readsEveryRow(1029, 8)).toBe(false);
    expect(validationScale(skipped, false)).toBe(4);
    expect(validationScale(skipped, true)).toBe(REDUCED_SCALE);
  });
});

describe('fitWithin', () => {
  it('keeps a size whose longest side is exactly the bound', () => {
    // Prepare
    const size = { width: 1024, height: 700 };

    // Act + Assess
    expect(fitWithin(size, 1024)).toBe(size);
  });

  it('scales the longest side down to the bound, keeping the aspect, never below one pixel', () => {
    // Act + Assess
    expect(fitWithin({ width: 2048, height: 1000 }, 1024)).toEqual({ width: 1024, height: 500 });
    expect(fitWithin({ width: 10_000, height: 1 }, 100)).toEqual({ width: 100, height: 1 });
  });
});

describe('loadScaleOf', () => {
  it('takes the shrink of each side as a ratio, the smaller one deciding', () => {
    // Act + Assess: 16× on the width, 4× on the height.
    expect(loadScaleOf({ width: 1600, height: 400 }, { width: 100, height: 100 })).toBe(2);
  });
});

describe('decodePlan: the raw-pixel boundary', () => {
  it('hands back raw pixels one pixel under RAW_SINK_MAX_PIXELS and streams from it', () => {
    // Prepare
    const under = { width: 2000, height: RAW_SINK_MAX_PIXELS / 2000 - 1, type: JPEG };
    const at = { width: 2000, height: RAW_SINK_MAX_PIXELS / 2000, type: JPEG };

    // Act + Assess
    expect(decodePlan(under, 1, undefined).output).toBeUndefined();
    expect(decodePlan(at, 1, undefined).output).toBeDefined();
  });

  it('streams a small progressive JPEG validated at 1/8 (no raw sink at a reduced scale)', () => {
    // Act
    const plan = decodePlan({ width: 1600, height: 1200, type: JPEG }, REDUCED_SCALE, undefined);

    // Assess
    expect(plan).toEqual({ output: { width: 100, height: 75 }, preview: undefined });
  });
});

describe('decodeError', () => {
  it('names the image and the first non-empty line of what libvips said, trimmed', () => {
    // Act
    const error = decodeError(new Error('\n  \n  VipsJpeg: Premature end of JPEG file  \nsecond line'), 'images[2]', LIMITS);

    // Assess
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[2] could not be decoded: VipsJpeg: Premature end of JPEG file' });
  });

  it('keeps a line of 200 characters whole and cuts one of 201 to 200 and an ellipsis', () => {
    // Act
    const whole = decodeError(new Error('a'.repeat(200)), 'images[0]', LIMITS);
    const cut = decodeError(new Error('b'.repeat(201)), 'images[0]', LIMITS);

    // Assess
    expect(whole.message).toBe(`images[0] could not be decoded: ${'a'.repeat(200)}`);
    expect(cut.message).toBe(`images[0] could not be decoded: ${'b'.repeat(200)}…`);
  });

  it('says "unknown error" for a failure with no text, and reads a thrown non-Error as text', () => {
    // Act
    const empty = decodeError(new Error(' \n '), 'images[0]', LIMITS);
    const text = decodeError('bad Huffman table', 'images[1]', LIMITS);

    // Assess
    expect(empty.message).toBe('images[0] could not be decoded: unknown error');
    expect(text.message).toBe('images[1] could not be decoded: bad Huffman table');
  });

  it.each([['out of memory'], ['vips: memory allocation failed'], ['Cannot allocate 4000000 bytes'], ['insufficient memory for the image']])(
    'treats "%s" as the machine\'s fault: a plain Error (retried), with the cause kept',
    (reason) => {
      // Prepare
      const cause = new Error(reason);

      // Act
      const error = decodeError(cause, 'images[0]', LIMITS);

      // Assess
      expect(error).not.toBeInstanceOf(JobError);
      expect(error.message).toBe(`images[0] could not be decoded for lack of memory: ${reason}`);
      expect(error.cause).toBe(cause);
    },
  );

  it('turns the pixel limit into IMAGE_TOO_LARGE naming MAX_IMAGE_PIXELS, with the cause kept', () => {
    // Prepare
    const cause = new Error('Input image exceeds pixel limit');

    // Act
    const error = decodeError(cause, 'images[3]', LIMITS);

    // Assess
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE', message: 'images[3] is over the limit of 50000000 pixels (MAX_IMAGE_PIXELS)' });
    expect(error.cause).toBe(cause);
  });

  it('keeps the cause of an undecodable image', () => {
    // Prepare
    const cause = new Error('not a JPEG');

    // Act + Assess
    expect(decodeError(cause, 'images[0]', LIMITS).cause).toBe(cause);
  });
});
