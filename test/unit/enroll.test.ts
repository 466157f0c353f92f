import { beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { enroll, FACE_PREVIEW_MAX_DIMENSION, stageClock, storedReferencesOf, type EnrollmentDeps, type EnrollmentRules, type FaceCheck } from '../../src/enroll/enroll.ts';
import type { MemoryBudget } from '../../src/enroll/memory.ts';
import { imageNormaliser, type ImageNormaliser } from '../../src/image/normalise.ts';
import { referenceKey, sha256Of, type PutResult, type ReferenceObject } from '../../src/enroll/references.ts';
import { JobError } from '../../src/job/errors.ts';
import { jpegImage, pngImage } from '../support/images.ts';
import { inline, job, rejectionOf, settle as settleMicrotasks, staged, userId } from './helpers.ts';

const RULES: EnrollmentRules = {
  stagingBucket: 'enrollment-staging',
  stagingPrefix: 'incoming/',
  maxImageBytes: 1024 * 1024,
  maxImagePixels: 1_000_000,
  minImageDimension: 8,
  maxReferenceDimension: undefined,
};
const realNormaliser = imageNormaliser({ parallel: 2 });

let jpeg: Buffer;
let otherJpeg: Buffer;
let png: Buffer;
const gif = Buffer.concat([Buffer.from('GIF89a'), Buffer.alloc(64, 1)]);

beforeAll(async () => {
  [jpeg, otherJpeg, png] = await Promise.all([
    jpegImage({ width: 40, height: 30, seed: 11 }),
    jpegImage({ width: 40, height: 30, seed: 12 }),
    pngImage({ width: 20, height: 10, seed: 13 }),
  ]);
});

/** In-memory S3: staged objects to read, and a record of reference writes. */
function fakeStore(options: { staged?: Record<string, Buffer>; existing?: readonly string[]; readError?: unknown } = {}) {
  const writes: ReferenceObject[] = [];
  const reads: string[] = [];
  const decoded: string[] = [];
  const normalise: ImageNormaliser = async (bytes, info, label, limits) => {
    decoded.push(label);
    return realNormaliser(bytes, info, label, limits);
  };
  const existing = new Set(options.existing ?? []);
  const deps: EnrollmentDeps = {
    rules: RULES,
    readStaged: async (bucket, key) => {
      reads.push(`${bucket}/${key}`);
      if (options.readError !== undefined) throw options.readError;
      const bytes = options.staged?.[key];
      if (!bytes) throw new JobError('SOURCE_NOT_FOUND', `s3://${bucket}/${key} does not exist`);
      return bytes;
    },
    normalise,
    writeReference: async (object): Promise<PutResult> => {
      writes.push(object);
      if (existing.has(object.key)) return 'existed';
      existing.add(object.key);
      return 'created';
    },
  };
  return { deps, writes, reads, decoded };
}

const keyOf = (bytes: Buffer, ext: 'jpg' | 'png', user = 'alice') => referenceKey(userId(user), sha256Of(bytes).toString('hex'), ext);

describe('enroll: success', () => {
  it('writes one reference per image, inline and staged', async () => {
    // Prepare
    const store = fakeStore({ staged: { 'incoming/job-0001/1': png } });
    const theJob = job([inline(jpeg), staged('enrollment-staging', 'incoming/job-0001/1', png)]);

    // Act
    const enrollment = await enroll(theJob, store.deps);

    // Assess
    const [jpegWrite, pngWrite] = store.writes;
    expect(enrollment).toEqual({
      references: [
        { key: keyOf(jpeg, 'jpg'), sha256: sha256Of(jpeg).toString('hex'), contentType: 'image/jpeg', bytes: jpegWrite?.body.length },
        { key: keyOf(png, 'png'), sha256: sha256Of(png).toString('hex'), contentType: 'image/png', bytes: pngWrite?.body.length },
      ],
      created: 2,
      // The test images carry no metadata and need no turn: both stored as received.
      paths: ['rebuilt', 'rebuilt'],
    });
    expect(store.reads).toEqual(['enrollment-staging/incoming/job-0001/1']);
  });

  it('passes the normalised bytes, their SHA-256, the content type, the SHA-256 as received and the job id to the writer', async () => {
    // Prepare
    const store = fakeStore();

    // Act
    await enroll(job([inline(png)], { jobId: 'job-42', userId: 'Carol' }), store.deps);

    // Assess
    expect(store.writes).toHaveLength(1);
    const [write] = store.writes;
    expect(write?.key).toBe(keyOf(png, 'png', 'carol'));
    const stored = await sharp(write?.body).metadata();
    expect({ format: stored.format, width: stored.width, height: stored.height }).toEqual({ format: 'png', width: 20, height: 10 });
    expect(write?.storedSha256.equals(sha256Of(write.body))).toBe(true);
    expect(write?.contentType).toBe('image/png');
    expect(write?.sha256.equals(sha256Of(png))).toBe(true);
    expect(write?.jobId).toBe('job-42');
  });

  it('stores the same photo twice in one job as one reference', async () => {
    // Prepare
    const store = fakeStore({ staged: { 'incoming/j/2': Buffer.from(jpeg) } });
    const theJob = job([inline(jpeg), inline(otherJpeg), staged('enrollment-staging', 'incoming/j/2', jpeg), inline(jpeg)]);

    // Act
    const enrollment = await enroll(theJob, store.deps);

    // Assess
    expect(enrollment.references.map((r) => r.key)).toEqual([keyOf(jpeg, 'jpg'), keyOf(otherJpeg, 'jpg')]);
    expect(store.writes.map((w) => w.key)).toEqual([keyOf(jpeg, 'jpg'), keyOf(otherJpeg, 'jpg')]);
    expect(enrollment.created).toBe(2);
    expect(store.decoded).toEqual(['images[0]', 'images[1]']);
  });

  it('counts as created only the references this job wrote', async () => {
    // Prepare
    const store = fakeStore({ existing: [keyOf(jpeg, 'jpg')] });

    // Act
    const enrollment = await enroll(job([inline(jpeg), inline(png)]), store.deps);

    // Assess
    expect(enrollment.references).toHaveLength(2);
    expect(enrollment.created).toBe(1);
  });

  it('counts zero created when every reference already existed', async () => {
    // Prepare
    const store = fakeStore({ existing: [keyOf(jpeg, 'jpg'), keyOf(png, 'png')] });

    // Act
    const enrollment = await enroll(job([inline(jpeg), inline(png)]), store.deps);

    // Assess
    expect(enrollment.references).toHaveLength(2);
    expect(enrollment.created).toBe(0);
  });
});

describe('enroll: every image is checked before anything is written', () => {
  it.each([
    ['first', 0],
    ['middle', 1],
    ['last', 2],
  ])('a bad %s image fails the job with no writes', async (_name, badIndex) => {
    // Prepare
    const images = [inline(jpeg), inline(png), inline(otherJpeg)];
    images[badIndex] = inline(gif);
    const store = fakeStore();

    // Act
    const error = await rejectionOf(() => enroll(job(images), store.deps));

    // Assess
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: `images[${badIndex}] is not a JPEG or PNG image` });
    expect(store.writes).toEqual([]);
  });

  it('an image that is not base64 fails the job with no writes', async () => {
    // Prepare
    const store = fakeStore();

    // Act
    const error = await rejectionOf(() => enroll(job([inline(jpeg), { kind: 'inline', data: 'not base64!' }]), store.deps));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[1] is not valid base64' });
    expect(store.writes).toEqual([]);
  });

  it('an oversize staged image fails the job with IMAGE_TOO_LARGE and no writes', async () => {
    // Prepare
    const big = Buffer.concat([jpeg, Buffer.alloc(RULES.maxImageBytes)]);
    const store = fakeStore({ staged: { 'incoming/big': big } });

    // Act
    const error = await rejectionOf(() => enroll(job([inline(png), staged('enrollment-staging', 'incoming/big', big)]), store.deps));

    // Assess
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    expect((error as JobError).message).toMatch(/^images\[1\] /);
    expect(store.writes).toEqual([]);
  });

  it('an inline image one byte over the limit fails the job with IMAGE_TOO_LARGE and no writes', async () => {
    // Prepare
    const store = fakeStore();
    const deps = { ...store.deps, rules: { ...RULES, maxImageBytes: jpeg.length - 1 } };

    // Act
    const error = await rejectionOf(() => enroll(job([inline(jpeg)]), deps));

    // Assess
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    expect(store.writes).toEqual([]);
  });

  it('a source outside the staging area fails the job with no reads and no writes', async () => {
    // Prepare
    const store = fakeStore();

    // Act
    const error = await rejectionOf(() => enroll(job([inline(jpeg), staged('face-references', 'users/bob/ref_0123456789ab.jpg')]), store.deps));

    // Assess
    expect(error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED' });
    expect(store.reads).toEqual([]);
    expect(store.writes).toEqual([]);
  });

  it('a missing staged object fails the job with SOURCE_NOT_FOUND and no writes', async () => {
    // Prepare
    const store = fakeStore();

    // Act
    const error = await rejectionOf(() => enroll(job([inline(jpeg), staged('enrollment-staging', 'incoming/gone')]), store.deps));

    // Assess
    expect(error).toMatchObject({ code: 'SOURCE_NOT_FOUND' });
    expect(store.writes).toEqual([]);
  });

  it('a staged object that is not the one the job names fails with SOURCE_MISMATCH before it is decoded', async () => {
    // Prepare: the job names `jpeg`; someone put `otherJpeg` at the key after the job was signed.
    const store = fakeStore({ staged: { 'incoming/swapped': otherJpeg } });
    const theJob = job([inline(png), staged('enrollment-staging', 'incoming/swapped', jpeg)]);

    // Act
    const error = await rejectionOf(() => enroll(theJob, store.deps));

    // Assess
    const found = sha256Of(otherJpeg).toString('hex');
    const named = sha256Of(jpeg).toString('hex');
    expect(error).toMatchObject({
      code: 'SOURCE_MISMATCH',
      message: `images[1]: the staged object's SHA-256 is ${found}, the job says ${named}`,
    });
    expect(store.decoded).toEqual([]);
    expect(store.writes).toEqual([]);
  });

  it('a transient read failure propagates unchanged, with no writes', async () => {
    // Prepare
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'SlowDown' });
    const store = fakeStore({ readError: throttled });

    // Act
    const error = await rejectionOf(() => enroll(job([inline(jpeg), staged('enrollment-staging', 'incoming/x')]), store.deps));

    // Assess
    expect(error).toBe(throttled);
    expect(store.writes).toEqual([]);
  });
});

