import { beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { enroll, type EnrollmentDeps, type EnrollmentRules } from '../../src/enroll/enroll.ts';
import { imageNormaliser, type ImageNormaliser } from '../../src/enroll/normalise.ts';
import { referenceKey, sha256Of, type PutResult, type ReferenceObject } from '../../src/enroll/references.ts';
import { JobError } from '../../src/job/errors.ts';
import { jpegImage, pngImage } from '../support/images.ts';
import { inline, job, rejectionOf, staged, userId } from './helpers.ts';

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
      paths: ['lossless', 'lossless'],
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
