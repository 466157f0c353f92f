// A tiny OTLP/HTTP traces receiver on loopback, standing in for the CloudWatch agent or an ADOT
// collector: it keeps what the worker exports. http/json is decoded into spans; http/protobuf is
// kept as bytes (a test checks it arrived and names the trace: ids travel as raw bytes in it), and
// `otlpProtobufSpans` decodes such a body into the same spans when a test needs to read them.
import { createServer, type Server } from 'node:http';
import { listenOnLoopback } from './wait.ts';

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };

/** One exported span, as OTLP/JSON gives it (ids in hex). */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Record<string, string | number | boolean | undefined>;
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  readonly status: number;
  readonly serviceName: string | undefined;
  /** The resource's attributes (service.name among them). */
  readonly resource: Record<string, string | number | boolean | undefined>;
  /** The instrumentation scope's name (the tracer's). */
  readonly scope: string | undefined;
}

export interface OtlpReceiver {
  /** The base URL (`http://127.0.0.1:PORT`), for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Bodies of http/protobuf requests. */
  readonly protobufBodies: Buffer[];
  /** Every request: its path and content type. */
  readonly requests: { path: string; contentType: string }[];
  close(): Promise<void>;
}

interface OtlpJson {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: AnyValue }[] };
    scopeSpans?: {
      scope?: { name?: string };
      spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: { key: string; value: AnyValue }[]; status?: { code?: number } }[];
    }[];
  }[];
}

function valueOf(v: AnyValue): string | number | boolean | undefined {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  return v.boolValue;
}

const attributesOf = (list: { key: string; value: AnyValue }[] = []) => Object.fromEntries(list.map((a) => [a.key, valueOf(a.value)]));

function spansOf(body: OtlpJson): ReceivedSpan[] {
  return (body.resourceSpans ?? []).flatMap((rs) => {
    const resource = attributesOf(rs.resource?.attributes);
    const serviceName = resource['service.name'];
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId || undefined,
        name: s.name,
        kind: s.kind,
        attributes: attributesOf(s.attributes),
        status: s.status?.code ?? 0,
        serviceName: typeof serviceName === 'string' ? serviceName : undefined,
        resource,
        scope: ss.scope?.name,
      })),
    );
  });
}

/** The spans of an http/json request body. */
export const otlpJsonSpans = (body: Buffer): ReceivedSpan[] => spansOf(JSON.parse(body.toString('utf8')) as OtlpJson);

/** One field of a protobuf message: its number and its value (a varint, or the bytes of any other wire type). */
interface WireField {
  readonly field: number;
  readonly value: bigint | Buffer;
}

/** The fields of one protobuf message, in order (the wire format: varints, fixed 32/64 bits, length-delimited). */
function wireFields(message: Buffer): WireField[] {
  const fields: WireField[] = [];
  let at = 0;
  const varint = (): bigint => {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = message[at++];
      if (byte === undefined) throw new Error('truncated protobuf varint');
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
  };
  const bytes = (n: number): Buffer => {
    if (at + n > message.length) throw new Error('truncated protobuf field');
    at += n;
    return message.subarray(at - n, at);
  };
  while (at < message.length) {
    const key = Number(varint());
    const wireType = key & 7;
    const field = key >>> 3;
    if (wireType === 0) fields.push({ field, value: varint() });
    else if (wireType === 1) fields.push({ field, value: bytes(8) });
    else if (wireType === 2) fields.push({ field, value: bytes(Number(varint())) });
    else if (wireType === 5) fields.push({ field, value: bytes(4) });
    else throw new Error(`protobuf wire type ${wireType} is not used by OTLP`);
  }
  return fields;
}