describe('enroll: dimensions are checked from the header, before any image is decoded', () => {
  it('an image whose shorter side is under MIN_IMAGE_DIMENSION fails the job with IMAGE_TOO_SMALL, nothing decoded or written', async () => {
    // Prepare
    const store = fakeStore();
    const deps = { ...store.deps, rules: { ...RULES, minImageDimension: 11 } };

    // Act
    const error = await rejectionOf(() => enroll(job([inline(jpeg), inline(png)]), deps));

    // Assess
    expect(error).toMatchObject({
      code: 'IMAGE_TOO_SMALL',
      message: 'images[1] is 20×10 pixels; its shorter side must be at least 11 (MIN_IMAGE_DIMENSION)',
    });
    expect(store.decoded).toEqual([]);
    expect(store.writes).toEqual([]);
  });

  it('an image over MAX_IMAGE_PIXELS fails the job with IMAGE_TOO_LARGE, nothing decoded or written', async () => {
    // Prepare
    const store = fakeStore();
    const deps = { ...store.deps, rules: { ...RULES, maxImagePixels: 40 * 30 - 1 } };

    // Act
    const error = await rejectionOf(() => enroll(job([inline(png), inline(jpeg)]), deps));

    // Assess
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE', message: 'images[1] is 40×30 pixels (1200); the limit is 1199 (MAX_IMAGE_PIXELS)' });
    expect(store.decoded).toEqual([]);
    expect(store.writes).toEqual([]);
  });

  it('a decode failure of one image fails the job with INVALID_IMAGE and no writes', async () => {
    // Prepare: a JPEG with half its scan, then an end-of-image marker (its structure is whole).
    const damaged = Buffer.concat([otherJpeg.subarray(0, Math.floor(otherJpeg.length / 2)), Buffer.from([0xff, 0xd9])]);
    const store = fakeStore();

    // Act
    const error = await rejectionOf(() => enroll(job([inline(jpeg), inline(damaged)]), store.deps));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE' });
    expect((error as JobError).message).toMatch(/^images\[1\] could not be decoded: /);
    expect(store.writes).toEqual([]);
  });
});

