// Property-based tests of the whole message path (signature, parser, enrollment with the real image
// checks and decoder, dead-letter entry, outcome): for ANY body — arbitrary bytes, arbitrary JSON,
// deep nesting, huge strings, every control character, lone surrogates, numbers at the edges — a
// message ends in exactly one verdict, and everything the worker would send to SQS is something SQS
// accepts (characters, attribute count, size). S3 and SQS are in-memory fakes of the adapters: what
// is checked here is what the worker decides and builds, not the SDK.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MessageAttributeValue } from '@aws-sdk/client-sqs';
import { enroll } from '../../src/enroll/enroll.ts';
import { imageNormaliser } from '../../src/image/normalise.ts';
import type { Outcome } from '../../src/job/contract.ts';
import { JOB_ERROR_CODES, JobError, WorkerMisconfigured } from '../../src/job/errors.ts';
import { signJob, signingKeysFrom } from '../../src/job/signature.ts';
import type { DeadLetterEntry } from '../../src/worker/dead-letter.ts';
import { outcomeMessage } from '../../src/worker/outcomes.ts';
import { processMessage as processJobMessage, type Fate as MessageVerdict, type MessageDeps as JobMessageDeps } from './message-harness.ts';
import { jpegImage } from '../support/images.ts';
import { memoryLogger, sqsMessage } from './helpers.ts';
import { sha256Hex } from '../support/bytes.ts';

const KEY = 'property-key-0123456789abcdef0123456789abcdef';
const NOW_MS = 1_796_040_000_000;
const NOW = NOW_MS / 1000;
const MiB = 1_048_576;

// SQS's rule, written out from its documentation (not imported from the code under test):
// #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
function sqsAccepts(text: string): boolean {
  for (const char of text) {
    const c = char.codePointAt(0) ?? 0;
    const ok = c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) || c >= 0x10000;
    // A lone surrogate iterates as itself (0xD800-0xDFFF), which the ranges above exclude.
    if (!ok) return false;
  }
  return true;
}

function messageSize(body: string, attributes: Record<string, MessageAttributeValue>): number {
  return Object.entries(attributes).reduce(
    (sum, [name, value]) =>
      sum + Buffer.byteLength(name) + Buffer.byteLength(value.DataType ?? '') + (value.StringValue !== undefined ? Buffer.byteLength(value.StringValue) : (value.BinaryValue?.length ?? 0)),
    Buffer.byteLength(body),
  );
}

function expectSqsAccepts(body: string, attributes: Record<string, MessageAttributeValue>): void {
  expect(sqsAccepts(body), 'body characters').toBe(true);
  expect(Object.keys(attributes).length).toBeLessThanOrEqual(10);
  for (const [name, value] of Object.entries(attributes)) {
    expect(sqsAccepts(name), `attribute name ${name}`).toBe(true);
    if (value.StringValue !== undefined) {
      expect(value.StringValue.length, `attribute ${name} is empty`).toBeGreaterThan(0);
      expect(sqsAccepts(value.StringValue), `attribute ${name} characters`).toBe(true);
    }
  }
  expect(messageSize(body, attributes)).toBeLessThanOrEqual(MiB);
}

let photo: Buffer;
const normalise = imageNormaliser({ parallel: 2 });

beforeAll(async () => {
  photo = await jpegImage({ width: 80, height: 64, seed: 5 });
});


/** The whole path with in-memory adapters; records what would be sent. */
function pathUnderTest(options: { signed: boolean }) {
  const { log } = memoryLogger();
  const deadLettered: DeadLetterEntry[] = [];
  const published: Outcome[] = [];
  const stagedObjects = new Map<string, Buffer>([['uploads/photo.jpg', photo]]);
  const rules = {
    stagingBucket: 'staging',
    stagingPrefix: 'uploads/',
    maxImageBytes: 200_000,
    maxImagePixels: 1_000_000,
    minImageDimension: 16,
    maxReferenceDimension: undefined,
  };
  const deps: JobMessageDeps = {
    limits: { maxImagesPerJob: 4, maxJobAgeSeconds: 86_400 },
    signingKeys: () => (options.signed ? signingKeysFrom(KEY, undefined) : signingKeysFrom(undefined, undefined)),
    enroll: (job) =>
      enroll(job, {
        rules,
        readStaged: async (bucket, key, _max, label) => {
          if (key === 'uploads/no-bucket') throw new WorkerMisconfigured('STAGING_BUCKET', `the staging bucket "${bucket}" does not exist`);
          const bytes = stagedObjects.get(key);
          if (!bytes) throw new JobError('SOURCE_NOT_FOUND', `${label}: s3://${bucket}/${key} does not exist`);
          return bytes;
        },
        normalise,
        writeReference: async () => 'created',
      }),
    deadLetter: async (entry) => {
      deadLettered.push(entry);
    },
    publish: async (outcome) => {
      published.push(outcome);
    },
    retryPolicy: { baseSeconds: 10, maxSeconds: 900 },
    maxReceiveCount: undefined,
    log,
    clock: () => NOW_MS,
    random: () => 0.5,
  };
  return { deps, deadLettered, published };
}

