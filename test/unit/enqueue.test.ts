import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseJob } from '../../src/job/contract.ts';
import { buildJob, buildSignedJob, checkMessageGroupId, planStaging } from '../../src/producer/enqueue.ts';
import { SQS_MAX_MESSAGE_BYTES } from '../../src/aws/sqs-rules.ts';

// planStaging leaves 4 KiB of the 1 MiB message for the JSON around the images.
const INLINE_BUDGET = SQS_MAX_MESSAGE_BYTES - 4096;
const base64Length = (bytes: number) => Math.ceil(bytes / 3) * 4;
/** The largest image whose base64 is exactly `chars` long (chars a multiple of 4). */
const bytesFor = (chars: number) => (chars / 4) * 3;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('buildJob', () => {
  it('builds a v1 job with inline images as base64 and staged images as s3 sources with their SHA-256', () => {
    // Prepare
    const photo = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]);
    const stagedPhoto = Buffer.from('the staged photo');
    const named = 'a'.repeat(64);

    // Act
    const job = buildJob({
      jobId: 'job-1',
      userId: 'Alice',
      issuedAt: 1_700_000_000,
      images: [photo, { bucket: 'enrollment-staging', key: 'incoming/job-1/1', bytes: stagedPhoto }, { bucket: 'enrollment-staging', key: 'incoming/job-1/2', sha256: named }],
    });

    // Assess
    expect(job).toEqual({
      version: 1,
      jobId: 'job-1',
      userId: 'Alice',
      issuedAt: 1_700_000_000,
      images: [
        { data: photo.toString('base64') },
        { s3: { bucket: 'enrollment-staging', key: 'incoming/job-1/1', sha256: createHash('sha256').update(stagedPhoto).digest('hex') } },
        { s3: { bucket: 'enrollment-staging', key: 'incoming/job-1/2', sha256: named } },
      ],
    });
  });

  it('stamps issuedAt with the current time, in whole seconds, when none is given', () => {
    // Prepare
    const before = Math.floor(Date.now() / 1000);

    // Act
    const job = buildJob({ userId: 'alice', images: [Buffer.from('x')] });

    // Assess
    expect(Number.isInteger(job.issuedAt)).toBe(true);
    expect(job.issuedAt).toBeGreaterThanOrEqual(before);
    expect(job.issuedAt).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });

  it('gives each job a fresh UUID when no jobId is given', () => {
    // Act
    const first = buildJob({ userId: 'alice', images: [Buffer.from('x')] });
    const second = buildJob({ userId: 'alice', images: [Buffer.from('x')] });

    // Assess
    expect(first.jobId).toMatch(UUID);
    expect(second.jobId).toMatch(UUID);
    expect(first.jobId).not.toBe(second.jobId);
  });

  it('builds what the worker parses back to the same images', () => {
    // Prepare
    const photos = [Buffer.from('first photo'), Buffer.from('second')];

    // Act
    const stagedPhoto = Buffer.from('staged');
    const body = JSON.stringify(buildJob({ userId: ' Bob ', images: [...photos, { bucket: 's', key: 'k', bytes: stagedPhoto }] }));
    const parsed = parseJob(body, { maxImagesPerJob: 10, requireIssuedAt: true });

    // Assess
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.job.userId).toBe('bob');
    expect(parsed.job.images).toEqual([
      { kind: 'inline', data: photos[0]?.toString('base64') },
      { kind: 'inline', data: photos[1]?.toString('base64') },
      { kind: 's3', bucket: 's', key: 'k', sha256: createHash('sha256').update(stagedPhoto).digest('hex') },
    ]);
  });
});

