// The OpenTelemetry SDK side of tracing (src/worker/tracing-export.ts) with the real SDK and a loopback
// OTLP receiver (test/support/loopback-http.ts) that answers, refuses or holds each export: the
// exporters and where they post, the resource, every sampler, the bounded batch queue, the SDK's
// complaints as rate-limited warning lines, and shutdown by its deadline.
import { diag, ROOT_CONTEXT, SpanKind, trace, TraceFlags, type Tracer } from '@opentelemetry/api';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseConfig, type TracingConfig } from '../../src/config.ts';
import { startExport } from '../../src/worker/tracing-export.ts';
import { reply, startLoopbackHttp, type Answer, type LoopbackHttp, type RecordedRequest } from '../support/loopback-http.ts';
import { otlpJsonSpans, otlpProtobufSpans, type ReceivedSpan } from '../support/otlp-receiver.ts';
import { until } from '../support/wait.ts';
import { env } from './config-fixtures.ts';
import { memoryLogger } from './helpers.ts';

const PATH = '/collector/v1/traces';
/** Never reached by the scheduled export in a test: spans leave only when a batch fills or at shutdown. */
const HELD = '600000';

/** Answers an export as a receiver that took it. */
const accept: Answer = (request, res) =>
  request.headers['content-type'] === 'application/json' ? reply(res, 200, { 'content-type': 'application/json' }, '{}') : reply(res, 200, { 'content-type': 'application/x-protobuf' });

const spansOf = (request: RecordedRequest): ReceivedSpan[] => (request.headers['content-type'] === 'application/json' ? otlpJsonSpans(request.body) : otlpProtobufSpans(request.body));

