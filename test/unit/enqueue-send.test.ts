// The producer's calls (src/producer/enqueue.ts: enqueueJob, waitForOutcome) against the in-process
// endpoint (test/support/fast-aws.ts): what reaches SQS and S3 — the body, its attributes, a
// message group, staged images — and how an outcome is found among others on the result queue. The
// pure parts (buildJob, planStaging, checkMessageGroupId) are in enqueue.test.ts; the CLI around
// them in commands.test.ts.
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { context, propagation, ROOT_CONTEXT, trace, type Context, type ContextManager } from '@opentelemetry/api';
import { TraceState, W3CTraceContextPropagator } from '@opentelemetry/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signJob } from '../../src/job/signature.ts';
import { buildSignedJob, enqueueJob, waitForOutcome, type EnqueueDeps } from '../../src/producer/enqueue.ts';
import { sha256Hex } from '../support/bytes.ts';
import { startFastAws, type FastAws } from '../support/fast-aws.ts';
import { createStack, drainQueue, uniqueName, type Stack } from '../support/resources.ts';

const MIB = 1_048_576;
const KEY = 'k'.repeat(32);

let aws: FastAws;
beforeAll(async () => {
  aws = await startFastAws({ delayMs: 0 });
});
afterAll(async () => {
  await aws.stop();
});

/** The input of every command the client sends, in order (the real SDK sends them on). */
function recordInputs(client: SQSClient): Array<{ command: string; input: Record<string, unknown> }> {
  const sent: Array<{ command: string; input: Record<string, unknown> }> = [];
  client.middlewareStack.add(
    (next, ctx) => async (args) => {
      sent.push({ command: String(ctx.commandName), input: args.input as Record<string, unknown> });
      return next(args);
    },
    { step: 'initialize', name: 'recordInputs' },
  );
  return sent;
}

function depsFor(stack: Stack, overrides: Partial<EnqueueDeps> = {}): EnqueueDeps {
  return { sqs: stack.sqs, s3: stack.s3, queueUrl: stack.jobsQueueUrl, stagingBucket: stack.stagingBucket, stagingPrefix: 'incoming/', ...overrides };
}

