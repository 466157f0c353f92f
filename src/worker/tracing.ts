/**
 * Tracing (docs/operations.md "Tracing"): one span per job, parented by the producer's context, a child span per
 * phase, and the SDK's own S3/SQS calls under the phase they are made in (src/aws/call-spans.ts).
 * Off unless OTEL_TRACES_EXPORTER=otlp; then spans go to an OTLP/HTTP receiver through a bounded
 * queue that drops when full, so a receiver that is down costs spans, never a job.
 *
 * With export off, nothing of the SDK runs, but the producer's context still does two things: its
 * trace id goes on the job's log lines, and it is passed on, unchanged, to the outcome and the
 * dead-letter entry — so correlation never needs a collector.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Message } from '@aws-sdk/client-sqs';
import { createTraceState, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { CallSpans } from '../aws/call-spans.ts';
import { queueIdentity } from '../aws/sqs-rules.ts';
import type { TracingConfig } from '../config.ts';
import { producerContextOf, type ProducerContext } from '../job/trace-context.ts';

/** How a job ended, for its span. */
export interface JobEnd {
  /** succeeded, failed, retry (a timed-out job too), released. */
  readonly verdict: string;
  readonly code?: string | undefined;
  readonly references?: number | undefined;
  readonly jobId?: string | null | undefined;
  /** The job failed (a permanent failure, or a retry of one): its span is marked as an error. */
  readonly error?: string | undefined;
}

/** The outgoing context: what an outcome and a dead-letter entry carry on. */
export interface OutgoingContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
  readonly traceState: string | undefined;
}

/** One job's part in a trace. */
export interface JobTrace {
  /** `trace_id` (and `span_id` when tracing is on) for every log line of the job. */
  readonly logFields: Readonly<Record<string, string>>;
  /** The job span's context, or the producer's when tracing is off; undefined when there is neither. */
  readonly outgoing: OutgoingContext | undefined;
  /** The job enters a phase: the previous phase's span ends, this one's starts. */
  phase(name: string): void;
  /** Runs `work` with this job current: the SDK calls made in it get spans under its phase. */
  run<T>(work: () => T): T;
  /** The verdict is known: the spans end. */
  end(result: JobEnd): void;
}

export interface Tracing {
  /** True when spans are exported. */
  readonly exporting: boolean;
  /** The tracer and the parent of an SDK call made now, for the SDK clients' call spans. */
  readonly calls: CallSpans | undefined;
  forMessage(message: Message): JobTrace;
  /** Exports what is queued, within `deadline` (epoch ms), then stops the exporter. Never throws. */
  shutdown(deadline: number): Promise<void>;
}

const untraced: JobTrace = {
  logFields: {},
  outgoing: undefined,
  phase: () => {},
  run: (work) => work(),
  end: () => {},
};

/** Export off: only the producer's context, passed through. */
function passThrough(context: ProducerContext): JobTrace {
  return { ...untraced, logFields: { trace_id: context.traceId }, outgoing: context };
}

/** A malformed header is said once per process per kind (a producer's bug repeats on every job). */
function malformedWarner(log: Logger): (kind: string, messageId: string | undefined) => void {
  const said = new Set<string>();
  return (kind, messageId) => {
    if (said.has(kind)) return;
    said.add(kind);
    log.warn({ header: kind, messageId }, `a malformed ${kind} was ignored (the job runs without the producer's trace); said once per process`);
  };
}

const phaseOrJob = (job: Span, phase: Span | undefined): Context => trace.setSpan(ROOT_CONTEXT, phase ?? job);

function remoteParent(context: ProducerContext | undefined): Context {
  if (!context) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: context.traceId,
    spanId: context.spanId,
    traceFlags: context.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
    ...(context.traceState ? { traceState: createTraceState(context.traceState) } : {}),
  });
}

