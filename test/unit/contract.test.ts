import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { failed, formatIssues, parseJob, succeeded, type ParsedJob, type Reference } from '../../src/job/contract.ts';
import { JobError } from '../../src/job/errors.ts';
import { jobJsonSchema } from '../../src/job/json-schema.ts';
import { job, jobBody, jobRecord, withoutField } from './helpers.ts';

const LIMITS = { maxImagesPerJob: 10 } as const;
/** The SHA-256 a staged image names (any 64 lower-case hex digits, for the parser). */
const SHA = 'c0ffee'.padEnd(64, '0');
const NOW_MS = 1_796_040_000_000;
const NOW = NOW_MS / 1000;

// A recognisable stand-in for image bytes: if it appears in an error, image data was echoed.
const IMAGE_DATA = Buffer.from('SECRET-PIXELS '.repeat(20)).toString('base64');

function failure(result: ParsedJob): Extract<ParsedJob, { ok: false }> {
  if (result.ok) throw new Error(`expected a failure, got the job ${JSON.stringify(result.job)}`);
  return result;
}

describe('parseJob: valid jobs', () => {
  it('reads an inline and a staged image in order', () => {
    // Prepare
    const body = jobBody({ images: [{ data: IMAGE_DATA }, { s3: { bucket: 'staging', key: 'incoming/j/1', sha256: SHA } }] });

    // Act
    const result = parseJob(body, LIMITS);

    // Assess
    expect(result).toEqual({
      ok: true,
      job: {
        version: 1,
        jobId: 'job-0001',
        userId: 'alice',
        images: [
          { kind: 'inline', data: IMAGE_DATA },
          { kind: 's3', bucket: 'staging', key: 'incoming/j/1', sha256: SHA },
        ],
      },
    });
  });

  it('normalises the user id', () => {
    // Act
    const result = parseJob(jobBody({ userId: '  Alice@Example.COM\u3000' }), LIMITS);

    // Assess
    expect(result.ok && result.job.userId).toBe('alice@example.com');
  });

  it('ignores unknown fields at the top level and inside images', () => {
    // Prepare
    const body = jobBody({
      priority: 'high',
      trace: { id: 'abc' },
      images: [
        { data: IMAGE_DATA, contentType: 'image/gif', name: 'me.jpg' },
        { s3: { bucket: 'staging', key: 'k', sha256: SHA, region: 'eu-west-1', versionId: '3' }, note: 'x' },
      ],
    });

    // Act
    const result = parseJob(body, LIMITS);

    // Assess: parsed, and the extras are not carried into the job.
    expect(result).toEqual({
      ok: true,
      job: {
        version: 1,
        jobId: 'job-0001',
        userId: 'alice',
        images: [
          { kind: 'inline', data: IMAGE_DATA },
          { kind: 's3', bucket: 'staging', key: 'k', sha256: SHA },
        ],
      },
    });
  });

  it('accepts version written as 1.0', () => {
    // Prepare
    const body = jobBody().replace('"version":1', '"version":1.0');

    // Act
    const result = parseJob(body, LIMITS);

    // Assess
    expect(body).toContain('"version":1.0');
    expect(result.ok).toBe(true);
  });

  it.each([
    ['one character', 'j'],
    ['128 characters', 'J'.repeat(128)],
    ['every allowed character', 'AZaz09._:-'],
    ['a UUID', '6f1c1c1e-8d3b-4d2a-9d6e-2f0c3b1a7e55'],
  ])('accepts a jobId of %s', (_name, jobId) => {
    // Act
    const result = parseJob(jobBody({ jobId }), LIMITS);

    // Assess
    expect(result.ok && result.job.jobId).toBe(jobId);
  });

  it('accepts exactly maxImagesPerJob images', () => {
    // Prepare
    const images = Array.from({ length: 3 }, () => ({ data: IMAGE_DATA }));

    // Act
    const result = parseJob(jobBody({ images }), { maxImagesPerJob: 3 });

    // Assess
    expect(result.ok && result.job.images).toHaveLength(3);
  });
});

