import { beforeAll, describe, expect, it } from 'vitest';
import type { Enrollment } from '../../src/enroll/enroll.ts';
import type { Job, Outcome, Reference } from '../../src/job/contract.ts';
import { JobError, WorkerMisconfigured } from '../../src/job/errors.ts';
import { signJob, signingKeysFrom, type SigningKeys } from '../../src/job/signature.ts';
import type { DeadLetterEntry } from '../../src/worker/dead-letter.ts';
import { Registry } from 'prom-client';
import { createJobCounters } from '../../src/worker/metrics.ts';
import { judgeMessage, type JobMessageDeps } from '../../src/worker/job-message.ts';
import { redactedBody, settle as settleMessage } from '../../src/worker/settle.ts';
import { processMessage as processJobMessage, runningJob, type MessageDeps } from './message-harness.ts';
import { jpegImage } from '../support/images.ts';
import { jobBody, jobRecord, memoryLogger, networkError, sdkError, settle, sqsMessage, stringAttribute } from './helpers.ts';

let imageData: string;
const NOW_MS = 1_796_040_000_000;
const NOW = NOW_MS / 1000;

beforeAll(async () => {
  imageData = (await jpegImage({ width: 32, height: 32, seed: 21 })).toString('base64');
});

const REFERENCE: Reference = {
  key: 'users/alice/ref_0123456789ab.jpg',
  sha256: `0123456789ab${'0'.repeat(52)}`,
  contentType: 'image/jpeg',
  bytes: 1234,
};

type Enroll = (job: Job) => Promise<Enrollment>;

/** Fake dependencies that record what the worker did. */
function harness(options: {
  enroll?: Enroll;
  deadLetter?: 'none' | 'ok' | 'fails';
  publishFails?: boolean;
  maxReceiveCount?: number;
  signingKeys?: SigningKeys;
  discardSources?: (job: Job) => Promise<number>;
} = {}) {
  const { log, lines } = memoryLogger();
  const deadLettered: DeadLetterEntry[] = [];
  const published: Outcome[] = [];
  const enrolled: Job[] = [];
  const deadLetterMode = options.deadLetter ?? 'ok';
  const deps: MessageDeps = {
    limits: { maxImagesPerJob: 10 },
    signingKeys: () => options.signingKeys ?? signingKeysFrom(undefined, undefined),
    ...(options.discardSources ? { discardSources: options.discardSources } : {}),
    enroll: async (job) => {
      enrolled.push(job);
      return (options.enroll ?? (async () => ({ references: [REFERENCE], created: 1, paths: ['rebuilt'] })))(job);
    },
    deadLetter:
      deadLetterMode === 'none'
        ? undefined
        : async (entry) => {
            if (deadLetterMode === 'fails') throw sdkError('ServiceUnavailable', 503);
            deadLettered.push(entry);
          },
    publish: async (outcome) => {
      if (options.publishFails) throw networkError('ECONNRESET');
      published.push(outcome);
    },
    retryPolicy: { baseSeconds: 10, maxSeconds: 900 },
    maxReceiveCount: options.maxReceiveCount,
    log,
    clock: () => NOW_MS,
    random: () => 0,
  };
  return { deps, deadLettered, published, enrolled, lines };
}

const throwing = (error: unknown): Enroll => async () => {
  throw error;
};