describe('enqueueJob', () => {
  it('sends a small job inline, unsigned and without attributes, and returns the message id SQS gave', async () => {
    // Prepare
    const stack = await createStack(aws.endpoint, uniqueName('enqueue-inline'));
    const sent = recordInputs(stack.sqs);
    const photo = Buffer.from('a small photo');

    // Act
    const enqueued = await enqueueJob({ jobId: 'job-inline', userId: 'alice', images: [photo] }, depsFor(stack));
    const [message] = await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 1, timeoutMs: 5_000 });

    // Assess
    expect(enqueued).toEqual({ jobId: 'job-inline', messageId: message?.MessageId, staged: [], signed: false });
    expect(enqueued.messageId).not.toBe('');
    expect(JSON.parse(message?.Body ?? '')).toMatchObject({ version: 1, jobId: 'job-inline', userId: 'alice', images: [{ data: photo.toString('base64') }] });
    expect(message?.MessageAttributes).toBeUndefined();
    const send = sent.find((s) => s.command === 'SendMessageCommand')?.input;
    expect(Object.keys(send ?? {}).sort()).toEqual(['MessageBody', 'QueueUrl']);
  });

  it('signs the exact body it sends when given a key, and gives each job a fresh id when none is given', async () => {
    // Prepare
    const stack = await createStack(aws.endpoint, uniqueName('enqueue-signed'));

    // Act
    const first = await enqueueJob({ userId: 'bob', images: [Buffer.from('x')] }, depsFor(stack, { signingKey: KEY }));
    const second = await enqueueJob({ userId: 'bob', images: [Buffer.from('x')] }, depsFor(stack, { signingKey: KEY }));
    const messages = await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 2, timeoutMs: 5_000 });

    // Assess
    expect([first.signed, second.signed]).toEqual([true, true]);
    expect(first.jobId).not.toBe(second.jobId);
    expect(messages).toHaveLength(2);
    for (const message of messages) {
      expect(message.MessageAttributes?.Signature?.StringValue).toBe(signJob(message.Body ?? '', KEY));
    }
    expect(messages.map((m) => (JSON.parse(m.Body ?? '') as { jobId: string }).jobId).sort()).toEqual([first.jobId, second.jobId].sort());
  });

  it('stages only the images that do not fit, under the prefix and the job id, with their SHA-256 in the job', async () => {
    // Prepare: two images over the inline budget together; the larger is staged, the smaller stays inline.
    const stack = await createStack(aws.endpoint, uniqueName('enqueue-staged'));
    const small = Buffer.alloc(300_000, 1);
    const large = Buffer.alloc(600_000, 2);

    // Act
    const enqueued = await enqueueJob({ jobId: 'job-staged', userId: 'carol', images: [small, large] }, depsFor(stack));
    const [message] = await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 1, timeoutMs: 5_000 });
    const object = await stack.s3.send(new GetObjectCommand({ Bucket: stack.stagingBucket, Key: 'incoming/job-staged/1' }));

    // Assess
    expect(enqueued.staged).toEqual(['incoming/job-staged/1']);
    expect(JSON.parse(message?.Body ?? '')).toMatchObject({
      images: [{ data: small.toString('base64') }, { s3: { bucket: stack.stagingBucket, key: 'incoming/job-staged/1', sha256: sha256Hex(large) } }],
    });
    expect(Buffer.from(await object.Body!.transformToByteArray()).equals(large)).toBe(true);
    expect(aws.requests['s3:PutObject']).toBeGreaterThanOrEqual(1);
  });

  it('refuses images too large to send inline when there is no staging bucket, and sends nothing', async () => {
    // Prepare
    const stack = await createStack(aws.endpoint, uniqueName('enqueue-nostage'), { withStaging: false });
    const sent = recordInputs(stack.sqs);

    // Act
    const refused = enqueueJob({ userId: 'dave', images: [Buffer.alloc(MIB)] }, depsFor(stack));

    // Assess
    await expect(refused).rejects.toThrow('the images are too large to send inline (1 MiB per message): set STAGING_BUCKET to stage them in S3');
    expect(sent).toEqual([]);
  });

  it('sends the message group it is given, and refuses a malformed one before sending anything', async () => {
    // Prepare
    const stack = await createStack(aws.endpoint, uniqueName('enqueue-group'));
    const sent = recordInputs(stack.sqs);

    // Act
    await enqueueJob({ jobId: 'job-group', userId: 'erin', images: [Buffer.from('x')], messageGroupId: 'tenant-7' }, depsFor(stack));
    const refused = enqueueJob({ userId: 'erin', images: [Buffer.from('x')], messageGroupId: 'has space' }, depsFor(stack));

    // Assess
    await expect(refused).rejects.toThrow(/message group id must be 1-128/);
    expect(sent.map((s) => [s.command, s.input.MessageGroupId])).toEqual([['SendMessageCommand', 'tenant-7']]);
  });

  it('sends the trace it is given as the job\u2019s traceparent and tracestate', async () => {
    // Prepare
    const stack = await createStack(aws.endpoint, uniqueName('enqueue-trace'));
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

    // Act
    await enqueueJob({ userId: 'fay', images: [Buffer.from('x')], trace: { traceparent, tracestate: 'vendor=1' } }, depsFor(stack));
    const [message] = await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 1, timeoutMs: 5_000 });

    // Assess
    expect(message?.MessageAttributes?.traceparent?.StringValue).toBe(traceparent);
    expect(message?.MessageAttributes?.tracestate?.StringValue).toBe('vendor=1');
  });
});