describe('parseJob: INVALID_MESSAGE', () => {
  it.each([['', ''], ['plain text', 'hello'], ['truncated JSON', '{"version":1,'], ['a NUL', '\u0000']])(
    'refuses a body that is not JSON (%s), with no ids',
    (_name, body) => {
      // Act
      const result = failure(parseJob(body, LIMITS));

      // Assess
      expect(result.error).toBeInstanceOf(JobError);
      expect(result.error.code).toBe('INVALID_MESSAGE');
      expect(result.error.message).toBe('the message body is not valid JSON');
      expect(result.jobId).toBeNull();
      expect(result.userId).toBeNull();
    },
  );

  it.each([['an array', '[{"version":1}]'], ['a string', '"job"'], ['a number', '1'], ['null', 'null'], ['true', 'true']])(
    'refuses JSON that is not an object (%s), with no ids',
    (_name, body) => {
      // Act
      const result = failure(parseJob(body, LIMITS));

      // Assess
      expect(result.error.code).toBe('INVALID_MESSAGE');
      expect(result.error.message).toBe('the message body must be a JSON object');
      expect(result.jobId).toBeNull();
      expect(result.userId).toBeNull();
    },
  );

  it('refuses a missing version as INVALID_MESSAGE, reporting the valid ids', () => {
    // Act
    const result = failure(parseJob(JSON.stringify(withoutField(jobRecord(), 'version')), LIMITS));

    // Assess
    expect(result.error.code).toBe('INVALID_MESSAGE');
    expect(result.error.message).toBe('version is required');
    expect(result.jobId).toBe('job-0001');
    expect(result.userId).toBe('alice');
  });

  it.each([
    ['missing', undefined],
    ['a number', 42],
    ['empty', ''],
    ['129 characters', 'j'.repeat(129)],
    ['a space', 'job 1'],
    ['a slash', 'job/1'],
    ['a non-ASCII letter', 'jöb'],
    ['null', null],
  ])('refuses a jobId that is %s, naming jobId', (_name, jobId) => {
    // Prepare
    const record = jobId === undefined ? withoutField(jobRecord(), 'jobId') : jobRecord({ jobId });

    // Act
    const result = failure(parseJob(JSON.stringify(record), LIMITS));

    // Assess
    expect(result.error.code).toBe('INVALID_MESSAGE');
    expect(result.error.message).toMatch(/^jobId /);
    expect(result.jobId).toBeNull();
    expect(result.userId).toBe('alice');
  });

  it.each([
    ['missing', undefined],
    ['a number', 7],
    ['an object', { id: 'alice' }],
    ['null', null],
  ])('refuses a userId that is %s as INVALID_MESSAGE, naming userId', (_name, userId) => {
    // Prepare
    const record = userId === undefined ? withoutField(jobRecord(), 'userId') : jobRecord({ userId });

    // Act
    const result = failure(parseJob(JSON.stringify(record), LIMITS));

    // Assess
    expect(result.error.code).toBe('INVALID_MESSAGE');
    expect(result.error.message).toBe('userId must be a string');
    expect(result.jobId).toBe('job-0001');
    expect(result.userId).toBeNull();
  });

  it.each([
    ['missing', undefined, 'images must be an array'],
    ['a string', IMAGE_DATA, 'images must be an array'],
    ['an object', { data: IMAGE_DATA }, 'images must be an array'],
    ['empty', [], 'images must not be empty'],
  ])('refuses images that are %s', (_name, images, message) => {
    // Prepare
    const record = images === undefined ? withoutField(jobRecord(), 'images') : jobRecord({ images });

    // Act
    const result = failure(parseJob(JSON.stringify(record), LIMITS));

    // Assess
    expect(result.error.code).toBe('INVALID_MESSAGE');
    expect(result.error.message).toBe(message);
    expect(result.jobId).toBe('job-0001');
    expect(result.userId).toBe('alice');
  });

  it('refuses an image with both data and s3, naming it', () => {
    // Prepare
    const images = [{ data: IMAGE_DATA }, { data: IMAGE_DATA, s3: { bucket: 'staging', key: 'k' } }];

    // Act
    const result = failure(parseJob(jobBody({ images }), LIMITS));

    // Assess
    expect(result.error.code).toBe('INVALID_MESSAGE');
    expect(result.error.message).toBe('images[1]: must have either data or s3, not both');
  });

  it.each([
    ['empty', {}],
    ['null', null],
    ['a number', 5],
    ['a string', IMAGE_DATA],
    ['an array', [{ data: IMAGE_DATA }]],
    ['data that is not a string', { data: 12345 }],
    ['s3 that is not an object', { s3: 's3://staging/k' }],
    ['s3 without a key', { s3: { bucket: 'staging' } }],
    ['a misspelt field', { Data: IMAGE_DATA }],
  ])('refuses an image that is %s, naming images[1]', (_name, image) => {
    // Prepare
    const images = [{ data: IMAGE_DATA }, image];

    // Act
    const result = failure(parseJob(jobBody({ images }), LIMITS));

    // Assess
    expect(result.error.code).toBe('INVALID_MESSAGE');
    expect(result.error.message).toMatch(/^images\[1\]/);
    expect(result.jobId).toBe('job-0001');
    expect(result.userId).toBe('alice');
  });

  it.each([
    ['empty', {}],
    ['a misspelt field', { Data: IMAGE_DATA }],
    ['a URL', { url: 'https://example.com/face.jpg' }],
  ])('tells an image that is %s, with neither data nor s3, the two shapes it may take', (_name, image) => {
    // Prepare
    const images = [image];

    // Act
    const result = failure(parseJob(jobBody({ images }), LIMITS));

    // Assess
    expect(result.error).toMatchObject({
      code: 'INVALID_MESSAGE',
      message: 'images[0]: must be {"data": "<base64>"} or {"s3": {"bucket": "...", "key": "...", "sha256": "..."}}',
    });
  });

  it.each([
    ['an empty bucket', { bucket: '', key: 'k', sha256: SHA }, 'images[0].s3.bucket: must not be empty'],
    ['an empty key', { bucket: 'staging', key: '', sha256: SHA }, 'images[0].s3.key: must not be empty'],
    ['a key over 1024 characters', { bucket: 'staging', key: 'k'.repeat(1025), sha256: SHA }, 'images[0].s3.key: must be at most 1024 characters'],
    ['no sha256', { bucket: 'staging', key: 'k' }, 'images[0].s3.sha256: is required: the SHA-256 of the staged object, 64 lower-case hex digits'],
    ['a sha256 that is not a string', { bucket: 'staging', key: 'k', sha256: 42 }, 'images[0].s3.sha256: is required: the SHA-256 of the staged object, 64 lower-case hex digits'],
    ['an upper-case sha256', { bucket: 'staging', key: 'k', sha256: SHA.toUpperCase() }, 'images[0].s3.sha256: must be 64 lower-case hex digits (the SHA-256 of the staged object)'],
    ['a short sha256', { bucket: 'staging', key: 'k', sha256: SHA.slice(1) }, 'images[0].s3.sha256: must be 64 lower-case hex digits (the SHA-256 of the staged object)'],
    ['a base64 sha256', { bucket: 'staging', key: 'k', sha256: Buffer.from(SHA, 'hex').toString('base64') }, 'images[0].s3.sha256: must be 64 lower-case hex digits (the SHA-256 of the staged object)'],
  ])('says exactly what is wrong with a staged image with %s', (_name, s3, message) => {
    // Act
    const result = failure(parseJob(jobBody({ images: [{ s3 }] }), LIMITS));

    // Assess
    expect(result.error.code).toBe('INVALID_MESSAGE');
    expect(result.error.message).toBe(message);
  });

  it('reports every schema problem in one line', () => {
    // Prepare
    const record = { ...withoutField(jobRecord(), 'jobId'), images: [] };

    // Act
    const result = failure(parseJob(JSON.stringify(record), LIMITS));

    // Assess
    expect(result.error.message).toBe('jobId must be a string; images must not be empty');
  });
});