describe('redactedBody', () => {
  it('replaces inline image data by its length and keeps the rest', () => {
    // Prepare
    const body = jobBody({ images: [{ data: imageData }, { s3: { bucket: 'staging', key: 'incoming/1' } }] });

    // Act
    const redacted = redactedBody(body);

    // Assess
    expect(redacted).toEqual({
      version: 1,
      jobId: 'job-0001',
      userId: 'alice',
      images: [{ data: `<${imageData.length} base64 chars>` }, { s3: { bucket: 'staging', key: 'incoming/1' } }],
    });
  });

  it('describes a body that is not JSON by its length only', () => {
    // Prepare
    const body = `garbage ${imageData}`;

    // Act
    const redacted = redactedBody(body);

    // Assess
    expect(redacted).toBe(`<${Buffer.byteLength(body)} bytes, not JSON>`);
  });

  it.each([
    ['an array', `["${'A'.repeat(300)}"]`, [`<300 base64 chars>`]],
    ['a string', `"${'A'.repeat(300)}"`, `<300 base64 chars>`],
    ['null', 'null', null],
  ])('redacts JSON that is not an object (%s) the same way', (_name, body, expected) => {
    // Act
    const redacted = redactedBody(body);

    // Assess
    expect(redacted).toEqual(expected);
  });

  it('keeps a huge body short: long strings by their length, at most 20 items and 50 keys', () => {
    // Prepare: many staged images with long keys, no inline data.
    const images = Array.from({ length: 50 }, (_, i) => ({ s3: { bucket: 'staging', key: `incoming/${i}/${'k'.repeat(500)}` } }));

    // Act
    const redacted = redactedBody(jobBody({ images }));

    // Assess
    expect(JSON.stringify(redacted).length).toBeLessThanOrEqual(4096);
    expect((redacted as { images: unknown[] }).images).toHaveLength(20);
  });

  it.each([
    ['a valid job', () => jobRecord({ images: [{ data: imageData }] })],
    ['a job with a bad user id', () => jobRecord({ userId: '../x', images: [{ data: imageData }, { data: imageData }] })],
    ['an image with both data and s3', () => jobRecord({ images: [{ data: imageData, s3: { bucket: 'b', key: 'k' } }] })],
    ['images given as one object, not an array', () => jobRecord({ images: { data: imageData } })],
    ['an image wrapped in an extra array', () => jobRecord({ images: [[{ data: imageData }]] })],
    ['images under a misspelt field', () => jobRecord({ images: undefined, image: [{ data: imageData }] })],
  ])('never contains the base64 data, for %s', (_name, record) => {
    // Act
    const redacted = redactedBody(JSON.stringify(record()));

    // Assess
    expect(JSON.stringify(redacted)).not.toContain(imageData.slice(0, 32));
  });
});

describe('processJobMessage: success', () => {
  it('enrolls the job, publishes one succeeded outcome and deletes the message', async () => {
    // Prepare
    const h = harness();
    const message = sqsMessage({ MessageId: 'm-1', Body: jobBody({ userId: ' Alice ', images: [{ data: imageData }] }) });

    // Act
    const verdict = await processJobMessage(message, h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'succeeded' });
    expect(h.enrolled).toEqual([{ version: 1, jobId: 'job-0001', userId: 'alice', images: [{ kind: 'inline', data: imageData }] }]);
    expect(h.published).toEqual([
      { version: 1, jobId: 'job-0001', userId: 'alice', messageId: 'm-1', status: 'succeeded', references: [REFERENCE] },
    ]);
    expect(h.deadLettered).toEqual([]);
  });

  it('logs one info line with the outcome', async () => {
    // Prepare
    const h = harness();

    // Act
    await processJobMessage(sqsMessage({ MessageId: 'm-1' }), h.deps);

    // Assess
    expect(h.lines()).toEqual([
      expect.objectContaining({ level: 'info', msg: 'job succeeded', outcome: 'succeeded', references: 1, created: 1, messageId: 'm-1', jobId: 'job-0001', userId: 'alice' }),
    ]);
  });

  it('retries when the outcome cannot be published', async () => {
    // Prepare
    const h = harness({ publishFails: true });

    // Act
    const verdict = await processJobMessage(sqsMessage({ receiveCount: 2 }), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'retry', delaySeconds: 10 });
  });
});

