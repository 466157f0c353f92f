// Property-based tests of the gate between a message and an S3 key: for ANY input, the parser
// returns a valid job or a documented code (never throws), and every key it can lead to is
// `users/<that id>/ref_<12 hex>.(jpg|png)` — never a path outside the user's prefix; and the JSON
// Schema `enrollment-worker schema` prints, read by a real validator (ajv, draft 2020-12), agrees
// with the worker both ways, except where it says it cannot (MAX_IMAGES_PER_JOB, issuedAt's age).
import { posix } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { referenceKey, sha256Of, userPrefix } from '../../src/enroll/references.ts';
import { parseJob } from '../../src/job/contract.ts';
import { JOB_ERROR_CODES, JobError } from '../../src/job/errors.ts';
import { decodeInline } from '../../src/enroll/sources.ts';
import { jobJsonSchema, USER_ID_PATTERN } from '../../src/job/json-schema.ts';
import { signJob, signingKeysFrom, verifyJobSignature } from '../../src/job/signature.ts';
import { normaliseUserId } from '../../src/job/user-id.ts';

const RUNS = { numRuns: 2_000 };
const LIMITS = { maxImagesPerJob: 10 };
const PY_SPACE = [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2028, 0x202f, 0x3000].map((c) =>
  String.fromCodePoint(c),
);

/** Strings that look like user ids, and strings that attack them. */
const userIdLike = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.stringMatching(/^[A-Za-z0-9._@+-]{1,20}$/),
  fc.tuple(fc.constantFrom(...PY_SPACE, ''), fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._@+-]{0,130}$/), fc.constantFrom(...PY_SPACE, '')).map(
    ([a, b, c]) => a + b + c,
  ),
  fc.constantFrom(
    '../admin',
    'alice/../bob',
    'alice/',
    '/etc/passwd',
    '..',
    '.hidden',
    'a..b',
    'alice%2f..%2fbob',
    'alice\\..\\bob',
    '\u212Aelvin',
    'ａｌｉｃｅ',
    'alice\u0000',
    'alice\u200b',
    'İstanbul',
    'ß',
    'users/bob',
    '',
    ' ',
  ),
);

const jsonish: fc.Arbitrary<unknown> = fc.oneof(fc.jsonValue(), fc.anything());

const imageLike = fc.oneof(
  fc.record({ data: fc.oneof(fc.base64String({ maxLength: 40 }), fc.string({ maxLength: 20 }), jsonish) }, { requiredKeys: [] }),
  fc.record({ s3: fc.oneof(fc.record({ bucket: fc.string({ maxLength: 10 }), key: fc.string({ maxLength: 20 }) }), jsonish) }, { requiredKeys: [] }),
  fc.record({ data: fc.base64String({ maxLength: 8 }), s3: fc.record({ bucket: fc.string(), key: fc.string() }) }),
  jsonish,
);

const validImage = fc.oneof(
  fc.record({ data: fc.base64String({ minLength: 4, maxLength: 40 }) }),
  fc.record({
    s3: fc.record({ bucket: fc.stringMatching(/^[a-z0-9.-]{1,12}$/), key: fc.string({ minLength: 1, maxLength: 30 }), sha256: fc.stringMatching(/^[0-9a-f]{64}$/) }),
  }),
);
const NOW = Math.floor(Date.now() / 1000);

/** The validator of the published document (`enrollment-worker schema`): ajv, draft 2020-12, strict. */
const validateJob = new Ajv2020({ strict: true }).compile(jobJsonSchema());

/**
 * What the worker makes of a body as far as the contract goes: the parser, then the one check of
 * image data that the schema also spells out (not empty, padded base64), which the worker makes
 * before it looks at any image byte (INVALID_IMAGE). MAX_IMAGES_PER_JOB is given room.
 */
function contractVerdict(body: string): { ok: true } | { ok: false; error: { code: string; message: string } } {
  const parsed = parseJob(body, { maxImagesPerJob: 1_000 }, NOW * 1000);
  if (!parsed.ok) return parsed;
  for (const [index, image] of parsed.job.images.entries()) {
    if (image.kind !== 'inline') continue;
    try {
      decodeInline(image.data, `images[${index}]`, Number.MAX_SAFE_INTEGER);
    } catch (e: unknown) {
      return { ok: false, error: e instanceof JobError ? e : { code: 'UNEXPECTED', message: String(e) } };
    }
  }
  return { ok: true };
}

