// The pure rules of decode.ts: sizes within a bound, and what a libvips failure means for the job.
import { describe, expect, it } from 'vitest';
import { decodeError, fitWithin } from '../../src/image/decode.ts';
import { JobError } from '../../src/job/errors.ts';

const LIMITS = { maxImagePixels: 50_000_000, minImageDimension: 8, maxReferenceDimension: undefined };

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