describe('storedReferencesOf', () => {
  const SHA = 'ab'.repeat(32);

  it('names an inline image by its bytes and a staged one by its SHA-256 under both extensions, keeping those that exist', async () => {
    // Prepare
    const theJob = job([inline(jpeg), { kind: 's3', bucket: 'enrollment-staging', key: 'incoming/x', sha256: SHA }], { userId: 'Alice' });
    const existing = new Set([keyOf(jpeg, 'jpg'), referenceKey(userId('alice'), SHA, 'png'), 'users/alice/ref_ffffffffffff.jpg']);
    const asked: string[] = [];

    // Act
    const found = await storedReferencesOf(theJob, async (prefix) => {
      asked.push(prefix);
      return existing;
    });

    // Assess
    expect(asked).toEqual(['users/alice/']);
    expect(found).toEqual([
      { key: keyOf(jpeg, 'jpg'), sha256: sha256Of(jpeg).toString('hex'), contentType: 'image/jpeg' },
      { key: referenceKey(userId('alice'), SHA, 'png'), sha256: SHA, contentType: 'image/png' },
    ]);
  });

  it('names a staged image as JPEG when that is what exists', async () => {
    // Prepare
    const theJob = job([{ kind: 's3', bucket: 'enrollment-staging', key: 'incoming/x', sha256: SHA }]);

    // Act
    const found = await storedReferencesOf(theJob, async () => new Set([referenceKey(userId('alice'), SHA, 'jpg')]));

    // Assess
    expect(found).toEqual([{ key: referenceKey(userId('alice'), SHA, 'jpg'), sha256: SHA, contentType: 'image/jpeg' }]);
  });

  it('names the same inline image once, and skips inline data that is not base64 or not an image', async () => {
    // Prepare
    const theJob = job([inline(png), { kind: 'inline', data: '%%%not base64%%%' }, inline(gif), inline(png)]);

    // Act
    const found = await storedReferencesOf(theJob, async () => new Set([keyOf(png, 'png')]));

    // Assess
    expect(found).toEqual([{ key: keyOf(png, 'png'), sha256: sha256Of(png).toString('hex'), contentType: 'image/png' }]);
  });

  it('asks the bucket nothing when no image names a reference', async () => {
    // Prepare
    let asked = false;

    // Act
    const found = await storedReferencesOf(job([inline(gif)]), async () => {
      asked = true;
      return new Set<string>();
    });

    // Assess
    expect(found).toEqual([]);
    expect(asked).toBe(false);
  });

  it('returns nothing when none of the named references exists', async () => {
    // Act
    const found = await storedReferencesOf(job([inline(jpeg)]), async () => new Set(['users/alice/ref_000000000000.jpg']));

    // Assess
    expect(found).toEqual([]);
  });
});