/** The process span's attributes: OpenTelemetry's messaging conventions for SQS. */
function messageAttributes(message: Message, queueUrl: string, queueName: string): Attributes {
  const receiveCount = Number(message.Attributes?.ApproximateReceiveCount);
  const group = message.Attributes?.MessageGroupId;
  return {
    'messaging.system': 'aws_sqs',
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.destination.name': queueName,
    'aws.sqs.queue.url': queueUrl,
    'messaging.message.id': message.MessageId ?? '',
    'messaging.message.body.size': Buffer.byteLength(message.Body ?? ''),
    ...(Number.isFinite(receiveCount) ? { 'messaging.aws_sqs.receive_count': receiveCount } : {}),
    ...(group !== undefined ? { 'messaging.aws_sqs.message_group_id': group } : {}),
  };
}

function tracedJob(tracer: Tracer, store: AsyncLocalStorage<JobSpans>, message: Message, producer: ProducerContext | undefined, queue: { url: string; name: string }): JobTrace {
  const job = tracer.startSpan(`process ${queue.name}`, { kind: SpanKind.CONSUMER, attributes: messageAttributes(message, queue.url, queue.name) }, remoteParent(producer));
  const own = job.spanContext();
  const spans: JobSpans = { job, phase: undefined, phaseName: undefined, ended: false };
  return {
    logFields: { trace_id: own.traceId, span_id: own.spanId },
    outgoing: { traceId: own.traceId, spanId: own.spanId, sampled: (own.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED, traceState: producer?.traceState },
    phase(name) {
      // Once settling has begun, the work of a timed-out job may still move on: its phases no longer count.
      if (spans.ended || spans.phaseName === name || spans.phaseName === 'outcome') return;
      spans.phase?.end();
      spans.phaseName = name;
      spans.phase = tracer.startSpan(name, { kind: SpanKind.INTERNAL }, trace.setSpan(ROOT_CONTEXT, job));
    },
    run: (work) => store.run(spans, work),
    end(result) {
      if (spans.ended) return;
      spans.ended = true;
      spans.phase?.end();
      job.setAttributes({
        'enrollment.verdict': result.verdict,
        ...(result.jobId ? { 'enrollment.job_id': result.jobId } : {}),
        ...(result.code ? { 'enrollment.error_code': result.code, 'error.type': result.code } : {}),
        ...(result.references !== undefined ? { 'enrollment.references': result.references } : {}),
      });
      if (result.error !== undefined) job.setStatus({ code: SpanStatusCode.ERROR, message: result.error });
      job.end();
    },
  };
}

interface JobSpans {
  readonly job: Span;
  phase: Span | undefined;
  phaseName: string | undefined;
  ended: boolean;
}

/**
 * Tracing as configured. With export on, the OpenTelemetry SDK and its exporters are loaded now
 * (src/worker/tracing-export.ts); off, they are never loaded (~27 MiB of RSS and ~80 ms at start).
 */
export async function createTracing(config: TracingConfig, queueUrl: string, log: Logger): Promise<Tracing> {
  const warnMalformed = malformedWarner(log);
  const read = (message: Message) => {
    const { context, malformed } = producerContextOf(message);
    if (malformed) warnMalformed(malformed, message.MessageId);
    return context;
  };
  if (config.exporter === 'none') {
    return {
      exporting: false,
      calls: undefined,
      forMessage: (message) => {
        const context = read(message);
        return context ? passThrough(context) : untraced;
      },
      shutdown: async () => {},
    };
  }
  const { startExport } = await import('./tracing-export.ts');
  const exporting = startExport(config, log);
  const store = new AsyncLocalStorage<JobSpans>();
  const queue = { url: queueUrl, name: queueIdentity(queueUrl)?.name ?? queueUrl };
  return {
    exporting: true,
    calls: {
      tracer: exporting.tracer,
      parent: () => {
        const spans = store.getStore();
        return spans && !spans.ended ? phaseOrJob(spans.job, spans.phase) : undefined;
      },
    },
    forMessage: (message) => tracedJob(exporting.tracer, store, message, read(message), queue),
    shutdown: (deadline) => exporting.shutdown(deadline),
  };
}