describe('parseJob: UNSUPPORTED_VERSION', () => {
  it.each([
    ['2', 2],
    ['"1" (a string)', '1'],
    ['null', null],
    ['0', 0],
    ['1.5', 1.5],
    ['true', true],
  ])('refuses version %s, saying which version was sent', (_name, version) => {
    // Act
    const result = failure(parseJob(jobBody({ version }), LIMITS));

    // Assess
    expect(result.error.code).toBe('UNSUPPORTED_VERSION');
    expect(result.error.message).toBe(`version ${JSON.stringify(version)} is not supported (this worker reads version 1)`);
    expect(result.jobId).toBe('job-0001');
    expect(result.userId).toBe('alice');
  });

  it('keeps a long version value short in the message', () => {
    // Act
    const result = failure(parseJob(jobBody({ version: IMAGE_DATA }), LIMITS));

    // Assess
    expect(result.error.code).toBe('UNSUPPORTED_VERSION');
    expect(result.error.message).not.toContain(IMAGE_DATA);
    expect(result.error.message.length).toBeLessThan(120);
  });
});

describe('parseJob: INVALID_USER_ID', () => {
  it.each([
    ['../x'],
    ['a/b'],
    ['a..b'],
    ['.a'],
    [''],
    ['   '],
    ['\u212Aate'],
    ['\u0430lice'],
    ['a'.repeat(129)],
  ])('refuses userId %j with the reason, reporting the jobId', (userId) => {
    // Act
    const result = failure(parseJob(jobBody({ userId }), LIMITS));

    // Assess
    expect(result.error.code).toBe('INVALID_USER_ID');
    expect(result.error.message).toMatch(/^userId /);
    expect(result.jobId).toBe('job-0001');
    expect(result.userId).toBeNull();
  });

  it('reports neither id when both are invalid', () => {
    // Act
    const result = failure(parseJob(jobBody({ jobId: 'bad id', userId: '../etc' }), LIMITS));

    // Assess
    expect(result.jobId).toBeNull();
    expect(result.userId).toBeNull();
  });
});

