// What the worker sends to its queues, end to end (the built worker as a process):
// - the outcome's message attributes (`status`, and `jobId` when known);
// - DEAD_LETTER_QUEUE_URL overriding the jobs queue's redrive policy;
// - RETRIES_EXHAUSTED from a live redrive policy: a job that fails transiently on every attempt
//   gets a failed outcome on the last one, and the queue itself moves the message to its
//   dead-letter queue;
// - dead-letter entries near SQS's limits (10 attributes, 1 MiB) at the fast endpoint, which
//   enforces them (moto does not): each entry deadLetterEntry fits is accepted, one byte more is
//   refused, and the worker keeps or omits ErrorCode/ErrorMessage as docs/producers.md "Error codes" says.
import { SendMessageCommand, type MessageAttributeValue } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SQS_MAX_MESSAGE_BYTES } from '../../src/aws/sqs-rules.ts';
import { deadLetterEntry, sqsDeadLetterSender, type DeadLetterEntry } from '../../src/worker/dead-letter.ts';
import { startFastAws, type FastAws } from '../support/fast-aws.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { jpegImage } from '../support/images.ts';
import { inlineJob, issuedNow, outcomes, queueHolds, sendJob } from '../support/jobs.ts';
import { createStack, drainQueue, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { until } from '../support/wait.ts';
import { stackEnv, startWorker, workerReaper } from '../support/worker-process.ts';

const emulator = inject('emulator');
const workers = workerReaper();
afterAll(() => workers.killAll());

const string = (value: string): MessageAttributeValue => ({ DataType: 'String', StringValue: value });

describe('outcomes', () => {
  it('carry the message attributes status and, when it is known, jobId', async () => {
    // Prepare
    const stack = await createStack(emulator.endpoint, uniqueName('outcome-attrs'));
    workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
    const good = inlineJob('olga', [await jpegImage()], 'attrs-good');

    // Act
    await sendJob(stack, good);
    await sendJob(stack, { version: 1, jobId: 'attrs-bad', userId: 'olga', issuedAt: issuedNow(), images: [] });
    await sendJob(stack, 'not json at all');
    const messages = await drainQueue(stack.sqs, stack.resultQueueUrl ?? '', { expected: 3, timeoutMs: 30_000 });

    // Assess: the attributes say what the body says.
    const seen = messages.map((m) => {
      const body = JSON.parse(m.Body ?? 'null') as { jobId: string | null; status: string };
      return { body: [body.status, body.jobId], attributes: m.MessageAttributes };
    });
    expect(seen.sort((a, b) => String(a.body[1]).localeCompare(String(b.body[1])))).toEqual([
      { body: ['failed', 'attrs-bad'], attributes: { status: expect.objectContaining(string('failed')), jobId: expect.objectContaining(string('attrs-bad')) } },
      { body: ['succeeded', 'attrs-good'], attributes: { status: expect.objectContaining(string('succeeded')), jobId: expect.objectContaining(string('attrs-good')) } },
      { body: ['failed', null], attributes: { status: expect.objectContaining(string('failed')) } },
    ]);
  });
});

describe('the dead-letter queue', () => {
  it('is DEAD_LETTER_QUEUE_URL when it is set, even beside a redrive policy', async () => {
    // Prepare: a jobs queue redriven to its own dead-letter queue, and another queue configured.
    const stack = await createStack(emulator.endpoint, uniqueName('dlq-override'));
    const other = await createStack(emulator.endpoint, uniqueName('dlq-other'), { withDeadLetterQueue: false, withResultQueue: false, withStaging: false });
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { DEAD_LETTER_QUEUE_URL: other.jobsQueueUrl })));

    // Act
    const messageId = await sendJob(stack, { version: 1, jobId: 'override', userId: 'pia', issuedAt: issuedNow(), images: [] });
    const [outcome] = await outcomes(stack, 1);
    const configured = await drainQueue(stack.sqs, other.jobsQueueUrl, { expected: 1, timeoutMs: 10_000 });
    const fromPolicy = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { timeoutMs: 2_000 });

    // Assess
    expect(worker.logs.find((l) => l.msg === 'ready: receiving jobs')).toMatchObject({ deadLetterQueue: other.jobsQueueUrl, deadLetterSource: 'DEAD_LETTER_QUEUE_URL', maxReceiveCount: 5 });
    expect(outcome).toMatchObject({ messageId, status: 'failed', error: { code: 'INVALID_MESSAGE' } });
    expect(configured.map((m) => m.MessageAttributes?.ErrorCode?.StringValue)).toEqual(['INVALID_MESSAGE']);
    expect(fromPolicy).toEqual([]);
  });
});