describe('processJobMessage: permanent failures', () => {
  it('dead-letters the message, publishes a failed outcome and deletes it', async () => {
    // Prepare
    const h = harness();
    const message = sqsMessage({
      MessageId: 'm-2',
      Body: jobBody({ images: [{ data: imageData }] }),
      MessageAttributes: { traceId: stringAttribute('t-9') },
    });
    const invalid = new JobError('INVALID_IMAGE', 'images[0] is not a JPEG or PNG image');
    h.deps = { ...h.deps, enroll: throwing(invalid) };

    // Act
    const verdict = await processJobMessage(message, h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'failed', code: 'INVALID_IMAGE' });
    expect(h.deadLettered).toHaveLength(1);
    expect(h.deadLettered[0]?.body).toBe(message.Body);
    expect(h.deadLettered[0]?.attributes).toEqual({
      traceId: { DataType: 'String', StringValue: 't-9' },
      ErrorCode: { DataType: 'String', StringValue: 'INVALID_IMAGE' },
      ErrorMessage: { DataType: 'String', StringValue: 'images[0] is not a JPEG or PNG image' },
    });
    expect(h.published).toEqual([
      {
        version: 1,
        jobId: 'job-0001',
        userId: 'alice',
        messageId: 'm-2',
        status: 'failed',
        error: { code: 'INVALID_IMAGE', message: 'images[0] is not a JPEG or PNG image' },
      },
    ]);
  });

  it('fails a job that does not parse without enrolling it, keeping the ids it could read', async () => {
    // Prepare
    const h = harness();

    // Act
    const verdict = await processJobMessage(sqsMessage({ MessageId: 'm-3', Body: jobBody({ userId: '../bob' }) }), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'failed', code: 'INVALID_USER_ID' });
    expect(h.enrolled).toEqual([]);
    expect(h.deadLettered[0]?.attributes.ErrorCode?.StringValue).toBe('INVALID_USER_ID');
    expect(h.published).toEqual([
      expect.objectContaining({ status: 'failed', jobId: 'job-0001', userId: null, messageId: 'm-3', error: expect.objectContaining({ code: 'INVALID_USER_ID' }) }),
    ]);
  });

  it('fails a body that is not JSON with null ids', async () => {
    // Prepare
    const h = harness();

    // Act
    const verdict = await processJobMessage(sqsMessage({ MessageId: 'm-4', Body: 'hello' }), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'failed', code: 'INVALID_MESSAGE' });
    expect(h.published).toEqual([
      {
        version: 1,
        jobId: null,
        userId: null,
        messageId: 'm-4',
        status: 'failed',
        error: { code: 'INVALID_MESSAGE', message: 'the message body is not valid JSON' },
      },
    ]);
  });

  it('logs a warning naming the code when the entry was dead-lettered', async () => {
    // Prepare
    const h = harness();

    // Act
    await processJobMessage(sqsMessage({ Body: jobBody({ version: 2 }) }), h.deps);

    // Assess
    expect(h.lines()).toEqual([
      expect.objectContaining({ level: 'warn', msg: 'job failed', outcome: 'failed', code: 'UNSUPPORTED_VERSION', deadLetter: 'sent' }),
    ]);
  });

  it('with no dead-letter queue, logs an error line carrying the redacted body and no image data', async () => {
    // Prepare
    const h = harness({ deadLetter: 'none' });
    const body = jobBody({ userId: '../x', images: [{ data: imageData }] });

    // Act
    const verdict = await processJobMessage(sqsMessage({ MessageId: 'm-5', Body: body, MessageAttributes: { traceId: stringAttribute('t') } }), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'failed', code: 'INVALID_USER_ID' });
    expect(h.published).toHaveLength(1);
    const lines = h.lines();
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: 'job failed',
        code: 'INVALID_USER_ID',
        deadLetter: 'none',
        body: redactedBody(body),
        attributes: ['traceId'],
        messageId: 'm-5',
      }),
    ]);
    expect(JSON.stringify(lines)).not.toContain(imageData.slice(0, 32));
  });

  it('with no dead-letter queue, keeps image data out of the log for a job whose images are malformed', async () => {
    // Prepare: images sent as one object instead of an array (INVALID_MESSAGE).
    const h = harness({ deadLetter: 'none' });
    const body = jobBody({ images: { data: imageData } });

    // Act
    const verdict = await processJobMessage(sqsMessage({ Body: body }), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'failed', code: 'INVALID_MESSAGE' });
    expect(h.lines()).toEqual([expect.objectContaining({ level: 'error', code: 'INVALID_MESSAGE' })]);
    expect(JSON.stringify(h.lines())).not.toContain(imageData.slice(0, 32));
  });

  it('retries, without publishing, when the dead-letter send fails', async () => {
    // Prepare
    const h = harness({ deadLetter: 'fails' });

    // Act
    const verdict = await processJobMessage(sqsMessage({ receiveCount: 1, Body: jobBody({ version: 3 }) }), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'retry', delaySeconds: 5 });
    expect(h.published).toEqual([]);
    expect(h.lines()).toEqual([expect.objectContaining({ level: 'warn', outcome: 'retry', reason: 'server' })]);
  });
});