describe('parseJob: TOO_MANY_IMAGES', () => {
  it('refuses more than maxImagesPerJob images, saying both numbers', () => {
    // Prepare
    const images = Array.from({ length: 11 }, () => ({ data: IMAGE_DATA }));

    // Act
    const result = failure(parseJob(jobBody({ images }), LIMITS));

    // Assess
    expect(result.error.code).toBe('TOO_MANY_IMAGES');
    expect(result.error.message).toBe('a job may carry at most 10 images (this one has 11)');
    expect(result.jobId).toBe('job-0001');
    expect(result.userId).toBe('alice');
  });

  it('applies the limit it is given', () => {
    // Act
    const result = failure(parseJob(jobBody({ images: [{ data: IMAGE_DATA }, { data: IMAGE_DATA }] }), { maxImagesPerJob: 1 }));

    // Assess
    expect(result.error.code).toBe('TOO_MANY_IMAGES');
  });
});

describe('parseJob: failure messages never echo image data', () => {
  it.each([
    ['a bad user id', { userId: '../x' }],
    ['an unsupported version', { version: 2 }],
    ['a bad jobId', { jobId: 'a b' }],
    ['an image with both data and s3', { images: [{ data: IMAGE_DATA, s3: { bucket: 'b', key: 'k' } }] }],
    ['an image with a bad s3', { images: [{ data: IMAGE_DATA }, { s3: { bucket: '', key: 'k' }, data2: IMAGE_DATA }] }],
    ['too many images', { images: Array.from({ length: 11 }, () => ({ data: IMAGE_DATA })) }],
    ['images given as a string', { images: IMAGE_DATA }],
    ['images given as an object', { images: { data: IMAGE_DATA } }],
    ['an image given as a bare string', { images: [IMAGE_DATA] }],
  ])('for %s', (_name, overrides) => {
    // Act
    const result = failure(parseJob(jobBody(overrides), LIMITS));

    // Assess
    expect(JSON.stringify(result)).not.toContain(IMAGE_DATA.slice(0, 16));
    expect(result.error.message).not.toContain(IMAGE_DATA.slice(0, 16));
  });
});