describe('planStaging', () => {
  it('stages nothing when there are no images', () => {
    // Act
    const plan = planStaging([]);

    // Assess
    expect([...plan]).toEqual([]);
  });

  it('stages nothing when the images fit inline', () => {
    // Act
    const plan = planStaging([100_000, 200_000, 300_000]);

    // Assess
    expect([...plan]).toEqual([]);
  });

  it('stages nothing when the base64 exactly fills the budget', () => {
    // Prepare
    const sizes = [bytesFor(INLINE_BUDGET / 2), bytesFor(INLINE_BUDGET / 2)];

    // Act
    const plan = planStaging(sizes);

    // Assess
    expect(sizes.reduce((sum, n) => sum + base64Length(n), 0)).toBe(INLINE_BUDGET);
    expect([...plan]).toEqual([]);
  });

  it('stages an image when one more byte would not fit', () => {
    // Prepare
    const sizes = [bytesFor(INLINE_BUDGET / 2), bytesFor(INLINE_BUDGET / 2) + 1];

    // Act
    const plan = planStaging(sizes);

    // Assess
    expect([...plan]).toEqual([1]);
  });

  it('stages a single image that is too large to send inline', () => {
    // Act
    const plan = planStaging([900_000]);

    // Assess
    expect([...plan]).toEqual([0]);
  });

  it('stages the largest first, and only as many as needed', () => {
    // Prepare: 1.2 MB of base64; staging the 600 kB image alone is enough.
    const sizes = [100_000, 600_000, 200_000];

    // Act
    const plan = planStaging(sizes);

    // Assess
    expect([...plan]).toEqual([1]);
  });

  it('stages more than one when one is not enough, largest first', () => {
    // Prepare
    const sizes = [300_000, 500_000, 100_000, 400_000, 200_000];

    // Act
    const plan = planStaging(sizes);

    // Assess
    expect([...plan]).toEqual([1, 3]);
    const inline = sizes.filter((_, i) => !plan.has(i)).reduce((sum, n) => sum + base64Length(n), 0);
    expect(inline).toBeLessThanOrEqual(INLINE_BUDGET);
  });

  it('stages every image when even the smallest is too large', () => {
    // Act
    const plan = planStaging([2_000_000, 3_000_000, 1_000_000]);

    // Assess
    expect([...plan].sort()).toEqual([0, 1, 2]);
  });

  it('leaves a message that fits in 1 MiB with ten images at the edge of the budget', () => {
    // Prepare: ten images whose base64 fills the inline budget exactly, and long ids.
    const sizes = Array.from({ length: 10 }, () => bytesFor(INLINE_BUDGET / 10 - ((INLINE_BUDGET / 10) % 4)));
    const images = sizes.map((n) => Buffer.alloc(n, 7));

    // Act
    const plan = planStaging(sizes);
    const body = JSON.stringify(buildJob({ jobId: 'J'.repeat(128), userId: 'u'.repeat(128), images }));

    // Assess
    expect([...plan]).toEqual([]);
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(SQS_MAX_MESSAGE_BYTES);
  });
});

describe('buildSignedJob: the trace a job continues', () => {
  const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  it('puts the given traceparent and tracestate beside the Signature', () => {
    // Act
    const { messageAttributes } = buildSignedJob({ userId: 'ann', images: [Buffer.from('x')], trace: { traceparent: TRACEPARENT, tracestate: 'a=b' } }, 'k'.repeat(32));

    // Assess
    expect(Object.keys(messageAttributes).sort()).toEqual(['Signature', 'traceparent', 'tracestate']);
    expect(messageAttributes.traceparent).toEqual({ DataType: 'String', StringValue: TRACEPARENT });
  });

  it('adds nothing when the caller has no trace (no OpenTelemetry SDK registered)', () => {
    expect(buildSignedJob({ userId: 'ann', images: [Buffer.from('x')] }, undefined).messageAttributes).toEqual({});
  });

  it('refuses a malformed traceparent instead of sending it', () => {
    expect(() => buildSignedJob({ userId: 'ann', images: [Buffer.from('x')], trace: { traceparent: '00-abc' } }, undefined)).toThrow(/not a W3C traceparent/);
  });
});

describe('checkMessageGroupId', () => {
  it.each(['tenant-a', 'a', 'x'.repeat(128), 'acme/eu:1!~'])('accepts %s', (id) => {
    expect(checkMessageGroupId(id)).toBe(id);
  });

  it.each(['', 'x'.repeat(129), 'has space', 'ünï'])('refuses %j', (id) => {
    expect(() => checkMessageGroupId(id)).toThrow(/1-128 letters, digits or ASCII punctuation/);
  });
});