describe('enroll: the face check', () => {
  /** A normaliser that stores the bytes as received, with a preview at `scale` of the stored size. */
  const previewing = (scale: number | undefined): ImageNormaliser => async (bytes, info) => ({
    bytes,
    width: info.width,
    height: info.height,
    path: 'rebuilt',
    ...(scale === undefined ? {} : { preview: { data: Buffer.alloc(3), width: 1, height: 1, channels: 3 as const, scale } }),
  });

  it('asks the detector with the minimum size in preview pixels, and stores the face in stored pixels with its score to 3 places', async () => {
    // Prepare
    const store = fakeStore();
    const asked: unknown[] = [];
    const phases: string[] = [];
    const faceCheck: FaceCheck = {
      minScore: 0.6,
      minSize: 40,
      detect: async (_pixels, options) => {
        asked.push({ minScore: options.minScore, minFaceSize: options.minFaceSize });
        return { faces: [{ x: 10, y: 5, width: 30, height: 30, score: 0.912345 }], ms: 7.4 };
      },
    };

    // Act
    const enrollment = await enroll(job([inline(jpeg), inline(png)]), { ...store.deps, normalise: previewing(0.5), faceCheck, onPhase: (p) => phases.push(p) });

    // Assess
    const face = { x: 20, y: 10, width: 60, height: 60, score: 0.912 };
    expect(asked).toEqual([
      { minScore: 0.6, minFaceSize: 20 },
      { minScore: 0.6, minFaceSize: 20 },
    ]);
    expect(enrollment.references.map((r) => r.face)).toEqual([face, face]);
    expect(enrollment.faceCheckMs).toBe(15);
    expect(store.writes.map((w) => w.metadata)).toEqual([{ face: JSON.stringify(face) }, { face: JSON.stringify(face) }]);
    expect(phases).toEqual(['download', 'decode', 'detect', 'detect', 'write']);
  });

  it('fails the job with the face code, naming the image, and writes nothing', async () => {
    // Prepare
    const store = fakeStore();
    const faceCheck: FaceCheck = { minScore: 0.5, minSize: 10, detect: async () => ({ faces: [], ms: 1 }) };

    // Act
    const error = await rejectionOf(() => enroll(job([inline(jpeg)]), { ...store.deps, normalise: previewing(1), faceCheck }));

    // Assess
    expect(error).toMatchObject({ name: 'JobError', code: 'NO_FACE', message: expect.stringMatching(/^images\[0\] shows no face/) });
    expect(store.writes).toEqual([]);
  });

  it('treats a decode that gave no preview as a bug of ours (a retry), not the job\'s fault', async () => {
    // Prepare
    const store = fakeStore();
    const faceCheck: FaceCheck = { minScore: 0.5, minSize: 10, detect: async () => ({ faces: [], ms: 1 }) };

    // Act
    const error = await rejectionOf(() => enroll(job([inline(jpeg)]), { ...store.deps, normalise: previewing(undefined), faceCheck }));

    // Assess
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(JobError);
    expect((error as Error).message).toBe('images[0]: the decode gave no preview for the face check');
  });

  it('asks the normaliser for a preview only when there is a face check, and reports no faceCheckMs without one', async () => {
    // Prepare
    const store = fakeStore();
    const options: unknown[] = [];
    const normalise: ImageNormaliser = async (bytes, info, label, limits, opts) => {
      options.push(opts?.preview);
      return previewing(1)(bytes, info, label, limits, opts);
    };
    const faceCheck: FaceCheck = { minScore: 0.5, minSize: 1, detect: async () => ({ faces: [{ x: 0, y: 0, width: 5, height: 5, score: 1 }], ms: 0 }) };

    // Act
    const without = await enroll(job([inline(jpeg)]), { ...store.deps, normalise });
    await enroll(job([inline(jpeg)]), { ...store.deps, normalise, faceCheck });

    // Assess
    expect(options).toEqual([undefined, { maxDimension: FACE_PREVIEW_MAX_DIMENSION }]);
    expect(without).not.toHaveProperty('faceCheckMs');
    expect(without.references[0]).not.toHaveProperty('face');
    expect(store.writes[0]).not.toHaveProperty('metadata');
  });
});