/** Job-shaped objects: every field right but the user id, which is anything. */
const nearlyValidJob = fc.record({
  version: fc.constant(1),
  jobId: fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
  userId: userIdLike,
  images: fc.array(validImage, { minLength: 1, maxLength: 12 }),
  // Within the default 14-day window and the 300 s of skew.
  issuedAt: fc.option(fc.integer({ min: NOW - 1_000_000, max: NOW + 200 }), { nil: undefined }),
  extra: fc.option(jsonish, { nil: undefined }),
});

/**
 * Job-shaped objects at the edges of what the schema spells out: image data that is empty or not
 * padded base64, staged names around S3's lengths (in ASCII and in astral characters, which a
 * JSON Schema counts as code points), hashes in the wrong case or length, and issuedAt of the wrong
 * type. issuedAt stays within the worker's window when it is a whole number: its age is the
 * worker's alone (see "cannot know the worker's clock").
 */
const edgeJob = fc.record({
  version: fc.constant(1),
  jobId: fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
  userId: fc.oneof(fc.stringMatching(/^[a-z0-9]{1,8}$/), userIdLike),
  images: fc.array(
    fc.oneof(
      validImage,
      fc.record({ data: fc.oneof(fc.constant(''), fc.string({ maxLength: 12 }), fc.stringMatching(/^[A-Za-z0-9+/]{1,11}={0,2}$/)) }),
      fc.record({
        s3: fc.record({
          bucket: fc.oneof(fc.string({ maxLength: 12 }), fc.string({ minLength: 60, maxLength: 66 }), fc.string({ unit: 'grapheme', minLength: 30, maxLength: 66 })),
          key: fc.oneof(fc.string({ maxLength: 20 }), fc.string({ minLength: 1020, maxLength: 1028 }), fc.string({ unit: 'grapheme', minLength: 510, maxLength: 1028 })),
          sha256: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.stringMatching(/^[0-9a-fA-F]{63,65}$/)),
        }),
      }),
    ),
    { minLength: 1, maxLength: 4 },
  ),
  issuedAt: fc.option(fc.oneof(fc.integer({ min: NOW - 1_000_000, max: NOW + 200 }), fc.constantFrom(-1, 1.5, 2 ** 53, '1700000000')), { nil: undefined }),
});

/** Job-shaped objects with every field sometimes wrong or missing. */
const brokenJob = fc.record(
  {
    version: fc.oneof(fc.constant(1), fc.constant(1), jsonish),
    jobId: fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,130}$/), jsonish),
    userId: fc.oneof(userIdLike, userIdLike, jsonish),
    images: fc.oneof(fc.array(imageLike, { maxLength: 12 }), jsonish),
    extra: jsonish,
  },
  { requiredKeys: [] },
);

const jobLike = fc.oneof({ arbitrary: nearlyValidJob, weight: 3 }, { arbitrary: brokenJob, weight: 2 });

const bodies = fc.oneof(
  jobLike.map((j) => JSON.stringify(j)),
  fc.string({ unit: 'binary', maxLength: 200 }),
  jsonish.map((v) => JSON.stringify(v) ?? 'undefined'),
);

const CODES: readonly string[] = JOB_ERROR_CODES;
const KEY_SHAPE = /^users\/([a-z0-9][a-z0-9._@+-]{0,127})\/ref_[0-9a-f]{12}\.(jpg|png)$/;

function expectInsidePrefix(key: string, userId: string) {
  expect(key).toMatch(KEY_SHAPE);
  expect(KEY_SHAPE.exec(key)?.[1]).toBe(userId);
  // However a reader resolves it, the key stays under users/<id>/.
  expect(posix.normalize(key)).toBe(key);
  expect(posix.normalize(key).startsWith(userPrefix(normaliseUserIdOrThrow(userId)))).toBe(true);
  expect(key.split('/')).toHaveLength(3);
}

function normaliseUserIdOrThrow(id: string) {
  const r = normaliseUserId(id);
  if (!r.ok) throw new Error(`not a user id: ${id}`);
  return r.userId;
}