// ---- Arbitraries -------------------------------------------------------------------------------

const EDGE_NUMBERS = [0, 1, -1, 1.5, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER, NOW, NOW + 301, NOW - 86_401, NOW - 60];
// Raw JSON number spellings that JSON.stringify never produces.
const EDGE_NUMBER_TEXTS = ['-0', '1e999', '-1e999', '1E400', '0.0000000000000000000001', '123456789012345678901234567890'];

const controlChars = fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c));
const nastyChar = fc.oneof(
  controlChars,
  fc.constantFrom('\uD800', '\uDFFF', '\uFFFE', '\uFFFF', '\u0085', '\u2028', '\u202E', '\u0000', '"', '\\', '/', '..', '\u212A'),
);
const nastyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.array(nastyChar, { maxLength: 12 }).map((a) => a.join('')),
  fc.tuple(fc.string({ maxLength: 8 }), nastyChar, fc.string({ maxLength: 8 })).map(([a, b, c]) => a + b + c),
);

const edgeValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...EDGE_NUMBERS),
  nastyString,
  fc.constantFrom(null, true, false, [], {}, [1], { a: 1 }),
  fc.jsonValue({ maxDepth: 3 }),
);

const image: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant({ data: '' }).map(() => ({ data: photo.toString('base64') })),
  fc.record({ data: fc.oneof(fc.base64String({ maxLength: 60 }), nastyString, edgeValue) }),
  fc.record({
    s3: fc.record(
      {
        bucket: fc.oneof(fc.constant('staging'), nastyString, fc.constant('staging\u0001'), edgeValue),
        key: fc.oneof(fc.constantFrom('uploads/photo.jpg', 'uploads/missing.jpg', 'uploads/no-bucket', 'uploads/../x'), nastyString, edgeValue),
        sha256: fc.oneof(fc.constant('photo').map(() => sha256Hex(photo)), fc.constant('0'.repeat(64)), nastyString, edgeValue),
      },
      { requiredKeys: [] },
    ),
  }),
  edgeValue,
);

const jobShape = fc.record(
  {
    version: fc.oneof(fc.constant(1), edgeValue),
    jobId: fc.oneof(fc.constant('job-1'), nastyString, edgeValue),
    userId: fc.oneof(fc.constant('alice'), nastyString, edgeValue),
    issuedAt: fc.oneof(fc.constant(NOW - 5), edgeValue),
    images: fc.oneof(fc.array(image, { maxLength: 5 }), edgeValue),
    extra: edgeValue,
  },
  { requiredKeys: [] },
);

const deep = (depth: number, open: string, close: string, leaf = '1') => `${open.repeat(depth)}${leaf}${close.repeat(depth)}`;

/** A valid job for the photo, staged and inline, with at most one field replaced by an edge value. */
const nearlyValid = fc.tuple(fc.constantFrom('none', 'version', 'jobId', 'userId', 'issuedAt', 'images', 'no-bucket'), edgeValue).map(([field, value]) => {
  const job: Record<string, unknown> = {
    version: 1,
    jobId: 'job-1',
    userId: 'alice',
    issuedAt: NOW - 5,
    images: [{ data: photo.toString('base64') }, { s3: { bucket: 'staging', key: 'uploads/photo.jpg', sha256: sha256Hex(photo) } }],
  };
  // A staging bucket that does not exist: the worker's fault, retried.
  if (field === 'no-bucket') job.images = [{ s3: { bucket: 'staging', key: 'uploads/no-bucket', sha256: '0'.repeat(64) } }];
  else if (field !== 'none') job[field] = value;
  return JSON.stringify(job);
});