describe('formatIssues', () => {
  const schema = z.object({
    jobId: z.string({ error: 'jobId must be a string' }),
    images: z.array(z.object({ s3: z.object({ key: z.string().min(1, { error: 'must not be empty' }) }) })),
  });

  it('renders paths as images[1].s3.key and joins issues with "; "', () => {
    // Prepare
    const parsed = schema.safeParse({ jobId: 1, images: [{ s3: { key: 'k' } }, { s3: { key: '' } }] });

    // Act
    const line = formatIssues(parsed.error?.issues ?? []);

    // Assess
    expect(line).toBe('jobId must be a string; images[1].s3.key: must not be empty');
  });

  it('renders an issue without a path as its message alone', () => {
    // Prepare
    const parsed = z.string({ error: 'must be text' }).safeParse(5);

    // Act
    const line = formatIssues(parsed.error?.issues ?? []);

    // Assess
    expect(line).toBe('must be text');
  });

  it('renders a path that starts at an index without a leading dot before the field after it', () => {
    // Prepare
    const parsed = z.array(z.object({ key: z.string({ error: 'must be text' }) })).safeParse([{ key: 'k' }, { key: 5 }]);

    // Act
    const line = formatIssues(parsed.error?.issues ?? []);

    // Assess
    expect(line).toBe('[1].key: must be text');
  });

  it('renders no issues as an empty line', () => {
    // Act
    const line = formatIssues([]);

    // Assess
    expect(line).toBe('');
  });
});

describe('outcomes', () => {
  const reference: Reference = {
    key: 'users/alice/ref_0123456789ab.jpg',
    sha256: '0123456789ab'.padEnd(64, '0'),
    contentType: 'image/jpeg',
    bytes: 1234,
  };

  it('succeeded: carries the job ids, the message id and the references', () => {
    // Prepare
    const theJob = job([{ kind: 'inline', data: IMAGE_DATA }], { jobId: 'job-7', userId: 'Bob' });

    // Act
    const outcome = succeeded(theJob, 'msg-7', [reference]);

    // Assess
    expect(outcome).toEqual({
      version: 1,
      jobId: 'job-7',
      userId: 'bob',
      messageId: 'msg-7',
      status: 'succeeded',
      references: [reference],
    });
    expect(JSON.stringify(outcome)).not.toContain(IMAGE_DATA);
  });

  it('failed: carries only the code and message of the error', () => {
    // Prepare
    const error = new JobError('INVALID_IMAGE', 'images[0] is not a JPEG or PNG image', { cause: new Error('inner') });

    // Act
    const outcome = failed({ jobId: 'job-8', userId: null }, 'msg-8', error);

    // Assess
    expect(outcome).toEqual({
      version: 1,
      jobId: 'job-8',
      userId: null,
      messageId: 'msg-8',
      status: 'failed',
      error: { code: 'INVALID_IMAGE', message: 'images[0] is not a JPEG or PNG image' },
    });
    expect(JSON.parse(JSON.stringify(outcome))).toEqual(outcome);
  });

  it('failed: lists the references the job had stored before it failed', () => {
    // Prepare
    const error = new JobError('INVALID_IMAGE', 'images[1] is not a JPEG or PNG image');

    // Act
    const outcome = failed({ jobId: 'job-9', userId: 'alice' }, 'msg-9', error, [reference]);

    // Assess
    expect(outcome).toEqual({
      version: 1,
      jobId: 'job-9',
      userId: 'alice',
      messageId: 'msg-9',
      status: 'failed',
      error: { code: 'INVALID_IMAGE', message: 'images[1] is not a JPEG or PNG image' },
      references: [reference],
    });
  });

  it('failed: has no references field when nothing was stored', () => {
    // Act
    const outcome = failed({ jobId: 'job-9', userId: 'alice' }, 'msg-9', new JobError('INVALID_IMAGE', 'bad'), []);

    // Assess
    expect('references' in outcome).toBe(false);
  });
});