describe('processJobMessage: transient failures', () => {
  it('retries after a delay that grows with the receive count, publishing nothing', async () => {
    // Prepare
    const h = harness({ enroll: throwing(sdkError('SlowDown', 503)), maxReceiveCount: 5 });

    // Act
    const first = await processJobMessage(sqsMessage({ receiveCount: 1 }), h.deps);
    const third = await processJobMessage(sqsMessage({ receiveCount: 3 }), h.deps);
    await settle();

    // Assess
    expect(first).toEqual({ action: 'retry', delaySeconds: 5 });
    expect(third).toEqual({ action: 'retry', delaySeconds: 20 });
    expect(h.published).toEqual([]);
    expect(h.deadLettered).toEqual([]);
  });

  it('logs the retry with its reason and delay', async () => {
    // Prepare
    const h = harness({ enroll: throwing(networkError('ECONNRESET')), maxReceiveCount: 5 });

    // Act
    await processJobMessage(sqsMessage({ receiveCount: 2 }), h.deps);

    // Assess
    expect(h.lines()).toEqual([
      expect.objectContaining({ level: 'warn', outcome: 'retry', reason: 'network', retryInSeconds: 10, lastAttempt: false, receiveCount: 2 }),
    ]);
  });

  it('treats our own bug (a TypeError) as transient', async () => {
    // Prepare
    const h = harness({ enroll: throwing(new TypeError('cannot read properties of undefined')) });

    // Act
    const verdict = await processJobMessage(sqsMessage(), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'retry', delaySeconds: 5 });
    expect(h.deadLettered).toEqual([]);
  });

  it('on the last attempt, publishes a RETRIES_EXHAUSTED outcome', async () => {
    // Prepare
    const h = harness({ enroll: throwing(sdkError('ThrottlingException', 400)), maxReceiveCount: 5 });

    // Act
    const verdict = await processJobMessage(sqsMessage({ MessageId: 'm-6', receiveCount: 5 }), h.deps);
    await settle();

    // Assess
    expect(verdict.action).toBe('retry');
    expect(h.published).toEqual([
      {
        version: 1,
        jobId: 'job-0001',
        userId: 'alice',
        messageId: 'm-6',
        status: 'failed',
        error: { code: 'RETRIES_EXHAUSTED', message: 'gave up after 5 attempts: ThrottlingException from the service' },
      },
    ]);
    expect(h.lines()).toEqual([expect.objectContaining({ level: 'warn', lastAttempt: true })]);
  });

  it('treats a receive count past maxReceiveCount as the last attempt too', async () => {
    // Prepare
    const h = harness({ enroll: throwing(new Error('boom')), maxReceiveCount: 3 });

    // Act
    await processJobMessage(sqsMessage({ receiveCount: 7 }), h.deps);
    await settle();

    // Assess
    expect(h.published.map((o) => o.status === 'failed' && o.error.code)).toEqual(['RETRIES_EXHAUSTED']);
  });

  it('publishes nothing before the last attempt, or when there is no redrive policy', async () => {
    // Prepare
    const withPolicy = harness({ enroll: throwing(new Error('boom')), maxReceiveCount: 5 });
    const withoutPolicy = harness({ enroll: throwing(new Error('boom')) });

    // Act
    await processJobMessage(sqsMessage({ receiveCount: 4 }), withPolicy.deps);
    await processJobMessage(sqsMessage({ receiveCount: 500 }), withoutPolicy.deps);
    await settle();

    // Assess
    expect(withPolicy.published).toEqual([]);
    expect(withoutPolicy.published).toEqual([]);
  });

  it('logs, and does not throw, when the exhausted outcome cannot be published', async () => {
    // Prepare
    const h = harness({ enroll: throwing(new Error('boom')), maxReceiveCount: 2, publishFails: true });

    // Act
    const verdict = await processJobMessage(sqsMessage({ receiveCount: 2 }), h.deps);
    await settle();

    // Assess
    expect(verdict.action).toBe('retry');
    expect(h.lines().map((l) => [l.level, l.msg])).toEqual([
      ['warn', 'the job failed for now; it will be retried'],
      ['error', 'could not publish the outcome of an exhausted job'],
    ]);
  });
});

