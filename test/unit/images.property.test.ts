// Fuzzing the image gate: any bytes — random, or a real JPEG/PNG cut, flipped or spliced — end as
// a checked, decoded, re-encoded image of the same type or a JobError with a documented code.
// Never another exception (a RangeError from a header walk, a libvips crash).
import fc from 'fast-check';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkImage } from '../../src/image/images.ts';
import { imageNormaliser, type ImageLimits } from '../../src/image/normalise.ts';
import { JobError } from '../../src/job/errors.ts';
import { jpegImage, pngImage } from '../support/images.ts';

const LIMITS: ImageLimits = { maxImagePixels: 1_000_000, minImageDimension: 16, maxReferenceDimension: undefined };
const normalise = imageNormaliser({ parallel: 2 });
const IMAGE_CODES = ['INVALID_IMAGE', 'IMAGE_TOO_LARGE', 'IMAGE_TOO_SMALL'];

let seeds: Buffer[] = [];

beforeAll(async () => {
  seeds = await Promise.all([jpegImage({ width: 70, height: 50, seed: 1 }), pngImage({ width: 50, height: 70, seed: 2 })]);
});

type Edit = { kind: 'cut'; at: number } | { kind: 'flip'; at: number; value: number } | { kind: 'append'; bytes: Uint8Array } | { kind: 'splice'; at: number; bytes: Uint8Array };

const edits = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.nat(255) }),
    fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 32 }) }),
    fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 16 }) }),
  ),
  { minLength: 1, maxLength: 4 },
);

function apply(bytes: Buffer, list: Edit[]): Buffer {
  let out = Buffer.from(bytes);
  for (const edit of list) {
    const at = out.length === 0 ? 0 : ('at' in edit ? edit.at : 0) % out.length;
    if (edit.kind === 'cut') out = out.subarray(0, at);
    else if (edit.kind === 'flip') out[at] = edit.value;
    else if (edit.kind === 'append') out = Buffer.concat([out, edit.bytes]);
    else out = Buffer.concat([out.subarray(0, at), edit.bytes, out.subarray(at)]);
  }
  return out;
}

async function gate(bytes: Buffer): Promise<'stored' | string> {
  try {
    const info = checkImage(bytes, 'images[0]', 1024 * 1024);
    const stored = await normalise(bytes, info, 'images[0]', LIMITS);
    const meta = await sharp(stored.bytes).metadata();
    expect(meta.format).toBe(info.type.ext === 'jpg' ? 'jpeg' : 'png');
    expect(meta.exif).toBeUndefined();
    return 'stored';
  } catch (e: unknown) {
    if (!(e instanceof JobError)) throw e;
    expect(IMAGE_CODES).toContain(e.code);
    return e.code;
  }
}

describe('the image gate, for any bytes', () => {
  it('ends every mutated JPEG or PNG as a clean image of its type or an image error code', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(1), edits, async (which, list) => {
        await gate(apply(seeds[which] ?? Buffer.alloc(0), list));
      }),
      { numRuns: 400 },
    );
  });

  it('ends random bytes behind a JPEG or PNG signature as an image error code', async () => {
    const signatures = [Buffer.from([0xff, 0xd8, 0xff]), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])];
    await fc.assert(
      fc.asyncProperty(fc.nat(1), fc.uint8Array({ maxLength: 300 }), async (which, rest) => {
        const result = await gate(Buffer.concat([signatures[which] ?? Buffer.alloc(0), rest]));
        expect(result).not.toBe('stored');
      }),
      { numRuns: 400 },
    );
  });
});