describe('parseJob, for any input', () => {
  it('never throws, and gives a valid job or a documented code', () => {
    fc.assert(
      fc.property(bodies, (body) => {
        const result = parseJob(body, LIMITS);
        if (result.ok) {
          expect(result.job.images.length).toBeGreaterThanOrEqual(1);
          expect(result.job.images.length).toBeLessThanOrEqual(LIMITS.maxImagesPerJob);
          expect(normaliseUserId(result.job.userId)).toEqual({ ok: true, userId: result.job.userId });
        } else {
          expect(CODES).toContain(result.error.code);
          expect(result.error.message.length).toBeGreaterThan(0);
          // Ids reported with a failure are valid by themselves.
          if (result.userId !== null) expect(normaliseUserId(result.userId)).toEqual({ ok: true, userId: result.userId });
        }
      }),
      RUNS,
    );
  });

  it('leads only to keys users/<that id>/ref_<12 hex>.(jpg|png), whatever the images', () => {
    let valid = 0;
    fc.assert(
      fc.property(jobLike, fc.uint8Array({ maxLength: 64 }), fc.constantFrom('jpg' as const, 'png' as const), (raw, bytes, ext) => {
        const result = parseJob(JSON.stringify(raw), LIMITS);
        if (!result.ok) return;
        valid += 1;
        const key = referenceKey(result.job.userId, sha256Of(Buffer.from(bytes)).toString('hex'), ext);
        expectInsidePrefix(key, result.job.userId);
      }),
      RUNS,
    );
    expect(valid).toBeGreaterThan(RUNS.numRuns / 100);
  });

  it('agrees with the published JSON Schema in both directions, but for the image count', () => {
    // The document `enrollment-worker schema` prints, read by a JSON Schema validator (draft 2020-12),
    // judging the body as the worker reads it (JSON text): what the schema accepts, the worker
    // takes, and what the worker takes, the schema accepts.
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(fc.oneof(jobLike, edgeJob), (raw) => {
        const body = JSON.stringify(raw);
        const schemaSays = validateJob(JSON.parse(body));
        const workerSays = contractVerdict(body);
        if (schemaSays) accepted += 1;
        else refused += 1;
        const why = workerSays.ok ? `the worker takes it; the schema says ${JSON.stringify(validateJob.errors)}` : `the schema accepts it; the worker says ${workerSays.error.code}: ${workerSays.error.message}`;
        expect(workerSays.ok, why).toBe(schemaSays);
      }),
      RUNS,
    );
    // The generator reaches both verdicts often enough for the property to mean something.
    expect(accepted).toBeGreaterThan(RUNS.numRuns / 100);
    expect(refused).toBeGreaterThan(RUNS.numRuns / 100);
  });
});

describe('the published JSON Schema', () => {
  it('is a valid draft 2020-12 schema that a strict validator compiles', () => {
    // Assess
    const ajv = new Ajv2020({ strict: true });
    expect(ajv.validateSchema(jobJsonSchema())).toBe(true);
    expect(jobJsonSchema()).toMatchObject({ $schema: 'https://json-schema.org/draft/2020-12/schema', $id: 'urn:enrollment-worker:job:v1' });
  });

  it('cannot know MAX_IMAGES_PER_JOB: it accepts 11 images, which a worker with the default 10 refuses, and says so', () => {
    // Prepare
    const job = { version: 1, jobId: 'eleven', userId: 'alice', issuedAt: NOW, images: Array.from({ length: 11 }, () => ({ data: 'QUJD' })) };

    // Act
    const schemaSays = validateJob(job);
    const workerSays = parseJob(JSON.stringify(job), { maxImagesPerJob: 10 }, NOW * 1000);

    // Assess
    expect(schemaSays).toBe(true);
    expect(workerSays).toMatchObject({ ok: false, error: { code: 'TOO_MANY_IMAGES' } });
    expect(JSON.stringify(jobJsonSchema())).toContain("1 to the worker's MAX_IMAGES_PER_JOB (default 10) images");
  });

  it("cannot know the worker's clock: it accepts an issuedAt 15 days old or an hour ahead, which the worker refuses, and says so", () => {
    // Prepare
    const at = (issuedAt: number) => ({ version: 1, jobId: 'clock', userId: 'alice', issuedAt, images: [{ data: 'QUJD' }] });
    const old = at(NOW - 15 * 86_400);
    const ahead = at(NOW + 3_600);

    // Act
    const verdicts = [old, ahead].map((job) => ({ schema: validateJob(job), worker: parseJob(JSON.stringify(job), LIMITS, NOW * 1000) }));

    // Assess
    expect(verdicts).toEqual([
      { schema: true, worker: expect.objectContaining({ ok: false, error: expect.objectContaining({ code: 'JOB_EXPIRED' }) }) },
      { schema: true, worker: expect.objectContaining({ ok: false, error: expect.objectContaining({ code: 'INVALID_MESSAGE' }) }) },
    ]);
    expect(JSON.stringify(jobJsonSchema())).toMatch(/SIGNED_JOB_MAX_AGE_SECONDS \(default 1209600\) is JOB_EXPIRED; more than 300 s ahead/);
  });
});