describe('processJobMessage: log lines', () => {
  it('every line of a job carries its messageId, jobId and userId', async () => {
    // Prepare: one run of each path, all with the same ids.
    const runs: ReturnType<typeof harness>[] = [
      harness(),
      harness({ enroll: throwing(new JobError('INVALID_IMAGE', 'x')) }),
      harness({ enroll: throwing(new JobError('INVALID_IMAGE', 'x')), deadLetter: 'none' }),
      harness({ deadLetter: 'fails', enroll: throwing(new JobError('INVALID_IMAGE', 'x')) }),
      harness({ enroll: throwing(new Error('boom')), maxReceiveCount: 1, publishFails: true }),
    ];

    // Act
    for (const h of runs) await processJobMessage(sqsMessage({ MessageId: 'm-7', Body: jobBody({ jobId: 'job-7', userId: 'Dana' }) }), h.deps);
    await settle();

    // Assess
    const lines = runs.flatMap((h) => h.lines());
    expect(lines.length).toBeGreaterThanOrEqual(runs.length + 1);
    lines.forEach((line) => expect(line).toMatchObject({ messageId: 'm-7', jobId: 'job-7', userId: 'dana' }));
  });

  it('a line for a message that does not parse still carries its messageId', async () => {
    // Prepare
    const h = harness({ deadLetter: 'none' });

    // Act
    await processJobMessage(sqsMessage({ MessageId: 'm-8', Body: '{not json' }), h.deps);

    // Assess
    expect(h.lines()).toEqual([expect.objectContaining({ messageId: 'm-8', jobId: null, userId: null, code: 'INVALID_MESSAGE' })]);
  });
});

describe('processJobMessage: signed jobs', () => {
  const CURRENT = 'current-key-0123456789abcdef0123456789abcdef';
  const PREVIOUS = 'previous-key-0123456789abcdef0123456789abcdef';
  const keys = signingKeysFrom(CURRENT, PREVIOUS);
  const signed = (body: string, key: string) => sqsMessage({ Body: body, MessageAttributes: { Signature: stringAttribute(signJob(body, key)) } });

  it.each([
    ['current', CURRENT],
    ['previous', PREVIOUS],
  ])('accepts a job signed with the %s key and logs which key matched, never the key', async (which, key) => {
    // Prepare
    const h = harness({ signingKeys: keys });

    // Act
    const verdict = await processJobMessage(signed(jobBody({ issuedAt: NOW - 5 }), key), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'succeeded' });
    expect(h.enrolled).toHaveLength(1);
    expect(h.lines().at(-1)).toMatchObject({ outcome: 'succeeded', signature: which });
    expect(JSON.stringify(h.lines())).not.toContain(CURRENT);
    expect(JSON.stringify(h.lines())).not.toContain(PREVIOUS);
  });

  it.each([
    ['no Signature attribute', sqsMessage({ Body: jobBody() })],
    ['a signature by another key', signed(jobBody(), 'forger-key-0123456789abcdef0123456789abcdef')],
    ['a signature of another body', sqsMessage({ Body: jobBody({ userId: 'victim' }), MessageAttributes: { Signature: stringAttribute(signJob(jobBody(), CURRENT)) } })],
    ['a malformed signature', sqsMessage({ Body: jobBody(), MessageAttributes: { Signature: stringAttribute('v1=abc') } })],
    ['a Binary signature attribute', sqsMessage({ Body: jobBody(), MessageAttributes: { Signature: { DataType: 'Binary', BinaryValue: new Uint8Array(32) } } })],
  ])('refuses %s: INVALID_SIGNATURE, dead-lettered, not enrolled, no ids trusted', async (_name, message) => {
    // Prepare
    const h = harness({ signingKeys: keys });

    // Act
    const verdict = await processJobMessage(message, h.deps);

    // Assess
    expect(verdict).toMatchObject({ action: 'delete', status: 'failed' });
    expect(h.enrolled).toEqual([]);
    expect(h.deadLettered).toHaveLength(1);
    expect(h.published).toEqual([
      expect.objectContaining({ status: 'failed', jobId: null, userId: null, error: expect.objectContaining({ code: 'INVALID_SIGNATURE' }) }),
    ]);
    expect(h.lines().at(-1)).toMatchObject({ outcome: 'failed', code: 'INVALID_SIGNATURE', signature: 'invalid' });
    expect(h.lines().at(-1)).toMatchObject({ jobId: null, userId: null });
  });

  it('without a key accepts unsigned jobs and says they were unchecked', async () => {
    // Prepare
    const h = harness();

    // Act
    const verdict = await processJobMessage(sqsMessage(), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'succeeded' });
    expect(h.lines().at(-1)).toMatchObject({ signature: 'unchecked' });
  });

  it('reads the keys for every message, so a swapped key takes effect at once', async () => {
    // Prepare
    let current = signingKeysFrom(CURRENT, undefined);
    const h = harness();
    const deps = { ...h.deps, signingKeys: () => current };
    const body = jobBody({ issuedAt: NOW });

    // Act
    const before = await processJobMessage(signed(body, PREVIOUS), deps);
    current = signingKeysFrom(PREVIOUS, undefined);
    const after = await processJobMessage(signed(body, PREVIOUS), deps);

    // Assess
    expect(before).toMatchObject({ status: 'failed' });
    expect(after).toEqual({ action: 'delete', status: 'succeeded' });
  });
});