const messages = (fields: WireField[], field: number): Buffer[] => fields.flatMap((f) => (f.field === field && Buffer.isBuffer(f.value) ? [f.value] : []));
const varintOf = (fields: WireField[], field: number): bigint | undefined => fields.find((f) => f.field === field && typeof f.value === 'bigint')?.value as bigint | undefined;
const textOf = (fields: WireField[], field: number): string | undefined => messages(fields, field)[0]?.toString('utf8');
const hexOf = (fields: WireField[], field: number): string | undefined => (messages(fields, field)[0]?.length ? messages(fields, field)[0]?.toString('hex') : undefined);

/** OTLP's AnyValue: string 1, bool 2, int 3, double 4 (arrays and maps are not read). */
function protobufValue(value: WireField[]): string | number | boolean | undefined {
  const text = textOf(value, 1);
  if (text !== undefined) return text;
  const int = varintOf(value, 3);
  if (int !== undefined) return Number(BigInt.asIntN(64, int));
  const double = messages(value, 4)[0];
  if (double) return double.readDoubleLE();
  const bool = varintOf(value, 2);
  return bool === undefined ? undefined : bool === 1n;
}

/** OTLP's KeyValue list: key 1, AnyValue 2. */
function protobufAttributes(keyValues: Buffer[]): Record<string, string | number | boolean | undefined> {
  return Object.fromEntries(
    keyValues.map((kv) => {
      const fields = wireFields(kv);
      return [textOf(fields, 1) ?? '', protobufValue(wireFields(messages(fields, 2)[0] ?? Buffer.alloc(0)))];
    }),
  );
}

/**
 * The spans of an http/protobuf request body (ExportTraceServiceRequest: resource_spans 1 → resource 1,
 * scope_spans 2 → scope 1, spans 2; a span's trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6,
 * attributes 9, status 15 → code 3).
 */
export function otlpProtobufSpans(body: Buffer): ReceivedSpan[] {
  return messages(wireFields(body), 1).flatMap((resourceSpans) => {
    const rs = wireFields(resourceSpans);
    const resource = protobufAttributes(messages(wireFields(messages(rs, 1)[0] ?? Buffer.alloc(0)), 1));
    const serviceName = resource['service.name'];
    return messages(rs, 2).flatMap((scopeSpans) => {
      const ss = wireFields(scopeSpans);
      const scope = textOf(wireFields(messages(ss, 1)[0] ?? Buffer.alloc(0)), 1);
      return messages(ss, 2).map((span) => {
        const s = wireFields(span);
        return {
          traceId: hexOf(s, 1) ?? '',
          spanId: hexOf(s, 2) ?? '',
          parentSpanId: hexOf(s, 4),
          name: textOf(s, 5) ?? '',
          kind: Number(varintOf(s, 6) ?? 0n),
          attributes: protobufAttributes(messages(s, 9)),
          status: Number(varintOf(wireFields(messages(s, 15)[0] ?? Buffer.alloc(0)), 3) ?? 0n),
          serviceName: typeof serviceName === 'string' ? serviceName : undefined,
          resource,
          scope,
        };
      });
    });
  });
}

/** `keep: false`: a sink that answers and keeps nothing (the benchmark's). */
export async function startOtlpReceiver(options: { keep?: boolean } = {}): Promise<OtlpReceiver> {
  const { keep = true } = options;
  const spans: ReceivedSpan[] = [];
  const protobufBodies: Buffer[] = [];
  const requests: { path: string; contentType: string }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const contentType = req.headers['content-type'] ?? '';
      if (!keep) {
        res.writeHead(200).end();
        return;
      }
      requests.push({ path: req.url ?? '', contentType });
      if (contentType.includes('json')) {
        spans.push(...otlpJsonSpans(body));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } else {
        protobufBodies.push(body);
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      }
    });
  });
  const endpoint = await listenOnLoopback(server);
  return {
    endpoint,
    spans,
    protobufBodies,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A receiver that takes connections and never answers: the worst an exporter can meet. */
export async function startSilentReceiver(): Promise<{ endpoint: string; close(): Promise<void> }> {
  const server = createServer(() => {
    // never answers
  });
  const endpoint = await listenOnLoopback(server);
  return {
    endpoint,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
