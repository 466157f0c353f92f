// Tracing end to end (docs/operations.md "Tracing"): the built worker exports to an OTLP/HTTP receiver of this
// test's own on loopback.
// - a job sent with a traceparent: a process span in that trace with the messaging conventions'
//   attributes, phase spans under it and S3/SQS call spans under those, an outcome whose traceparent
//   is in the same trace, and trace_id/span_id on every log line of the job;
// - a job with only AWSTraceHeader: the X-Ray trace id mapped; malformed headers: the job succeeds,
//   one warning per process; a failed job: its span is an error and its dead-letter entry carries
//   the job's traceparent; MessageGroupId on the job's log lines;
// - http/protobuf arrives too; with export off the producer's trace id is still logged and passed on;
// - a receiver that never answers changes no outcome and does not hold the drain past its timeout.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SendMessageCommand, type Message, type MessageAttributeValue } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { jpegImage } from '../support/images.ts';
import { inlineJob, issuedNow, outcomes, sendJob } from '../support/jobs.ts';
import { startOtlpReceiver, startSilentReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.ts';
import { createStack, drainQueue, uniqueName, type Stack } from '../support/resources.ts';
import { until } from '../support/wait.ts';
import { spawnCli, stackEnv, startWorker, workerReaper, type LogLine, type WorkerProcess } from '../support/worker-process.ts';

const emulator = inject('emulator');
const workers = workerReaper();
afterAll(() => workers.killAll());

const string = (value: string): MessageAttributeValue => ({ DataType: 'String', StringValue: value });
const hex = (bytes: number) => Buffer.from(Array.from({ length: bytes }, () => Math.floor(Math.random() * 256))).toString('hex');
const traceparentOf = (m: Message) => m.MessageAttributes?.traceparent?.StringValue ?? '';
const traceIdOf = (traceparent: string) => traceparent.split('-')[1];

/** Sends a job with system attributes (AWSTraceHeader) and a message group, as a producer would. */
async function sendWithSystemAttributes(stack: Stack, body: unknown, awsTraceHeader: string): Promise<string> {
  const sent = await stack.sqs.send(
    new SendMessageCommand({
      QueueUrl: stack.jobsQueueUrl,
      MessageBody: JSON.stringify(body),
      MessageSystemAttributes: { AWSTraceHeader: string(awsTraceHeader) },
    }),
  );
  return sent.MessageId ?? '';
}

/** The job's log lines: every line that names its message id or its job id. */
const linesOf = (worker: WorkerProcess, messageId: string, jobId: string): LogLine[] => worker.logs.filter((l) => l.messageId === messageId || l.jobId === jobId);

describe('tracing exported over OTLP/HTTP (http/json)', () => {
  let receiver: OtlpReceiver;
  let stack: Stack;
  let worker: WorkerProcess;
  const producerTrace = hex(16);
  const producerSpan = hex(8);

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    stack = await createStack(emulator.endpoint, uniqueName('trace-json'));
    worker = workers.track(
      await startWorker(
        stackEnv(stack, emulator.imdsEndpoint, {
          OTEL_TRACES_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
          OTEL_SERVICE_NAME: 'enrollment-worker-test',
          OTEL_BSP_SCHEDULE_DELAY: '100',
        }),
      ),
    );
  });
  afterAll(async () => {
    await worker.stop();
    await receiver.close();
  });

  /** Waits for the process span of the job sent as `messageId`, and for its children to be exported. */
  async function processSpan(messageId: string, children: readonly string[] = []): Promise<ReceivedSpan> {
    return until(
      `the process span of ${messageId} and its ${children.join(', ')} spans`,
      () => {
        const span = receiver.spans.find((s) => s.attributes['messaging.message.id'] === messageId);
        if (!span) return undefined;
        const names = new Set(receiver.spans.filter((s) => s.parentSpanId === span.spanId).map((s) => s.name));
        return children.every((c) => names.has(c)) && span;
      },
      30_000,
      { detail: () => `spans so far: ${receiver.spans.map((s) => s.name).join(', ')}` },
    );
  }

  it("puts a job in the producer's trace: a process span with the messaging attributes, phase and S3/SQS spans, the outcome's traceparent, trace_id on every log line", async () => {
    // Prepare
    const job = inlineJob('tina', [await jpegImage()], `traced-${hex(4)}`);

    // Act
    const messageId = await sendJob(stack, job, { traceparent: string(`00-${producerTrace}-${producerSpan}-01`), tracestate: string('vendor=1') });
    const [outcome] = await drainQueue(stack.sqs, stack.resultQueueUrl ?? '', { expected: 1, timeoutMs: 30_000 });
    const span = await processSpan(messageId, ['download', 'decode', 'write', 'outcome']);

    // Assess: the process span continues the producer's trace, with the conventions' attributes.
    expect(span).toMatchObject({ traceId: producerTrace, parentSpanId: producerSpan, kind: 5, status: 0, name: expect.stringMatching(/^process /), serviceName: 'enrollment-worker-test' });
    expect(span.attributes).toMatchObject({
      'messaging.system': 'aws_sqs',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': stack.jobsQueueUrl.split('/').at(-1),
      'messaging.message.id': messageId,
      'messaging.aws_sqs.receive_count': 1,
      'enrollment.verdict': 'succeeded',
      'enrollment.job_id': job.jobId,
      'enrollment.references': 1,
    });
    // Phases under it, the SDK's calls under the phases.
    const phases = new Map(receiver.spans.filter((s) => s.parentSpanId === span.spanId).map((s) => [s.name, s]));
    const callsUnder = (phase: string) => receiver.spans.filter((s) => s.parentSpanId === phases.get(phase)?.spanId).map((s) => s.name);
    await until('the S3 and SQS call spans', () => callsUnder('write').includes('S3.PutObject') && callsUnder('outcome').some((n) => n.startsWith('SQS.')), 15_000);
    const put = receiver.spans.find((s) => s.name === 'S3.PutObject' && s.parentSpanId === phases.get('write')?.spanId);
    expect(put).toMatchObject({ traceId: producerTrace, kind: 3, attributes: expect.objectContaining({ 'rpc.system': 'aws-api', 'rpc.service': 'S3', 'rpc.method': 'PutObject' }) });
    // The outcome carries the job span's context on: same trace, the job span as parent.
    expect(JSON.parse(outcome?.Body ?? '{}')).toMatchObject({ status: 'succeeded', jobId: job.jobId });
    expect(traceparentOf(outcome as Message)).toBe(`00-${producerTrace}-${span.spanId}-01`);
    expect(outcome?.MessageAttributes?.tracestate?.StringValue).toBe('vendor=1');
    // Every log line of the job joins the trace.
    const lines = linesOf(worker, messageId, job.jobId);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((l) => l.trace_id !== producerTrace || l.span_id !== span.spanId)).toEqual([]);
  });

  it('maps the X-Ray trace of a job that has only AWSTraceHeader', async () => {
    // Prepare
    const epoch = Math.floor(Date.now() / 1000).toString(16);
    const random = hex(12);
    const parent = hex(8);
    const job = inlineJob('xena', [await jpegImage()], `xray-${hex(4)}`);

    // Act
    const messageId = await sendWithSystemAttributes(stack, job, `Root=1-${epoch}-${random};Parent=${parent};Sampled=1`);
    const [outcome] = await drainQueue(stack.sqs, stack.resultQueueUrl ?? '', { expected: 1, timeoutMs: 30_000 });
    const span = await processSpan(messageId);

    // Assess
    expect(span).toMatchObject({ traceId: `${epoch}${random}`, parentSpanId: parent });
    expect(traceIdOf(traceparentOf(outcome as Message))).toBe(`${epoch}${random}`);
    expect(linesOf(worker, messageId, job.jobId).every((l) => l.trace_id === `${epoch}${random}`)).toBe(true);
  });

  it('runs jobs whose trace headers are malformed, and warns once per process', async () => {
    // Prepare
    const jobs = await Promise.all(['m1', 'm2'].map(async (id) => inlineJob('mona', [await jpegImage()], `malformed-${id}-${hex(4)}`)));

    // Act
    await sendJob(stack, jobs[0], { traceparent: string('00-not-a-trace-01') });
    await sendWithSystemAttributes(stack, jobs[1], 'Root=garbage;Sampled=1');
    await sendJob(stack, inlineJob('mona', [await jpegImage()], `malformed-m3-${hex(4)}`), { traceparent: string(`00-${'0'.repeat(32)}-${hex(8)}-01`) });
    const received = await outcomes(stack, 3);

    // Assess: all succeeded; one warning per kind of header, not one per job.
    expect(received.map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const warnings = worker.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('a malformed '));
    expect(warnings.map((w) => w.header).sort()).toEqual(['AWSTraceHeader', 'traceparent']);
  });

  it("marks a failed job's span as an error and puts its traceparent on the dead-letter entry; logs MessageGroupId", async () => {
    // Prepare: a job with no images (INVALID_MESSAGE), in a message group.
    const traceId = hex(16);
    const jobId = `bad-${hex(4)}`;

    // Act
    const sent = await stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: stack.jobsQueueUrl,
        MessageBody: JSON.stringify({ version: 1, jobId, userId: 'bob', issuedAt: issuedNow(), images: [] }),
        MessageAttributes: { traceparent: string(`00-${traceId}-${hex(8)}-01`), Custom: string('kept') },
        MessageGroupId: 'tenant-a',
      }),
    );
    const messageId = sent.MessageId ?? '';
    const [entry] = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 1, timeoutMs: 30_000 });
    await outcomes(stack, 1);
    const span = await processSpan(messageId);

    // Assess
    expect(span).toMatchObject({ traceId, status: 2, attributes: expect.objectContaining({ 'enrollment.verdict': 'failed', 'enrollment.error_code': 'INVALID_MESSAGE' }) });
    expect(traceparentOf(entry as Message)).toBe(`00-${traceId}-${span.spanId}-01`);
    expect(entry?.MessageAttributes?.Custom?.StringValue).toBe('kept');
    const lines = linesOf(worker, messageId, jobId);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => l.trace_id === traceId && l.messageGroupId === 'tenant-a')).toBe(true);
  });
});