describe('RETRIES_EXHAUSTED from a live redrive policy', () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    proxy = await startFaultProxy(emulator.endpoint);
  });
  afterAll(() => proxy.close());

  it('publishes a failed outcome on the last attempt the policy allows, and the queue moves the message to its dead-letter queue', async () => {
    // Prepare: maxReceiveCount 2, and every write of a reference answered 503.
    // (Once the worker is ready: its start-up probe of the reference bucket is a conditional PUT too.)
    const stack = await createStack(emulator.endpoint, uniqueName('exhausted'), { maxReceiveCount: 2 });
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url })));
    proxy.setRule((req) => (req.method === 'PUT' && req.path.startsWith(`/${stack.bucket}/`) ? { kind: 'status', status: 503 } : undefined));
    const job = inlineJob('quentin', [await jpegImage()], 'always-503');

    // Act
    const messageId = await sendJob(stack, job);
    const [outcome] = await outcomes(stack, 1, 60_000);
    const moved = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 1, timeoutMs: 60_000 });
    const depth = await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 }, 30_000);

    // Assess
    expect(outcome).toMatchObject({
      messageId,
      jobId: 'always-503',
      userId: 'quentin',
      status: 'failed',
      error: { code: 'RETRIES_EXHAUSTED', message: expect.stringMatching(/^gave up after 2 attempts: /) },
    });
    const retries = worker.logs.filter((l) => l.jobId === 'always-503' && l.outcome === 'retry');
    expect(retries.map((l) => [l.receiveCount, l.lastAttempt, l.reason])).toEqual([
      [1, false, 'server'],
      [2, true, 'server'],
    ]);
    // Moved by the queue, not sent by the worker: the body as sent, and no ErrorCode of ours.
    expect(moved.map((m) => m.Body)).toEqual([JSON.stringify(job)]);
    expect(moved[0]?.MessageAttributes?.ErrorCode).toBeUndefined();
    expect(depth).toEqual({ visible: 0, inFlight: 0 });
    expect(await listKeys(stack.s3, stack.bucket)).toEqual([]);
    expect(worker.logs.some((l) => l.jobId === 'always-503' && l.msg === 'job failed')).toBe(false);
  });
});