describe('processJobMessage: signed jobs expire', () => {
  const KEY = 'current-key-0123456789abcdef0123456789abcdef';
  const signed = (body: string) => sqsMessage({ Body: body, MessageAttributes: { Signature: stringAttribute(signJob(body, KEY)) } });

  it('refuses a signed job without issuedAt: INVALID_MESSAGE, dead-lettered, not enrolled', async () => {
    // Prepare
    const h = harness({ signingKeys: signingKeysFrom(KEY, undefined) });

    // Act
    const verdict = await processJobMessage(signed(jobBody()), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'failed', code: 'INVALID_MESSAGE' });
    expect(h.enrolled).toEqual([]);
    expect(h.deadLettered[0]?.attributes.ErrorMessage?.StringValue).toMatch(/^issuedAt is required/);
  });

  it('dead-letters a signed job older than SIGNED_JOB_MAX_AGE_SECONDS as JOB_EXPIRED, with its ids', async () => {
    // Prepare
    const h = harness({ signingKeys: signingKeysFrom(KEY, undefined) });
    const deps = { ...h.deps, limits: { maxImagesPerJob: 10, maxJobAgeSeconds: 3600 } };

    // Act
    const verdict = await processJobMessage(signed(jobBody({ issuedAt: NOW - 3601 })), deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'failed', code: 'JOB_EXPIRED' });
    expect(h.enrolled).toEqual([]);
    expect(h.published).toEqual([expect.objectContaining({ status: 'failed', jobId: 'job-0001', userId: 'alice', error: expect.objectContaining({ code: 'JOB_EXPIRED' }) })]);
    expect(h.deadLettered[0]?.attributes.ErrorCode?.StringValue).toBe('JOB_EXPIRED');
  });

  it('reads the wall clock, not the monotonic one, for the age', async () => {
    // Prepare: a monotonic clock near zero must not make every job look 56 years old.
    const h = harness({ signingKeys: signingKeysFrom(KEY, undefined) });

    // Act
    const verdict = await processJobMessage(signed(jobBody({ issuedAt: NOW - 60 })), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'succeeded' });
  });
});