describe('tracing over http/protobuf, and with export off', () => {
  it('exports protobuf spans of the trace', async () => {
    // Prepare
    const receiver = await startOtlpReceiver();
    const stack = await createStack(emulator.endpoint, uniqueName('trace-proto'));
    const worker = workers.track(
      await startWorker(stackEnv(stack, emulator.imdsEndpoint, { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/custom/path` })),
    );
    const traceId = hex(16);

    // Act
    await sendJob(stack, inlineJob('pia', [await jpegImage()]), { traceparent: string(`00-${traceId}-${hex(8)}-01`) });
    await outcomes(stack, 1);
    await worker.stop();

    // Assess: protobuf at the signal's own URL, naming the trace (ids are raw bytes in it).
    await receiver.close();
    expect(receiver.requests.length).toBeGreaterThan(0);
    expect(receiver.requests.every((r) => r.path === '/custom/path' && r.contentType === 'application/x-protobuf')).toBe(true);
    expect(receiver.protobufBodies.some((b) => b.includes(Buffer.from(traceId, 'hex')))).toBe(true);
  });
});

describe('tracing off (the default)', () => {
  it("logs the producer's trace id on the job's lines and passes its traceparent on unchanged", async () => {
    // Prepare
    const stack = await createStack(emulator.endpoint, uniqueName('trace-off'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
    const job = inlineJob('otto', [await jpegImage()]);
    const traceparent = `00-${hex(16)}-${hex(8)}-01`;

    // Act
    const messageId = await sendJob(stack, job, { traceparent: string(traceparent) });
    const [outcome] = await drainQueue(stack.sqs, stack.resultQueueUrl ?? '', { expected: 1, timeoutMs: 30_000 });

    // Assess
    expect(traceparentOf(outcome as Message)).toBe(traceparent);
    const lines = linesOf(worker, messageId, job.jobId);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((l) => l.trace_id !== traceIdOf(traceparent) || 'span_id' in l)).toEqual([]);
  });

  it('enqueue --message-group-id --traceparent: the worker logs the tenant and the trace', async () => {
    // Prepare
    const stack = await createStack(emulator.endpoint, uniqueName('trace-cli'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
    const dir = await mkdtemp(join(tmpdir(), 'enqueue-'));
    await writeFile(join(dir, 'face.jpg'), await jpegImage());
    const traceparent = `00-${hex(16)}-${hex(8)}-01`;

    // Act
    const cli = spawnCli(['enqueue', '--user', 'gina', '--job-id', 'grouped-1', '--message-group-id', 'tenant-b', '--traceparent', traceparent, '--no-wait', join(dir, 'face.jpg')], stackEnv(stack, emulator.imdsEndpoint));
    const exit = await cli.exited;
    const done = await worker.waitForLog((l) => l.msg === 'job succeeded' && l.jobId === 'grouped-1');

    // Assess
    expect(exit.code, cli.text.join('\n')).toBe(0);
    expect(done).toMatchObject({ messageGroupId: 'tenant-b', trace_id: traceIdOf(traceparent) });
  });
});

describe('an OTLP receiver that never answers', () => {
  it('changes no outcome, and the drain does not wait for it past DRAIN_TIMEOUT_SECONDS', async () => {
    // Prepare: the exporter would wait 60 s for an answer; the drain has 2 s.
    const silent = await startSilentReceiver();
    const stack = await createStack(emulator.endpoint, uniqueName('trace-silent'));
    const worker = workers.track(
      await startWorker(
        stackEnv(stack, emulator.imdsEndpoint, {
          OTEL_TRACES_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_ENDPOINT: silent.endpoint,
          OTEL_EXPORTER_OTLP_TIMEOUT: '60000',
          DRAIN_TIMEOUT_SECONDS: '2',
          POLL_WAIT_SECONDS: '1',
        }),
      ),
    );
    const good = inlineJob('sam', [await jpegImage()]);

    // Act
    await sendJob(stack, good, { traceparent: string(`00-${hex(16)}-${hex(8)}-01`) });
    await sendJob(stack, { version: 1, jobId: 'silent-bad', userId: 'sam', issuedAt: issuedNow(), images: [] });
    const received = await outcomes(stack, 2);
    // A stop that waited for the exporter would outlast this wait (60 s) and the forced-exit guard.
    const exit = await worker.stop('SIGTERM', 30_000);
    await silent.close();

    // Assess
    expect(received.map((o) => [o.jobId, o.status]).sort()).toEqual([
      [good.jobId, 'succeeded'],
      ['silent-bad', 'failed'],
    ]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(worker.logs.some((l) => l.msg === 'tracing: the last spans were not exported within the drain timeout; they are dropped')).toBe(true);
    expect(worker.logs.some((l) => l.msg === 'stopped')).toBe(true);
  });
});
