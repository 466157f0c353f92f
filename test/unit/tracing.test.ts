// Tracing with export off (the default): no SDK runs, but the producer's context is passed through
// to the log fields and the outgoing messages, and a malformed header is warned about once. With
// export on, the spans of a job as a loopback OTLP receiver (test/support/otlp-receiver.ts) gets them.
import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.ts';
import { createTracing } from '../../src/worker/tracing.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.ts';
import { until } from '../support/wait.ts';
import { ENV, env, QUEUE } from './config-fixtures.ts';
import { memoryLogger, sqsMessage, stringAttribute } from './helpers.ts';

const OFF = parseConfig(ENV).tracing;
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('createTracing with export off', () => {
  it("passes the producer's context through: its trace id for the logs, its traceparent for the outcome", async () => {
    // Prepare
    const { log } = memoryLogger();
    const tracing = await createTracing(OFF, QUEUE, log);

    // Act
    const job = tracing.forMessage(sqsMessage({ MessageAttributes: { traceparent: stringAttribute(TRACEPARENT), tracestate: stringAttribute('a=b') } }));

    // Assess
    expect(tracing).toMatchObject({ exporting: false, calls: undefined });
    expect(job.logFields).toEqual({ trace_id: '4bf92f3577b34da6a3ce929d0e0e4736' });
    expect(job.outgoing).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', sampled: true, traceState: 'a=b' });
    expect(job.run(() => 42)).toBe(42);
  });

  it('gives a message without a trace no fields and nothing to pass on', async () => {
    const job = (await createTracing(OFF, QUEUE, memoryLogger().log)).forMessage(sqsMessage());
    expect(job.logFields).toEqual({});
    expect(job.outgoing).toBeUndefined();
  });

  it('warns once per process per kind of malformed header, naming the header but not its value', async () => {
    // Prepare
    const { log, lines } = memoryLogger();
    const tracing = await createTracing(OFF, QUEUE, log);

    // Act
    for (let i = 0; i < 3; i += 1) tracing.forMessage(sqsMessage({ MessageAttributes: { traceparent: stringAttribute(`secret-${i}`) } }));
    tracing.forMessage(sqsMessage({ Attributes: { AWSTraceHeader: 'Root=junk' } }));

    // Assess
    expect(lines().map((l) => [l.level, l.header])).toEqual([
      ['warn', 'traceparent'],
      ['warn', 'AWSTraceHeader'],
    ]);
    expect(JSON.stringify(lines())).not.toContain('secret-');
  });
});

describe('createTracing with export on', () => {
  let receiver: OtlpReceiver;
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
  });
  afterAll(async () => {
    await receiver.close();
  });

  const exporting = (overrides: Record<string, string> = {}) =>
    parseConfig(env({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '0', ...overrides })).tracing;

  it("exports a consumer span per job under the producer's, a span per phase, and the verdict on the job's span", async () => {
    // Prepare
    const { log } = memoryLogger();
    const tracing = await createTracing(exporting({ OTEL_SERVICE_NAME: 'enrollment-test' }), QUEUE, log);
    const message = sqsMessage({ MessageId: 'm-42', Body: 'abc', Attributes: { ApproximateReceiveCount: '3' }, MessageAttributes: { traceparent: stringAttribute(TRACEPARENT), tracestate: stringAttribute('a=b') } });

    // Act
    const job = tracing.forMessage(message);
    job.phase('download');
    job.phase('download');
    const parent = job.run(() => tracing.calls?.parent());
    job.phase('decode');
    job.phase('outcome');
    job.phase('store'); // a timed-out job's work moving on once settling began: not counted
    job.end({ verdict: 'failed', jobId: 'job-7', code: 'INVALID_IMAGE', error: 'not an image' });
    job.end({ verdict: 'succeeded' });
    job.phase('late');
    const outside = tracing.calls?.parent();
    await tracing.shutdown(Date.now() + 5_000);
    const spans = await until('the spans to arrive', () => (receiver.spans.length >= 4 ? receiver.spans : undefined), 5_000);

    // Assess
    expect(tracing.exporting).toBe(true);
    expect(outside).toBeUndefined();
    expect(parent && trace.getSpan(parent)?.spanContext().spanId).toBe(spans.find((s) => s.name === 'download')?.spanId);
    const jobSpan = spans.find((s) => s.name === 'process enrollment-jobs');
    expect(spans.map((s) => s.name).sort()).toEqual(['decode', 'download', 'outcome', 'process enrollment-jobs']);
    expect(jobSpan).toMatchObject({
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      parentSpanId: '00f067aa0ba902b7',
      kind: 5,
      status: 2,
      serviceName: 'enrollment-test',
      attributes: {
        'messaging.system': 'aws_sqs',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': 'enrollment-jobs',
        'aws.sqs.queue.url': QUEUE,
        'messaging.message.id': 'm-42',
        'messaging.message.body.size': 3,
        'messaging.aws_sqs.receive_count': 3,
        'enrollment.verdict': 'failed',
        'enrollment.job_id': 'job-7',
        'enrollment.error_code': 'INVALID_IMAGE',
        'error.type': 'INVALID_IMAGE',
      },
    });
    for (const phase of spans.filter((s) => s !== jobSpan)) expect(phase).toMatchObject({ parentSpanId: jobSpan?.spanId, kind: 1, traceId: jobSpan?.traceId });
    expect(job.logFields).toEqual({ trace_id: jobSpan?.traceId, span_id: jobSpan?.spanId });
    expect(job.outgoing).toEqual({ traceId: jobSpan?.traceId, spanId: jobSpan?.spanId, sampled: true, traceState: 'a=b' });
  });

  it('roots a job without a producer trace, leaves its status unset on success, and samples as told', async () => {
    // Prepare
    const before = receiver.spans.length;
    const tracing = await createTracing(exporting(), QUEUE, memoryLogger().log);
    const off = await createTracing(exporting({ OTEL_TRACES_SAMPLER: 'always_off' }), QUEUE, memoryLogger().log);

    // Act
    const job = tracing.forMessage(sqsMessage({ Attributes: {} }));
    job.end({ verdict: 'succeeded', jobId: 'job-8', references: 2 });
    const dropped = off.forMessage(sqsMessage());
    dropped.end({ verdict: 'succeeded' });
    await Promise.all([tracing.shutdown(Date.now() + 5_000), off.shutdown(Date.now() + 5_000)]);
    const spans = await until('the span to arrive', () => (receiver.spans.length > before ? receiver.spans.slice(before) : undefined), 5_000);

    // Assess
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({ parentSpanId: undefined, status: 0, serviceName: 'enrollment-worker', attributes: { 'enrollment.verdict': 'succeeded', 'enrollment.references': 2 } });
    expect(spans[0]?.attributes).not.toHaveProperty('messaging.aws_sqs.receive_count');
    expect(spans[0]?.attributes).not.toHaveProperty('error.type');
    expect(dropped.outgoing?.sampled).toBe(false);
    expect(job.outgoing?.traceState).toBeUndefined();
  });
});
