// A tiny OTLP/HTTP traces receiver on loopback, standing in for the CloudWatch agent or an ADOT
// collector: it keeps what the worker exports. http/json is decoded into spans; http/protobuf is
// kept as bytes (a test checks it arrived and names the trace: ids travel as raw bytes in it).
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
    const serviceName = attributesOf(rs.resource?.attributes)['service.name'];
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
      })),
    );
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
        spans.push(...spansOf(JSON.parse(body.toString('utf8')) as OtlpJson));
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