const body: fc.Arbitrary<string> = fc.oneof(
  nearlyValid,
  // Arbitrary bytes, as SQS would hand them over (UTF-8 decoded).
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('utf8')),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  jobShape.map((v) => JSON.stringify(v)),
  // A near-valid job with one field replaced by raw number text.
  fc.tuple(fc.constantFrom('version', 'issuedAt', 'jobId', 'userId', 'images'), fc.constantFrom(...EDGE_NUMBER_TEXTS)).map(
    ([field, text]) => JSON.stringify({ version: 1, jobId: 'job-1', userId: 'alice', issuedAt: NOW, images: [{ data: 'AAAA' }] }).replace(new RegExp(`"${field}":(\\[[^\\]]*\\]|"[^"]*"|\\d+)`), `"${field}":${text}`),
  ),
  // Deep nesting anywhere, built as text.
  fc.tuple(fc.integer({ min: 1, max: 200_000 }), fc.constantFrom('version', 'jobId', 'userId', 'images', 'issuedAt', 'x')).map(
    ([depth, field]) => `{"version":1,"jobId":"job-1","userId":"alice","images":[{"data":"AAAA"}],"${field}":${deep(depth, '[', ']')}}`,
  ),
  fc.integer({ min: 1, max: 100_000 }).map((depth) => deep(depth, '{"a":', '}')),
  // Huge strings, up to about the 1 MiB message (a JSON-escaped U+D800 takes 6 bytes).
  fc.tuple(fc.integer({ min: 1_000, max: 170_000 }), fc.constantFrom('x', '\u0001', '\uD800', 'é', '😀'), fc.constantFrom('jobId', 'userId', 'version', 'bucket')).map(
    ([n, c, field]) => {
      const big = c.repeat(Math.ceil(n / c.length));
      const job: Record<string, unknown> = { version: 1, jobId: 'job-1', userId: 'alice', issuedAt: NOW, images: [{ s3: { bucket: 'staging', key: 'uploads/photo.jpg', sha256: '0'.repeat(64) } }] };
      if (field === 'bucket') job.images = [{ s3: { bucket: big, key: 'k', sha256: '0'.repeat(64) } }];
      else job[field] = big;
      return JSON.stringify(job);
    },
  ),
);

const attributes: fc.Arbitrary<Record<string, MessageAttributeValue>> = fc.dictionary(
  fc.oneof(fc.constantFrom('Signature', 'traceId', 'ErrorCode', 'ErrorMessage'), fc.stringMatching(/^[A-Za-z0-9_.-]{1,20}$/)),
  fc.oneof(
    fc.string({ minLength: 1, maxLength: 80 }).map((v): MessageAttributeValue => ({ DataType: 'String', StringValue: v })),
    fc.uint8Array({ minLength: 1, maxLength: 40 }).map((v): MessageAttributeValue => ({ DataType: 'Binary', BinaryValue: v })),
    fc.integer().map((v): MessageAttributeValue => ({ DataType: 'Number', StringValue: String(v) })),
  ),
  { maxKeys: 12 },
);

// ---- The property ------------------------------------------------------------------------------