describe('parseJob: issuedAt', () => {
  const at = (issuedAt: unknown, limits: Parameters<typeof parseJob>[1] = LIMITS) => parseJob(jobBody({ issuedAt }), limits, NOW_MS);

  it('carries issuedAt into the job', () => {
    // Act
    const result = at(NOW - 60);

    // Assess
    expect(result).toMatchObject({ ok: true, job: { issuedAt: NOW - 60 } });
  });

  it('is optional without a signing key, and absent from the job then', () => {
    // Act
    const result = parseJob(jobBody(), LIMITS, NOW_MS);

    // Assess
    expect(result.ok && 'issuedAt' in result.job).toBe(false);
  });

  it('is required with a signing key (requireIssuedAt)', () => {
    // Act
    const result = failure(parseJob(jobBody(), { ...LIMITS, requireIssuedAt: true }, NOW_MS));

    // Assess
    expect(result.error).toMatchObject({
      code: 'INVALID_MESSAGE',
      message: 'issuedAt is required: signed jobs carry the time they were built, in seconds since the Unix epoch',
    });
    expect(result.jobId).toBe('job-0001');
  });

  it.each([
    ['a fraction', 1_796_039_000.5, 'issuedAt must be a whole number of seconds since the Unix epoch (got 1796039000.5)'],
    ['a string', '1796039000', 'issuedAt must be a whole number of seconds since the Unix epoch (got "1796039000")'],
    ['negative', -1, 'issuedAt must be a whole number of seconds since the Unix epoch (got -1)'],
    ['beyond a safe integer', 2 ** 53, 'issuedAt must be a whole number of seconds since the Unix epoch (got 9007199254740992)'],
    ['huge', 1e308, 'issuedAt must be a whole number of seconds since the Unix epoch (got 1e+308)'],
    ['true', true, 'issuedAt must be a whole number of seconds since the Unix epoch (got true)'],
    ['null', null, 'issuedAt must be a whole number of seconds since the Unix epoch (got null)'],
    ['an array', [1_796_039_000], 'issuedAt must be a whole number of seconds since the Unix epoch (got an array)'],
    ['an object', { seconds: 1_796_039_000 }, 'issuedAt must be a whole number of seconds since the Unix epoch (got an object)'],
    ['a string of 40 characters (quoted whole)', 'x'.repeat(40), `issuedAt must be a whole number of seconds since the Unix epoch (got "${'x'.repeat(40)}")`],
    ['a string of 41 characters (cut at 40)', 'x'.repeat(41), `issuedAt must be a whole number of seconds since the Unix epoch (got "${'x'.repeat(40)}…")`],
    ['in milliseconds (far in the future)', NOW_MS, `issuedAt is ${NOW_MS - NOW} s ahead of the worker's clock (at most 300 s of clock skew is allowed)`],
  ])('refuses an issuedAt that is %s as INVALID_MESSAGE', (_, value, message) => {
    // Act
    const result = failure(at(value));

    // Assess
    expect(result.error).toMatchObject({ code: 'INVALID_MESSAGE', message });
  });

  it('allows 300 s of clock skew and no more', () => {
    // Assess
    expect(at(NOW + 300).ok).toBe(true);
    expect(failure(at(NOW + 301)).error).toMatchObject({
      code: 'INVALID_MESSAGE',
      message: "issuedAt is 301 s ahead of the worker's clock (at most 300 s of clock skew is allowed)",
    });
  });

  it('expires a job older than the maximum age, and keeps its ids for the outcome', () => {
    // Prepare
    const limits = { ...LIMITS, maxJobAgeSeconds: 3600 };

    // Act
    const atLimit = at(NOW - 3600, limits);
    const expired = failure(at(NOW - 3601, limits));

    // Assess
    expect(atLimit.ok).toBe(true);
    expect(expired).toMatchObject({ jobId: 'job-0001', userId: 'alice' });
    expect(expired.error).toMatchObject({
      code: 'JOB_EXPIRED',
      message: 'the job was issued 3601 s ago; jobs expire after 3600 s (SIGNED_JOB_MAX_AGE_SECONDS): issue it again',
    });
  });

  it('expires after 14 days by default', () => {
    // Assess
    expect(at(NOW - 1_209_600).ok).toBe(true);
    expect(failure(at(NOW - 1_209_601)).error.code).toBe('JOB_EXPIRED');
  });

  it('checks an issuedAt that is present even without a signing key', () => {
    // Assess
    expect(failure(at(0)).error.code).toBe('JOB_EXPIRED');
  });
});

