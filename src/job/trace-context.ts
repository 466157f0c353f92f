/**
 * The producer's trace context as a message carries it, read without trusting it: the W3C
 * `traceparent` / `tracestate` message attributes, else the `AWSTraceHeader` system attribute SQS
 * sets from X-Ray. A malformed value is reported (the caller warns once per process) and ignored:
 * telemetry never fails a job. Part of the message contract (docs/operations.md "Tracing"): pure, no SDK.
 */

/** A message attribute as SQS gives and takes it (the fields read here). */
export interface TraceAttribute {
  DataType: string | undefined;
  StringValue?: string | undefined;
}

/** What is read of a received message: its attributes and system attributes. */
export interface TracedMessage {
  readonly MessageAttributes?: Readonly<Record<string, { DataType?: string | undefined; StringValue?: string | undefined }>> | undefined;
  readonly Attributes?: Readonly<Partial<Record<string, string>>> | undefined;
}

export const TRACEPARENT_ATTRIBUTE = 'traceparent';
export const TRACESTATE_ATTRIBUTE = 'tracestate';
export const AWS_TRACE_HEADER = 'AWSTraceHeader';

/** The message attributes the worker reads and writes for tracing (docs/operations.md "Tracing"). */
export const TRACE_ATTRIBUTES = [TRACEPARENT_ATTRIBUTE, TRACESTATE_ATTRIBUTE] as const;

export interface ProducerContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
  /** W3C tracestate, passed on as received (only with a valid traceparent). */
  readonly traceState: string | undefined;
  readonly source: 'traceparent' | 'AWSTraceHeader';
}

export interface ReadContext {
  readonly context: ProducerContext | undefined;
  /** Which header was present but malformed (and ignored). */
  readonly malformed: 'traceparent' | 'AWSTraceHeader' | undefined;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZEROES = /^0+$/;
// tracestate: at most 32 list members, 512 characters in all (W3C's limits), printable ASCII.
const TRACESTATE = /^[\x20-\x7e]{0,512}$/;
const TRACESTATE_MAX_MEMBERS = 32;

function stringAttribute(attributes: TracedMessage['MessageAttributes'], name: string): string | undefined {
  const value = attributes?.[name];
  return value?.DataType?.startsWith('String') ? value.StringValue : undefined;
}

/** W3C Trace Context level 1: version 00 exactly; a later version is read by its first four fields. */
export function parseTraceparent(value: string, traceState?: string): ProducerContext | undefined {
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (ZEROES.test(traceId) || ZEROES.test(spanId)) return undefined;
  const state = traceState !== undefined && TRACESTATE.test(traceState) && traceState.split(',').length <= TRACESTATE_MAX_MEMBERS ? traceState.trim() : undefined;
  return { traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1, traceState: state || undefined, source: 'traceparent' };
}

/**
 * X-Ray's header, e.g. `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`:
 * the W3C trace id is the root's epoch and random parts joined. A header without a parent cannot
 * parent a span and is refused.
 */
export function parseAwsTraceHeader(value: string): ProducerContext | undefined {
  const fields = new Map<string, string>();
  for (const part of value.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const root = /^1-([0-9a-f]{8})-([0-9a-f]{24})$/.exec(fields.get('Root') ?? '');
  const parent = fields.get('Parent') ?? '';
  if (!root || !/^[0-9a-f]{16}$/.test(parent)) return undefined;
  const traceId = `${root[1]}${root[2]}`;
  if (ZEROES.test(traceId) || ZEROES.test(parent)) return undefined;
  return { traceId, spanId: parent, sampled: fields.get('Sampled') === '1', traceState: undefined, source: 'AWSTraceHeader' };
}

/** The producer's context of a received message: `traceparent` first, else `AWSTraceHeader`. */
export function producerContextOf(message: TracedMessage): ReadContext {
  let malformed: ReadContext['malformed'];
  const traceparent = stringAttribute(message.MessageAttributes, TRACEPARENT_ATTRIBUTE);
  if (traceparent !== undefined) {
    const context = parseTraceparent(traceparent, stringAttribute(message.MessageAttributes, TRACESTATE_ATTRIBUTE));
    if (context) return { context, malformed: undefined };
    malformed = 'traceparent';
  }
  const header = message.Attributes?.[AWS_TRACE_HEADER];
  if (header !== undefined) {
    const context = parseAwsTraceHeader(header);
    if (context) return { context, malformed };
    malformed ??= 'AWSTraceHeader';
  }
  return { context: undefined, malformed };
}

/** A `traceparent` value (version 00). */
export function formatTraceparent(context: { traceId: string; spanId: string; sampled: boolean }): string {
  return `00-${context.traceId}-${context.spanId}-${context.sampled ? '01' : '00'}`;
}

/** The trace attributes of an outgoing message (an outcome, a dead-letter entry). */
export function traceAttributes(context: { traceId: string; spanId: string; sampled: boolean; traceState?: string | undefined } | undefined): Record<string, TraceAttribute> {
  if (!context) return {};
  return {
    [TRACEPARENT_ATTRIBUTE]: { DataType: 'String', StringValue: formatTraceparent(context) },
    ...(context.traceState ? { [TRACESTATE_ATTRIBUTE]: { DataType: 'String', StringValue: context.traceState } } : {}),
  };
}