describe('processJobMessage: one verdict whatever happens', () => {
  it('ends a message that makes the worker itself throw while reading it as INVALID_MESSAGE, logged with its stack', async () => {
    // Prepare: a bug of ours on the read path (here, the key lookup throws).
    const h = harness();
    const bug = new TypeError('cannot read properties of undefined');
    const deps = {
      ...h.deps,
      signingKeys: () => {
        throw bug;
      },
    };

    // Act
    const verdict = await processJobMessage(sqsMessage({ MessageId: 'm-bug' }), deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'failed', code: 'INVALID_MESSAGE' });
    expect(h.enrolled).toEqual([]);
    expect(h.deadLettered[0]?.attributes.ErrorMessage?.StringValue).toBe('the worker could not read the message (TypeError; see its log)');
    const bugLine = h.lines().find((l) => l.level === 'error' && l.messageId === 'm-bug');
    expect(bugLine).toMatchObject({ err: { type: 'TypeError', message: 'cannot read properties of undefined' } });
    expect(String((bugLine?.err as { stack?: string }).stack)).toContain('TypeError: cannot read properties of undefined\n    at ');
  });

  it('logs an unexpected failure of the enrollment with its stack, once, with the message id, and retries', async () => {
    // Prepare
    const h = harness({ enroll: throwing(new RangeError('offset out of range')) });

    // Act
    const verdict = await processJobMessage(sqsMessage({ MessageId: 'm-7' }), h.deps);

    // Assess
    expect(verdict).toMatchObject({ action: 'retry' });
    const withStacks = h.lines().filter((l) => typeof (l.err as { stack?: unknown } | undefined)?.stack === 'string');
    expect(withStacks).toHaveLength(1);
    expect(withStacks[0]).toMatchObject({ messageId: 'm-7', outcome: 'retry', reason: 'other', err: { type: 'RangeError' } });
  });

  it('keeps an expected AWS failure to one line, without a stack', async () => {
    // Prepare
    const h = harness({ enroll: throwing(sdkError('SlowDown', 503)) });

    // Act
    await processJobMessage(sqsMessage(), h.deps);

    // Assess
    const line = h.lines().at(-1);
    expect(line).toMatchObject({ outcome: 'retry', reason: 'throttled', err: { name: 'SlowDown', message: 'SlowDown from the service' } });
    expect((line?.err as Record<string, unknown>).stack).toBeUndefined();
  });

  it('retries a job the worker\'s own settings fail (a missing staging bucket), logged as an error', async () => {
    // Prepare
    const h = harness({ enroll: throwing(new WorkerMisconfigured('STAGING_BUCKET', 'the staging bucket "stagng" does not exist (STAGING_BUCKET)')) });

    // Act
    const verdict = await processJobMessage(sqsMessage(), h.deps);

    // Assess
    expect(verdict).toMatchObject({ action: 'retry' });
    expect(h.deadLettered).toEqual([]);
    expect(h.lines().at(-1)).toMatchObject({ level: 'error', outcome: 'retry', reason: 'configuration', err: { message: expect.stringContaining('STAGING_BUCKET') } });
  });

  it('settles a decision that threw (a bug of ours) as a retry, logged with the message id and its stack', async () => {
    // Prepare: the consumer hands settle a "crashed" settlement when deciding threw.
    const h = harness();
    const queue = { done: [] as unknown[], delete: async () => {}, setVisibility: async (_: unknown, seconds: number) => void queue.done.push(seconds) };

    // Act
    await settleMessage(sqsMessage({ MessageId: 'm-9', receiveCount: 2 }), { kind: 'crashed', error: new Error('clock broke') }, runningJob(), queue, {
      deadLetter: h.deps.deadLetter,
      publish: h.deps.publish,
      retryPolicy: () => h.deps.retryPolicy,
      maxReceiveCount: undefined,
      counters: createJobCounters(new Registry()),
      log: h.deps.log,
      random: () => 0,
    });

    // Assess
    expect(queue.done).toEqual([10]);
    expect(h.lines().at(-1)).toMatchObject({ level: 'error', messageId: 'm-9', outcome: 'retry', err: { message: 'clock broke', stack: expect.stringContaining('Error: clock broke') } });
  });
});

describe('processJobMessage: DELETE_STAGED_SOURCES', () => {
  it('discards the sources after the outcome is published, and logs how many', async () => {
    // Prepare
    const order: string[] = [];
    const h = harness({
      discardSources: async () => {
        order.push(`discard after ${h.published.length} outcome(s)`);
        return 2;
      },
    });

    // Act
    const verdict = await processJobMessage(sqsMessage(), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'succeeded' });
    expect(order).toEqual(['discard after 1 outcome(s)']);
    expect(h.lines().at(-1)).toMatchObject({ outcome: 'succeeded', stagedSourcesDeleted: 2 });
  });

  it('keeps a succeeded job succeeded when the delete fails (warns, no retry)', async () => {
    // Prepare
    const h = harness({ discardSources: async () => Promise.reject(sdkError('ServiceUnavailable', 503)) });

    // Act
    const verdict = await processJobMessage(sqsMessage(), h.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'succeeded' });
    expect(h.lines().some((l) => l.level === 'warn' && String(l.msg).startsWith('could not delete the staged sources'))).toBe(true);
  });

  it('never discards the sources of a failed job', async () => {
    // Prepare
    let discarded = false;
    const h = harness({
      enroll: throwing(new JobError('INVALID_IMAGE', 'images[0] is not a JPEG or PNG image')),
      discardSources: async () => {
        discarded = true;
        return 1;
      },
    });

    // Act
    await processJobMessage(sqsMessage(), h.deps);

    // Assess
    expect(discarded).toBe(false);
  });
});