describe('buildSignedJob: the caller\u2019s active trace', () => {
  // A context manager that always answers one context: enough for the synchronous call under test.
  const fixed = (active: Context): ContextManager => ({
    active: () => active,
    with: (_ctx, fn, thisArg, ...args) => fn.apply(thisArg, args),
    bind: (_ctx, target) => target,
    enable() {
      return this;
    },
    disable() {
      return this;
    },
  });
  const spanContext = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 };

  afterEach(() => {
    context.disable();
    propagation.disable();
  });

  it('continues the active span\u2019s trace through the global W3C propagator, tracestate included', () => {
    // Prepare
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    context.setGlobalContextManager(fixed(trace.setSpanContext(ROOT_CONTEXT, { ...spanContext, traceState: new TraceState('vendor=2') })));

    // Act
    const { messageAttributes } = buildSignedJob({ userId: 'gus', images: [Buffer.from('x')] }, undefined);

    // Assess
    expect(messageAttributes).toEqual({
      traceparent: { DataType: 'String', StringValue: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
      tracestate: { DataType: 'String', StringValue: 'vendor=2' },
    });
  });

  it('sends no tracestate when the active trace has none, and nothing at all without a span', () => {
    // Prepare
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    context.setGlobalContextManager(fixed(trace.setSpanContext(ROOT_CONTEXT, spanContext)));

    // Act
    const withSpan = buildSignedJob({ userId: 'gus', images: [Buffer.from('x')] }, undefined).messageAttributes;
    context.disable();
    context.setGlobalContextManager(fixed(ROOT_CONTEXT));
    const withoutSpan = buildSignedJob({ userId: 'gus', images: [Buffer.from('x')] }, undefined).messageAttributes;

    // Assess
    expect(Object.keys(withSpan)).toEqual(['traceparent']);
    expect(withoutSpan).toEqual({});
  });

  it('quotes at most 80 characters of a malformed traceparent in its refusal', () => {
    // Prepare
    const malformed = `00-${'z'.repeat(120)}`;

    // Act / Assess
    expect(() => buildSignedJob({ userId: 'gus', images: [Buffer.from('x')], trace: { traceparent: malformed } }, undefined)).toThrow(
      `not a W3C traceparent: ${JSON.stringify(malformed.slice(0, 80))}`,
    );
  });
});

describe('waitForOutcome', () => {
  /** Puts an outcome (or any message) on the result queue, with the jobId attribute when given. */
  async function putOutcome(stack: Stack, body: string, jobId?: string, attributes: Record<string, string> = {}) {
    const all = { ...attributes, ...(jobId === undefined ? {} : { jobId }) };
    await stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: stack.resultQueueUrl,
        MessageBody: body,
        ...(Object.keys(all).length > 0 ? { MessageAttributes: Object.fromEntries(Object.entries(all).map(([k, v]) => [k, { DataType: 'String', StringValue: v }])) } : {}),
      }),
    );
  }

  it('finds its job\u2019s outcome past others (with no attributes, or other ones), deletes it and leaves the rest', async () => {
    // Prepare
    const stack = await createStack(aws.endpoint, uniqueName('outcome-find'));
    const queue = stack.resultQueueUrl?.split('/').at(-1) ?? '';
    await putOutcome(stack, '{"jobId":"other"}', 'job-other');
    await putOutcome(stack, 'not an outcome');
    await putOutcome(stack, '{"note":1}', undefined, { source: 'elsewhere' });
    await putOutcome(stack, '{"jobId":"job-mine","status":"succeeded"}', 'job-mine');
    const sent = recordInputs(stack.sqs);

    // Act
    const outcome = await waitForOutcome(stack.sqs, stack.resultQueueUrl ?? '', 'job-mine', 60_000);

    // Assess: found in the first receive, which long-polls 5 s at most and hides the others 5 s.
    expect(outcome).toEqual({ jobId: 'job-mine', status: 'succeeded' });
    expect(sent[0]?.input).toMatchObject({ MaxNumberOfMessages: 10, WaitTimeSeconds: 5, VisibilityTimeout: 5, MessageAttributeNames: ['jobId'] });
    expect(sent.map((s) => s.command)).toEqual(['ReceiveMessageCommand', 'DeleteMessageCommand']);
    expect(aws.queueDepth(queue)).toEqual({ visible: 0, inFlight: 3, delayed: 0 });
  });

  it('long-polls no longer than the time left (at least 1 s) and gives up with nothing at the deadline', async () => {
    // Prepare
    const stack = await createStack(aws.endpoint, uniqueName('outcome-none'));
    await putOutcome(stack, '{"jobId":"other"}', 'job-other');
    const sent = recordInputs(stack.sqs);

    // Act
    const started = Date.now();
    const outcome = await waitForOutcome(stack.sqs, stack.resultQueueUrl ?? '', 'job-missing', 1_200);

    // Assess: the other job's outcome came first, then empty polls of 1 s until the deadline.
    expect(outcome).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_200);
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(sent.every((s) => s.command === 'ReceiveMessageCommand' && s.input.WaitTimeSeconds === 1)).toBe(true);
  });
});