async function runOne(text: string, extraAttributes: Record<string, MessageAttributeValue>, signed: boolean, signIt: boolean) {
  const path = pathUnderTest({ signed });
  const messageAttributes = { ...extraAttributes, ...(signIt ? { Signature: { DataType: 'String', StringValue: signJob(text, KEY) } } : {}) };
  const verdicts: MessageVerdict[] = [];
  verdicts.push(await processJobMessage(sqsMessage({ Body: text, MessageAttributes: messageAttributes }), path.deps));

  // Exactly one verdict, of a documented kind.
  expect(verdicts).toHaveLength(1);
  const [verdict] = verdicts;
  seen.add(verdict?.action === 'retry' ? 'retry' : (verdict?.status ?? 'none'));
  if (verdict?.action === 'delete' && verdict.status === 'failed') {
    expect(JOB_ERROR_CODES as readonly string[]).toContain(verdict.code);
    expect(path.deadLettered).toHaveLength(1);
    // Beside a body of nearly 1 MiB the error attributes may not fit; they are left out, not the entry.
    if (path.deadLettered[0]?.errorOmitted !== true) expect(path.deadLettered[0]?.attributes.ErrorCode?.StringValue).toBe(verdict.code);
    expect(path.published).toEqual([expect.objectContaining({ status: 'failed', error: expect.objectContaining({ code: verdict.code }) })]);
  } else if (verdict?.action === 'delete') {
    expect(verdict.status).toBe('succeeded');
    expect(path.deadLettered).toEqual([]);
    expect(path.published).toEqual([expect.objectContaining({ status: 'succeeded' })]);
  } else {
    expect(verdict).toMatchObject({ action: 'retry', delaySeconds: expect.any(Number) });
    expect(path.deadLettered).toEqual([]);
  }

  // Everything that would be sent is something SQS accepts.
  for (const entry of path.deadLettered) {
    if (!sqsAccepts(entry.body)) continue; // the body is the one SQS delivered (generated bodies may not be deliverable)
    const own = Object.fromEntries(Object.entries(entry.attributes).filter(([n]) => n === 'ErrorCode' || n === 'ErrorMessage'));
    expectSqsAccepts('', own);
    expect(Object.keys(entry.attributes).length).toBeLessThanOrEqual(10);
    if (messageSize(text, extraAttributes) <= MiB - 2_048) expect(messageSize(entry.body, entry.attributes)).toBeLessThanOrEqual(MiB);
  }
  for (const outcome of path.published) {
    const message = outcomeMessage(outcome);
    expectSqsAccepts(message.body, message.attributes);
    expect(JSON.parse(message.body)).toEqual(JSON.parse(JSON.stringify(outcome)));
  }
}

/** Which verdicts the runs reached: a generator that never reaches one would prove nothing about it. */
const seen = new Set<string>();

describe('the message path, for any message', () => {
  it('ends unsigned-mode messages in exactly one verdict, and sends only what SQS accepts', async () => {
    await fc.assert(
      fc.asyncProperty(body, attributes, async (text, extra) => runOne(text, extra, false, false)),
      { numRuns: 400 },
    );
  }, 120_000);

  it('ends correctly signed messages (so the body is read) in exactly one verdict, and sends only what SQS accepts', async () => {
    await fc.assert(
      fc.asyncProperty(body, attributes, async (text, extra) => runOne(text, extra, true, true)),
      { numRuns: 400 },
    );
    expect([...seen].sort()).toEqual(['failed', 'retry', 'succeeded']);
  }, 120_000);

  it('ends wrongly signed messages in INVALID_SIGNATURE, whatever their body', async () => {
    await fc.assert(
      fc.asyncProperty(body, attributes, async (text, extra) => {
        const path = pathUnderTest({ signed: true });
        const verdict = await processJobMessage(sqsMessage({ Body: text, MessageAttributes: { ...extra, Signature: { DataType: 'String', StringValue: signJob(`${text} `, KEY) } } }), path.deps);
        expect(verdict).toEqual({ action: 'delete', status: 'failed', code: 'INVALID_SIGNATURE' });
      }),
      { numRuns: 200 },
    );
  }, 120_000);

  it('dead-letters a staged bucket name with control characters, quoting it in a form SQS accepts', async () => {
    // Prepare: the case found by hand — a U+0001 in a bucket name copied into ErrorMessage.
    const text = JSON.stringify({ version: 1, jobId: 'j', userId: 'alice', issuedAt: NOW, images: [{ s3: { bucket: 'stag\u0001ing\uFFFF', key: 'uploads/a', sha256: '0'.repeat(64) } }] });
    const path = pathUnderTest({ signed: true });

    // Act
    const verdict = await processJobMessage(sqsMessage({ Body: text, MessageAttributes: { Signature: { DataType: 'String', StringValue: signJob(text, KEY) } } }), path.deps);

    // Assess
    expect(verdict).toEqual({ action: 'delete', status: 'failed', code: 'SOURCE_NOT_ALLOWED' });
    const message = path.deadLettered[0]?.attributes.ErrorMessage?.StringValue ?? '';
    expect(message).toBe('images[0]: bucket "stag\\u0001ing\\uffff" is not the staging bucket');
    expect(sqsAccepts(message)).toBe(true);
  });
});