describe('judgeMessage: what it reports of the message', () => {
  const KEY = 'judge-key-0123456789abcdef0123456789abcdef';
  const context = (onRead?: (ids: unknown, signature: string) => void) => ({
    signal: new AbortController().signal,
    onPhase: () => {},
    waitFor: <T>(w: Promise<T>) => w,
    ...(onRead ? { onRead } : {}),
  });

  it("ages a signed job by the deps' clock, not the machine's", async () => {
    // Prepare: a clock years from now, and a job issued a minute before it.
    const h = harness({ signingKeys: signingKeysFrom(KEY, undefined) });
    const later = Date.now() + 5 * 365 * 86_400_000;
    const body = jobBody({ issuedAt: Math.floor(later / 1000) - 60 });
    const message = sqsMessage({ Body: body, MessageAttributes: { Signature: stringAttribute(signJob(body, KEY)) } });

    // Act
    const judgement = await judgeMessage(message, { ...h.deps, clock: () => later }, context());

    // Assess
    expect(judgement.verdict.kind).toBe('succeeded');
    expect(judgement.signature).toBe('current');
  });

  it('checks the signature of a message without a body as that of an empty body', async () => {
    // Prepare
    const h = harness({ signingKeys: signingKeysFrom(KEY, undefined) });
    const { Body: _, ...noBody } = sqsMessage({ MessageAttributes: { Signature: stringAttribute(signJob('', KEY)) } });

    // Act
    const judgement = await judgeMessage(noBody, h.deps, context());

    // Assess: authentic, then refused as a job.
    expect(judgement.signature).toBe('current');
    expect(judgement.verdict).toMatchObject({ kind: 'failed', error: { code: 'INVALID_MESSAGE' } });
  });

  it('says the signature was unread when reading the message threw', async () => {
    // Prepare
    const h = harness();
    const broken = {
      ...h.deps,
      signingKeys: () => {
        throw new TypeError('keys broke');
      },
    };

    // Act
    const judgement = await judgeMessage(sqsMessage(), broken, context());

    // Assess
    expect(judgement).toMatchObject({ signature: 'unread', ids: { jobId: null, userId: null }, verdict: { kind: 'failed', error: { code: 'INVALID_MESSAGE' } } });
  });

  it('tells onRead the ids and the signature as soon as the message is read, and null ids for one that is not a job', async () => {
    // Prepare
    const h = harness();
    const read: unknown[] = [];

    // Act
    await judgeMessage(sqsMessage(), h.deps, context((ids, signature) => read.push([ids, signature])));
    await judgeMessage(sqsMessage({ Body: 'not json' }), h.deps, context((ids, signature) => read.push([ids, signature])));

    // Assess
    expect(read).toEqual([
      [{ jobId: 'job-0001', userId: 'alice' }, 'unchecked'],
      [{ jobId: null, userId: null }, 'unchecked'],
    ]);
  });

  it('keeps the references an enrollment stored before it failed', async () => {
    // Prepare
    const h = harness();
    const enroll: JobMessageDeps['enroll'] = async (_job, { onStored }) => {
      onStored(REFERENCE);
      throw new JobError('INVALID_IMAGE', 'images[1] is not a JPEG or PNG image');
    };

    // Act
    const judgement = await judgeMessage(sqsMessage(), { ...h.deps, enroll }, context());

    // Assess
    expect(judgement.verdict).toMatchObject({ kind: 'failed', error: { code: 'INVALID_IMAGE' } });
    expect(judgement.stored).toEqual([REFERENCE]);
  });
});