describe('parseJob: bodies built to break a parser', () => {
  const deep = (depth: number, leaf = '1') => `${'['.repeat(depth)}${leaf}${']'.repeat(depth)}`;

  it('reads a version of 300,000 nested arrays as unsupported, without overflowing the stack', () => {
    // Act
    const result = failure(parseJob(`{"version":${deep(300_000)}}`, LIMITS));

    // Assess
    expect(result.error).toMatchObject({ code: 'UNSUPPORTED_VERSION', message: 'version an array is not supported (this worker reads version 1)' });
  });

  // Built as text: JSON.stringify itself would overflow on such values.
  const valid = '"version":1,"jobId":"job-0001","userId":"alice","images":[{"data":"AAAA"}]';
  it.each([
    ['jobId', (d: string) => `{${valid},"jobId":${d}}`],
    ['userId', (d: string) => `{${valid},"userId":${d}}`],
    ['images', (d: string) => `{${valid},"images":${d}}`],
    ['an image', (d: string) => `{${valid},"images":[${d}]}`],
    ['a staged image', (d: string) => `{${valid},"images":[{"s3":${d}}]}`],
    ['issuedAt', (d: string) => `{${valid},"issuedAt":${d}}`],
  ])('refuses deep nesting in %s as INVALID_MESSAGE', (_, bodyWith) => {
    // Act
    const result = failure(parseJob(bodyWith(deep(300_000)), LIMITS));

    // Assess
    expect(result.error.code).toBe('INVALID_MESSAGE');
    expect(result.error.message.length).toBeLessThan(300);
  });

  it('quotes at most 40 characters of an unsupported version', () => {
    // Act
    const result = failure(parseJob(JSON.stringify({ version: 'v'.repeat(100_000) }), LIMITS));

    // Assess
    expect(result.error.message).toBe(`version "${'v'.repeat(40)}…" is not supported (this worker reads version 1)`);
  });
});

describe('jobJsonSchema', () => {
  it('publishes the contract as a draft 2020-12 schema with a stable $id and the required fields', () => {
    // Act
    const schema = jobJsonSchema();

    // Assess
    expect(schema).toMatchObject({
      $id: 'urn:enrollment-worker:job:v1',
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      properties: { version: { const: 1 } },
    });
    expect(schema.required).toEqual(expect.arrayContaining(['version', 'jobId', 'userId', 'images']));
    expect(schema.required).not.toContain('issuedAt');
  });
});