describe("dead-letter entries near SQS's limits, at the fast endpoint (which enforces them)", () => {
  let fast: FastAws;
  let stack: Stack;
  beforeAll(async () => {
    fast = await startFastAws({ delayMs: 0 });
    stack = await createStack(fast.endpoint, uniqueName('dlq-limits'));
  });
  afterAll(async () => {
    await workers.killAll();
    await fast.stop();
  });

  const ERROR = { code: 'INVALID_IMAGE', message: 'images[0] is not a JPEG or PNG image' } as const;
  // "ErrorCode" "String" "INVALID_IMAGE" + "ErrorMessage" "String": what the error takes besides its message.
  const ERROR_OVERHEAD = 9 + 6 + 13 + 12 + 6;

  /** Sends an entry as the worker does; resolves to the endpoint's refusal, or undefined. */
  const refusalOf = async (entry: Pick<DeadLetterEntry, 'body' | 'attributes'>) => {
    const send = sqsDeadLetterSender(stack.sqs, stack.deadLetterQueueUrl ?? '');
    return send({ ...entry, droppedAttributes: [], errorOmitted: false }).then(
      () => undefined,
      (e: unknown) => (e instanceof Error ? e.message : String(e)),
    );
  };
  const withOneMoreByte = (entry: DeadLetterEntry, name: string): DeadLetterEntry => {
    const value = entry.attributes[name];
    return { ...entry, attributes: { ...entry.attributes, [name]: { DataType: value?.DataType ?? 'String', StringValue: `${value?.StringValue ?? ''}x` } } };
  };

  it.each([
    ['room for 20 bytes of ErrorMessage', 20],
    ['room for 4 bytes (the shortest message)', 4],
    ['room for 3 bytes (ErrorCode alone)', 3],
    ['no room for ErrorMessage', 0],
  ])('accepts what deadLetterEntry makes with %s', async (_what, room) => {
    // Prepare
    const message = { MessageId: 'm', Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - ERROR_OVERHEAD - room) };

    // Act
    const entry = deadLetterEntry(message, ERROR);

    // Assess
    expect(await refusalOf(entry)).toBeUndefined();
    expect(entry.attributes.ErrorCode?.StringValue).toBe(ERROR.code);
  });

  it('fills the room to the byte: the entry is exactly 1 MiB, and one byte more is refused', async () => {
    // Prepare: beside the body, a String attribute (11 + 6 + 55 bytes) and a Binary one (4 + 6 +
    // 1,000 raw bytes); the body, partly 2-byte characters, leaves about 20 bytes for ErrorMessage.
    const attributes = {
      traceparent: string('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
      blob: { DataType: 'Binary', BinaryValue: new Uint8Array(1000).fill(7) },
    };
    const body = `${'é'.repeat(1000)}${'x'.repeat(SQS_MAX_MESSAGE_BYTES - 72 - 1010 - ERROR_OVERHEAD - 20 - 2000)}`;

    // Act
    const entry = deadLetterEntry({ MessageId: 'm', Body: body, MessageAttributes: attributes }, ERROR);

    // Assess: cut short (so the room was tight), accepted, and not one byte to spare.
    expect(entry.attributes.ErrorMessage?.StringValue).toMatch(/^images\[0\].*…$/);
    expect(await refusalOf(entry)).toBeUndefined();
    expect(await refusalOf(withOneMoreByte(entry, 'ErrorMessage'))).toMatch(/Message must be shorter than 1048576 bytes/);
  });

  it('omits the error attributes when even ErrorCode does not fit, and SQS would refuse it', async () => {
    // Prepare
    const message = { MessageId: 'm', Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - 20) };

    // Act
    const entry = deadLetterEntry(message, ERROR);

    // Assess
    expect(entry.errorOmitted).toBe(true);
    expect(await refusalOf(entry)).toBeUndefined();
    expect(await refusalOf({ ...entry, attributes: { ErrorCode: string(ERROR.code) } })).toMatch(/Message must be shorter than 1048576 bytes/);
  });

  it('keeps 10 attributes: 8 of the job\'s, by name, and the two of the error; 11 would be refused', async () => {
    // Prepare
    const attributes = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`a${String(i).padStart(2, '0')}`, i % 3 === 0 ? { DataType: 'Number', StringValue: String(i) } : string(`v${i}`)]));

    // Act
    const entry = deadLetterEntry({ MessageId: 'm', Body: '{}', MessageAttributes: attributes }, ERROR);

    // Assess
    expect(Object.keys(entry.attributes)).toHaveLength(10);
    expect(entry.droppedAttributes).toEqual(['a08', 'a09']);
    expect(await refusalOf(entry)).toBeUndefined();
    expect(await refusalOf({ ...entry, attributes: { ...entry.attributes, a08: string('v8') } })).toMatch(/exceeds the allowed maximum \[10\]/);
  });

  it('the worker dead-letters a job with 10 attributes, and one of nearly 1 MiB, as docs/producers.md says: attributes dropped, ErrorCode kept or omitted, each named in its log line', async () => {
    // Prepare
    const worker = workers.track(await startWorker(stackEnv(stack, fast.imdsEndpoint)));
    const attributes = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`attr${i}`, string(`value ${i}`)]));
    const nearLimit = JSON.stringify({ version: 1, jobId: 'near-limit', userId: 'rita', issuedAt: issuedNow(), images: [], pad: '' });
    const padded = nearLimit.replace('"pad":""', `"pad":"${'p'.repeat(SQS_MAX_MESSAGE_BYTES - Buffer.byteLength(nearLimit) - 10)}"`);
    const roomy = JSON.stringify({ version: 1, jobId: 'roomy', userId: 'rita', issuedAt: issuedNow(), images: [], pad: 'p'.repeat(SQS_MAX_MESSAGE_BYTES - 400) });

    // Act
    await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.jobsQueueUrl, MessageBody: '{"not": "a job"}', MessageAttributes: attributes }));
    await sendJob(stack, padded);
    await sendJob(stack, roomy);
    const results = await outcomes(stack, 3, 30_000);
    const dead = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 3, timeoutMs: 30_000 });

    // Assess: every entry accepted on the first try (no retry), each as docs/producers.md "Error codes" says.
    expect(results.map((o) => o.status)).toEqual(['failed', 'failed', 'failed']);
    expect(worker.logs.filter((l) => l.outcome === 'retry')).toEqual([]);
    const byBody = new Map(dead.map((m) => [m.Body, m.MessageAttributes ?? {}]));
    expect(Object.keys(byBody.get('{"not": "a job"}') ?? {}).sort()).toEqual(['ErrorCode', 'ErrorMessage', ...Array.from({ length: 8 }, (_, i) => `attr${i}`)].sort());
    expect(byBody.get(padded)).toEqual({});
    expect(byBody.get(roomy)?.ErrorCode?.StringValue).toBe('INVALID_MESSAGE');
    expect(byBody.get(roomy)?.ErrorMessage?.StringValue).toBeDefined();
    const failedLines = worker.logs.filter((l) => l.msg === 'job failed');
    expect(failedLines.filter((l) => Array.isArray(l.droppedAttributes))).toEqual([expect.objectContaining({ code: 'INVALID_MESSAGE', droppedAttributes: ['attr8', 'attr9'] })]);
    expect(failedLines.find((l) => l.jobId === 'near-limit')).toMatchObject({ code: 'INVALID_MESSAGE', errorAttributesOmitted: true });
    expect(failedLines.find((l) => l.jobId === 'roomy')).not.toHaveProperty('errorAttributesOmitted');
  });
});