/** The tracing settings as parsed from the environment, exporting to `receiver` at a path of its own. */
const configFor = (receiver: LoopbackHttp, overrides: Record<string, string> = {}): TracingConfig =>
  parseConfig(
    env({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}${PATH}`,
      OTEL_BSP_SCHEDULE_DELAY: HELD,
      ...overrides,
    }),
  ).tracing;

const receivers: LoopbackHttp[] = [];
async function receiver(answer: Answer = accept): Promise<LoopbackHttp> {
  const started = await startLoopbackHttp(answer);
  receivers.push(started);
  return started;
}

afterEach(async () => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

const endSpans = (tracer: Tracer, count: number, prefix = 'span') => {
  for (let i = 0; i < count; i += 1) tracer.startSpan(`${prefix} ${i}`).end();
};

describe('startExport: where and how spans go', () => {
  it.each([
    ['http/json', 'application/json'],
    ['http/protobuf', 'application/x-protobuf'],
  ])('posts %s to the configured URL: the resource, the scope and each span', async (protocol, contentType) => {
    // Prepare
    const otlp = await receiver();
    const { log, lines } = memoryLogger();
    const { tracer, shutdown } = startExport(configFor(otlp, { OTEL_EXPORTER_OTLP_PROTOCOL: protocol }), log);

    // Act
    const job = tracer.startSpan('process enrollment-jobs', { kind: SpanKind.CONSUMER, attributes: { 'enrollment.verdict': 'succeeded', 'enrollment.references': 2 } });
    tracer.startSpan('download', {}, trace.setSpan(ROOT_CONTEXT, job)).end();
    job.end();
    await shutdown(Date.now() + 5_000);

    // Assess
    expect(otlp.requests.map((r) => [r.method, r.url, r.headers['content-type']])).toEqual([['POST', PATH, contentType]]);
    const spans = spansOf(otlp.requests[0] as RecordedRequest);
    const own = job.spanContext();
    expect(spans.map((s) => [s.name, s.kind, s.traceId, s.parentSpanId])).toEqual([
      ['download', 1, own.traceId, own.spanId],
      ['process enrollment-jobs', 5, own.traceId, undefined],
    ]);
    expect(spans[1]?.attributes).toEqual({ 'enrollment.verdict': 'succeeded', 'enrollment.references': 2 });
    for (const span of spans) expect(span).toMatchObject({ resource: { 'service.name': 'enrollment-worker' }, scope: 'enrollment-worker' });
    expect(lines()).toEqual([]);
  });

  it.each([
    ['neither', {}, undefined, { 'service.name': 'enrollment-worker' }],
    ['OTEL_RESOURCE_ATTRIBUTES only', {}, 'service.name=billing,deployment.environment=staging', { 'service.name': 'billing', 'deployment.environment': 'staging' }],
    ['OTEL_RESOURCE_ATTRIBUTES without a service.name', {}, 'deployment.environment=staging', { 'service.name': 'enrollment-worker', 'deployment.environment': 'staging' }],
    ['OTEL_SERVICE_NAME too', { OTEL_SERVICE_NAME: 'enrollment-eu' }, 'service.name=billing,deployment.environment=staging', { 'service.name': 'enrollment-eu', 'deployment.environment': 'staging' }],
  ])('names the service from the settings (%s)', async (_, settings, resourceAttributes, resource) => {
    // Prepare
    const otlp = await receiver();
    if (resourceAttributes !== undefined) vi.stubEnv('OTEL_RESOURCE_ATTRIBUTES', resourceAttributes);
    const { tracer, shutdown } = startExport(configFor(otlp, settings), memoryLogger().log);

    // Act
    endSpans(tracer, 1);
    await shutdown(Date.now() + 5_000);

    // Assess
    expect(spansOf(otlp.requests[0] as RecordedRequest).map((s) => s.resource)).toEqual([resource]);
  });
});

describe('startExport: samplers', () => {
  // A trace id's sampling under a ratio is decided by its bits: these two fall on either side of one half.
  const LOW = '00000000000000000000000000000001';
  const HIGH = 'ffffffff000000000000000000000000';
  const remote = (traceId: string, sampled: boolean) =>
    trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: '00f067aa0ba902b7', traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true });

  /** Whether a span is sampled: at the root, and under a remote parent that was or was not. */
  async function decisions(sampler: string, ratio: string) {
    const otlp = await receiver();
    const { tracer, shutdown } = startExport(configFor(otlp, { OTEL_TRACES_SAMPLER: sampler, OTEL_TRACES_SAMPLER_ARG: ratio }), memoryLogger().log);
    const sampled = (parent = ROOT_CONTEXT) => (tracer.startSpan('job', {}, parent).spanContext().traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
    const result = {
      // A root's trace id is random: its decision under a ratio between 0 and 1 is not asked.
      root: ratio === '0' || ratio === '1' ? sampled() : 'random',
      sampledParentHigh: sampled(remote(HIGH, true)),
      unsampledParentLow: sampled(remote(LOW, false)),
      unsampledParentHigh: sampled(remote(HIGH, false)),
    };
    await shutdown(Date.now() + 5_000);
    return result;
  }

  it.each([
    ['always_on', '0', { root: true, sampledParentHigh: true, unsampledParentLow: true, unsampledParentHigh: true }],
    ['always_off', '1', { root: false, sampledParentHigh: false, unsampledParentLow: false, unsampledParentHigh: false }],
    ['traceidratio', '0.5', { root: 'random', sampledParentHigh: false, unsampledParentLow: true, unsampledParentHigh: false }],
    ['traceidratio', '0', { root: false, sampledParentHigh: false, unsampledParentLow: false, unsampledParentHigh: false }],
    ['traceidratio', '1', { root: true, sampledParentHigh: true, unsampledParentLow: true, unsampledParentHigh: true }],
    ['parentbased_always_on', '0', { root: true, sampledParentHigh: true, unsampledParentLow: false, unsampledParentHigh: false }],
    ['parentbased_always_off', '1', { root: false, sampledParentHigh: true, unsampledParentLow: false, unsampledParentHigh: false }],
    ['parentbased_traceidratio', '0', { root: false, sampledParentHigh: true, unsampledParentLow: false, unsampledParentHigh: false }],
    ['parentbased_traceidratio', '1', { root: true, sampledParentHigh: true, unsampledParentLow: false, unsampledParentHigh: false }],
  ])('%s with the ratio %s samples as the specification says', async (sampler, ratio, expected) => {
    expect(await decisions(sampler, ratio)).toEqual(expected);
  });
});

describe('startExport: the batch queue', () => {
  it('holds at most OTEL_BSP_MAX_QUEUE_SIZE spans, drops the rest, and says how many when spans fit again', async () => {
    // Prepare: a queue of 3 is also a batch of 3
    const otlp = await receiver();
    const { log, lines } = memoryLogger();
    const { tracer, shutdown } = startExport(configFor(otlp, { OTEL_BSP_MAX_QUEUE_SIZE: '3' }), log);

    // Act: the third span fills a batch, which leaves at once; three more wait behind it, four are dropped
    endSpans(tracer, 10);
    const exported = await until('two batches', () => otlp.requests.length >= 2 && otlp.requests.flatMap(spansOf), 5_000);
    const quiet = lines();
    tracer.startSpan('after').end();
    await shutdown(Date.now() + 5_000);

    // Assess
    expect(exported.map((s) => s.name)).toEqual(['span 0', 'span 1', 'span 2', 'span 3', 'span 4', 'span 5']);
    expect(otlp.requests.flatMap(spansOf).map((s) => s.name)).toEqual([...exported.map((s) => s.name), 'after']);
    expect(quiet).toEqual([]);
    expect(lines()).toMatchObject([{ level: 'warn', tracing: 'Dropped 4 spans because maxQueueSize reached', suppressed: 0 }]);
  });

  it('exports a full batch of 512 at once, however long the schedule delay', async () => {
    // Prepare
    const otlp = await receiver();
    const { log, lines } = memoryLogger();
    const { tracer, shutdown } = startExport(configFor(otlp, { OTEL_BSP_MAX_QUEUE_SIZE: '1000' }), log);

    // Act
    endSpans(tracer, 513);
    const first = await otlp.received(1);
    await shutdown(Date.now() + 5_000);

    // Assess
    expect(spansOf(first)).toHaveLength(512);
    expect(otlp.requests.map((r) => spansOf(r).length)).toEqual([512, 1]);
    expect(lines()).toEqual([]);
  });

  it('exports after OTEL_BSP_SCHEDULE_DELAY without waiting for a full batch', async () => {
    // Prepare
    const otlp = await receiver();
    const { tracer, shutdown } = startExport(configFor(otlp, { OTEL_BSP_SCHEDULE_DELAY: '0' }), memoryLogger().log);

    // Act: the SDK's own delay (5 s) would outlast the wait
    endSpans(tracer, 1);
    const request = await until('the span to arrive', () => otlp.requests[0], 3_000);
    await shutdown(Date.now() + 5_000);

    // Assess
    expect(spansOf(request).map((s) => s.name)).toEqual(['span 0']);
  });
});

describe("startExport: the SDK's complaints", () => {
  it('are warning lines: the first at once, then at most one a minute with how many were held back', async () => {
    // Prepare: only the clock of the rate limit is fixed; the SDK's timers run as they do
    const otlp = await receiver();
    const { log, lines } = memoryLogger();
    const { shutdown } = startExport(configFor(otlp), log);
    const now = vi.spyOn(Date, 'now');
    const at = (ms: number, say: () => void) => {
      now.mockReturnValue(1_000_000 + ms);
      say();
    };

    // Act
    at(0, () => diag.error('export failed: 503'));
    at(1, () => diag.warn('Dropped 7 spans'));
    at(59_999, () => diag.error('export failed again'));
    at(59_999, () => diag.info('not a complaint'));
    at(60_000, () => diag.warn('x'.repeat(600)));
    at(60_001, () => diag.error('held back'));
    at(120_000, () => diag.error('a minute on'));
    now.mockRestore();
    await shutdown(Date.now() + 5_000);

    // Assess
    expect(lines().map((l) => [l.level, l.tracing, l.suppressed])).toEqual([
      ['warn', 'export failed: 503', 0],
      ['warn', 'x'.repeat(500), 2],
      ['warn', 'a minute on', 1],
    ]);
  });

  it('replace those of an earlier export without a word about it', async () => {
    // Prepare
    const otlp = await receiver();
    const earlier = memoryLogger();
    const later = memoryLogger();
    const first = startExport(configFor(otlp), earlier.log);

    // Act
    const second = startExport(configFor(otlp), later.log);
    diag.error('export failed');
    await Promise.all([first.shutdown(Date.now() + 5_000), second.shutdown(Date.now() + 5_000)]);

    // Assess
    expect(earlier.lines()).toEqual([]);
    expect(later.lines().map((l) => l.tracing)).toEqual(['export failed']);
  });
});

describe('startExport: shutdown', () => {
  it('exports what is queued, waiting for the receiver until the deadline, and says nothing when it answered, nor leaves a timer running', async () => {
    // Prepare: the receiver holds its answer until the test has seen the request
    let answer: (() => void) | undefined;
    const otlp = await receiver((request, res) => {
      answer = () => accept(request, res);
    });
    const { log, lines } = memoryLogger();
    const { tracer, shutdown } = startExport(configFor(otlp), log);
    endSpans(tracer, 2);

    const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
    const before = timers();

    // Act
    const done = shutdown(Date.now() + 10_000);
    await otlp.received(1);
    answer?.();
    await done;

    // Assess
    expect(spansOf(otlp.requests[0] as RecordedRequest).map((s) => s.name)).toEqual(['span 0', 'span 1']);
    expect(lines()).toEqual([]);
    // A timer left for the deadline would hold the event loop open until then.
    expect(timers()).toBeLessThanOrEqual(before);
  });

  it('warns with the error when the receiver refuses the last spans, and does not throw', async () => {
    // Prepare
    const otlp = await receiver((_, res) => reply(res, 400, { 'content-type': 'text/plain' }, 'no'));
    const { log, lines } = memoryLogger();
    const { tracer, shutdown } = startExport(configFor(otlp), log);
    endSpans(tracer, 1);

    // Act
    await shutdown(Date.now() + 5_000);

    // Assess
    expect(otlp.requests).toHaveLength(1);
    expect(lines()).toMatchObject([{ level: 'warn', msg: 'tracing: the last spans could not be exported', err: { name: 'OTLPExporterError', message: expect.stringContaining('Bad Request') } }]);
  });

  it('gives up on a receiver that never answers at the deadline, with a warning, and does not throw', async () => {
    // Prepare
    const otlp = await receiver(() => {
      // never answers
    });
    const { log, lines } = memoryLogger();
    const { tracer, shutdown } = startExport(configFor(otlp), log);
    endSpans(tracer, 1);

    // Act
    const deadline = Date.now() + 300;
    await shutdown(deadline);

    // Assess
    await otlp.received(1);
    expect(lines()).toMatchObject([{ level: 'warn', msg: 'tracing: the last spans were not exported within the drain timeout; they are dropped' }]);
  });
});