describe('normaliseUserId, for any string', () => {
  it('never throws; an accepted id is lower-case ASCII of the allowed characters, idempotent, with no path in it', () => {
    fc.assert(
      fc.property(userIdLike, (raw) => {
        const result = normaliseUserId(raw);
        if (!result.ok) return;
        expect(result.userId).toMatch(/^[a-z0-9][a-z0-9._@+-]{0,127}$/);
        expect(result.userId).not.toContain('..');
        expect(normaliseUserId(result.userId)).toEqual(result);
        expectInsidePrefix(referenceKey(result.userId, '0'.repeat(64), 'jpg'), result.userId);
      }),
      RUNS,
    );
  });

  it('accepts exactly what the JSON Schema userId pattern matches', () => {
    const pattern = new RegExp(USER_ID_PATTERN);
    fc.assert(
      fc.property(userIdLike, (raw) => {
        expect(pattern.test(raw)).toBe(normaliseUserId(raw).ok);
      }),
      RUNS,
    );
  });
});

describe('referenceKey, for any bytes', () => {
  it('names the first 12 hex of their SHA-256 under the user prefix', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), fc.constantFrom('alice', 'bob@example.com', '0', 'a.b-c_d+e@f'), (bytes, id) => {
        const userId = normaliseUserIdOrThrow(id);
        const hash = sha256Of(Buffer.from(bytes)).toString('hex');
        const key = referenceKey(userId, hash, 'png');
        expect(key).toBe(`users/${userId}/ref_${hash.slice(0, 12)}.png`);
        expectInsidePrefix(key, userId);
      }),
      RUNS,
    );
  });
});

describe('verifyJobSignature, for any input', () => {
  const key = 'property-key-0123456789abcdef0123456789abcdef';
  const keys = signingKeysFrom(key, undefined);

  it('never throws, and accepts only the signature of exactly this body', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.option(fc.record({ DataType: fc.option(fc.string(), { nil: undefined }), StringValue: fc.option(fc.string(), { nil: undefined }) }), { nil: undefined }),
        (body, attribute) => {
          const result = verifyJobSignature(body, attribute === undefined ? undefined : { Signature: attribute }, keys);
          const genuine = attribute?.DataType?.startsWith('String') === true && attribute.StringValue?.toLowerCase() === signJob(body, key);
          expect(result.ok).toBe(genuine);
          if (!result.ok) expect(result.error.code).toBe('INVALID_SIGNATURE');
        },
      ),
      RUNS,
    );
  });

  it('refuses a signature with any one hex digit changed', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), fc.nat(63), fc.nat(15), (body, position, delta) => {
        const signature = signJob(body, key);
        const digits = [...signature.slice(3)];
        const digit = Number.parseInt(digits[position] ?? '0', 16);
        digits[position] = ((digit + 1 + (delta % 15)) % 16).toString(16);
        const forged = `v1=${digits.join('')}`;
        expect(verifyJobSignature(body, { Signature: { DataType: 'String', StringValue: forged } }, keys).ok).toBe(false);
        expect(verifyJobSignature(body, { Signature: { DataType: 'String', StringValue: signature } }, keys)).toEqual({ ok: true, key: 'current' });
      }),
      RUNS,
    );
  });
});