describe('enroll: staged images and memory', () => {
  /** A budget that records what was asked of it and released. */
  function budget() {
    const events: string[] = [];
    const memory: MemoryBudget = {
      limit: 1e9,
      held: 0,
      waiting: 0,
      peak: 0,
      acquire: async (bytes: number) => {
        events.push(`acquire ${bytes}`);
        return { bytes, release: () => void events.push(`release ${bytes}`), take: () => expect.unreachable('enroll never splits a grant') };
      },
      tryAcquire: () => expect.unreachable('enroll waits its turn'),
      watch: () => () => {},
    };
    return { memory, events };
  }

  it('admits the staged images in one request sized by their HEADs, and releases it at the end', async () => {
    // Prepare
    const store = fakeStore({ staged: { 'incoming/a': png, 'incoming/b': jpeg } });
    const { memory, events } = budget();
    const sizes: Record<string, number> = { 'incoming/a': png.length, 'incoming/b': RULES.maxImageBytes };

    // Act
    await enroll(job([inline(otherJpeg), staged('enrollment-staging', 'incoming/a', png), staged('enrollment-staging', 'incoming/b', jpeg)]), {
      ...store.deps,
      memory,
      sizeOfStaged: async (_bucket, key) => ({ size: sizes[key], etag: `"${key}"` }),
    });

    // Assess
    const total = png.length + RULES.maxImageBytes;
    expect(events).toEqual([`acquire ${total}`, `release ${total}`]);
  });

  it('holds each read to what its HEAD said: its size and its ETag', async () => {
    // Prepare
    const store = fakeStore({ staged: { 'incoming/a': png } });
    const { memory } = budget();
    const admitted: unknown[] = [];

    // Act
    await enroll(job([inline(jpeg), staged('enrollment-staging', 'incoming/a', png)]), {
      ...store.deps,
      readStaged: (bucket, key, maxBytes, label, signal, facts) => {
        admitted.push(facts);
        return store.deps.readStaged(bucket, key, maxBytes, label, signal, facts);
      },
      memory,
      sizeOfStaged: async () => ({ size: png.length, etag: '"v1"' }),
    });

    // Assess
    expect(admitted).toEqual([{ size: png.length, etag: '"v1"' }]);
  });

  it('refuses a staged image its HEAD says is too large before any memory is asked for or any byte read', async () => {
    // Prepare
    const store = fakeStore({ staged: { 'incoming/a': png, 'incoming/b': jpeg } });
    const { memory, events } = budget();

    // Act
    const error = await rejectionOf(() =>
      enroll(job([staged('enrollment-staging', 'incoming/a', png), staged('enrollment-staging', 'incoming/b', jpeg)]), {
        ...store.deps,
        memory,
        sizeOfStaged: async (_bucket, key) => ({ size: key === 'incoming/b' ? RULES.maxImageBytes + 1 : png.length, etag: undefined }),
      }),
    );

    // Assess
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE', message: `images[1] is ${RULES.maxImageBytes + 1} bytes; the limit is ${RULES.maxImageBytes}` });
    expect(events).toEqual([]);
    expect(store.reads).toEqual([]);
  });

  it('counts a staged image S3 gave no size for as the most a read may bring', async () => {
    // Prepare
    const store = fakeStore({ staged: { 'incoming/a': png, 'incoming/b': jpeg } });
    const { memory, events } = budget();

    // Act
    await enroll(job([staged('enrollment-staging', 'incoming/a', png), staged('enrollment-staging', 'incoming/b', jpeg)]), {
      ...store.deps,
      memory,
      sizeOfStaged: async (_bucket, key) => ({ size: key === 'incoming/a' ? 300 : undefined, etag: undefined }),
    });

    // Assess
    const total = 300 + RULES.maxImageBytes + 1;
    expect(events).toEqual([`acquire ${total}`, `release ${total}`]);
  });

  it('asks nothing of the budget for a job of inline images only', async () => {
    // Prepare
    const store = fakeStore();
    const { memory, events } = budget();
    let headed = false;

    // Act
    await enroll(job([inline(jpeg)]), {
      ...store.deps,
      memory,
      sizeOfStaged: async () => {
        headed = true;
        return { size: 1, etag: undefined };
      },
    });

    // Assess
    expect(events).toEqual([]);
    expect(headed).toBe(false);
  });

  it('refuses a staged image outside the staging prefix before any HEAD is made', async () => {
    // Prepare
    const store = fakeStore();
    const { memory } = budget();
    let headed = false;

    // Act
    const error = await rejectionOf(() =>
      enroll(job([staged('enrollment-staging', 'elsewhere/a', png)]), {
        ...store.deps,
        memory,
        sizeOfStaged: async () => {
          headed = true;
          return { size: 1, etag: undefined };
        },
      }),
    );

    // Assess
    expect(error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED' });
    expect(headed).toBe(false);
  });

  it("waits for its admission through the job's waitFor", async () => {
    // Prepare
    const store = fakeStore({ staged: { 'incoming/a': png } });
    const { memory } = budget();
    let waited = 0;

    // Act
    await enroll(job([staged('enrollment-staging', 'incoming/a', png)]), {
      ...store.deps,
      memory,
      sizeOfStaged: async () => ({ size: 100, etag: undefined }),
      waitFor: (wait) => {
        waited += 1;
        return wait;
      },
    });

    // Assess
    expect(waited).toBeGreaterThanOrEqual(1);
  });
});

describe('enroll: cancellation by the job', () => {
  it('starts nothing for a job whose signal is already aborted, and rejects with its reason', async () => {
    // Prepare
    const store = fakeStore({ staged: { 'incoming/a': png } });
    const controller = new AbortController();
    const reason = new Error('deadline');
    controller.abort(reason);

    // Act
    const error = await rejectionOf(() =>
      enroll(job([staged('enrollment-staging', 'incoming/a', png)]), {
        ...store.deps,
        signal: controller.signal,
        readStaged: async (_bucket, _key, _maxBytes, _label, signal) => {
          signal?.throwIfAborted();
          return png;
        },
      }),
    );

    // Assess
    expect(error).toBe(reason);
    expect(store.writes).toEqual([]);
  });

  it('passes an abort during the job on to the reads under way', async () => {
    // Prepare
    const store = fakeStore();
    const controller = new AbortController();
    const reason = new Error('shutdown');

    // Act
    const error = await rejectionOf(() =>
      enroll(job([staged('enrollment-staging', 'incoming/a', png)]), {
        ...store.deps,
        signal: controller.signal,
        readStaged: (_bucket, _key, _maxBytes, _label, signal) =>
          new Promise((_resolve, reject) => {
            signal?.addEventListener('abort', () => reject(signal.reason));
            controller.abort(reason);
          }),
      }),
    );

    // Assess
    expect(error).toBe(reason);
  });
});

describe('stageClock: the deadline stands still only while every image of a stage waits', () => {
  it('pauses the job\'s clock from when the last running branch waits until one is let through, and not while one works', async () => {
    // Prepare: a stage of two images; the job's waitFor records when its clock is paused.
    const paused: string[] = [];
    const jobWaitFor = async <T>(wait: Promise<T>): Promise<T> => {
      paused.push('pause');
      try {
        return await wait;
      } finally {
        paused.push('resume');
      }
    };
    const clock = stageClock(jobWaitFor, 2);
    let letFirstThrough!: () => void;
    let letSecondThrough!: () => void;

    // Act
    const first = clock.waitFor(new Promise<void>((r) => (letFirstThrough = r)));
    await settleMicrotasks();
    const whileOneWorks = [...paused];
    const second = clock.waitFor(new Promise<void>((r) => (letSecondThrough = r)));
    await settleMicrotasks();
    const whileBothWait = [...paused];
    letFirstThrough();
    await first;
    await settleMicrotasks();
    const onceOneWorks = [...paused];
    clock.ended();
    await settleMicrotasks();
    const afterItEnded = [...paused];
    letSecondThrough();
    await second;
    await settleMicrotasks();

    // Assess
    expect(whileOneWorks).toEqual([]);
    expect(whileBothWait).toEqual(['pause']);
    expect(onceOneWorks).toEqual(['pause', 'resume']);
    expect(afterItEnded).toEqual(['pause', 'resume', 'pause']);
    expect(paused).toEqual(['pause', 'resume', 'pause', 'resume']);
  });
});

