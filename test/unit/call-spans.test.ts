// A span per S3/SQS call of a job (src/aws/call-spans.ts), made by the worker's real clients
// talking to a loopback server, into the OpenTelemetry SDK's in-memory exporter: its name, kind,
// parent and attributes, the error it records, and none for a call made outside a job.
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { context, SpanKind, SpanStatusCode, trace, type Context } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { traceCalls } from '../../src/aws/call-spans.ts';
import { s3Client, sqsClient } from '../../src/aws/clients.ts';
import { reply, startLoopbackHttp, type LoopbackHttp } from '../support/loopback-http.ts';
import { rejectionOf } from './helpers.ts';

const credentials = async () => ({ accessKeyId: 'test', secretAccessKey: 'test' });

let server: LoopbackHttp;
let exporter: InMemorySpanExporter;
let provider: TracerProvider;
let clients: { s3: S3Client; sqs: SQSClient };
let parent: Context | undefined;
let phase: ReturnType<ReturnType<TracerProvider['getTracer']>['startSpan']>;

beforeEach(async () => {
  server = await startLoopbackHttp((request, res) =>
    request.headers['x-amz-target'] === undefined
      ? reply(res, 200, { 'x-amz-request-id': 'S3-REQUEST-1', 'content-length': '0' })
      : reply(res, 200, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'SQS-REQUEST-1' }, '{"Attributes":{}}'),
  );
  exporter = new InMemorySpanExporter();
  provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const tracer = provider.getTracer('test');
  phase = tracer.startSpan('enroll.load');
  parent = trace.setSpan(context.active(), phase);
  clients = { s3: s3Client({ region: 'us-east-1', endpoint: server.endpoint }, credentials), sqs: sqsClient({ region: 'us-east-1', endpoint: server.endpoint }, credentials) };
  traceCalls(clients, { tracer, parent: () => parent });
});
afterEach(async () => {
  clients.s3.destroy();
  clients.sqs.destroy();
  await provider.shutdown();
  await server.close();
});

const headObject = () => clients.s3.send(new HeadObjectCommand({ Bucket: 'staging', Key: 'in/1' }));
const queueAttributes = () => clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: `${server.endpoint}/123456789012/jobs`, AttributeNames: ['All'] }));

describe('traceCalls', () => {
  it.each([
    ['S3', 'HeadObject', headObject, 'S3-REQUEST-1'],
    ['SQS', 'GetQueueAttributes', queueAttributes, 'SQS-REQUEST-1'],
  ] as const)('gives a %s call made in a job one client span under the phase, named by service and method', async (service, method, call, requestId) => {
    // Act
    await call();

    // Assess
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(1);
    expect(spans[0]?.name).toBe(`${service}.${method}`);
    expect(spans[0]?.kind).toBe(SpanKind.CLIENT);
    expect(spans[0]?.parentSpanContext?.spanId).toBe(phase.spanContext().spanId);
    expect(spans[0]?.spanContext().traceId).toBe(phase.spanContext().traceId);
    expect(spans[0]?.attributes).toStrictEqual({
      'rpc.system': 'aws-api',
      'rpc.service': service,
      'rpc.method': method,
      'aws.request_id': requestId,
      'http.response.status_code': 200,
    });
    expect(spans[0]?.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('leaves out the request id when the answer has none', async () => {
    // Prepare
    server.answerWith((_request, res) => reply(res, 200));

    // Act
    await headObject();

    // Assess
    expect(Object.keys(exporter.getFinishedSpans()[0]?.attributes ?? {})).not.toContain('aws.request_id');
    expect(exporter.getFinishedSpans()[0]?.attributes['http.response.status_code']).toBe(200);
  });

  it('records a failed call as an error named by the SDK, ends its span, and lets the error through', async () => {
    // Prepare
    server.answerWith((_request, res) =>
      reply(res, 403, { 'content-type': 'application/xml' }, '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>no</Message></Error>'),
    );

    // Act
    const error = await rejectionOf(() => clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: `${server.endpoint}/1/jobs` })));
    const headError = await rejectionOf(headObject);

    // Assess
    const [sqsSpan, s3Span] = exporter.getFinishedSpans();
    expect(error).toBeInstanceOf(Error);
    expect(headError).toMatchObject({ $metadata: { httpStatusCode: 403 } });
    expect(s3Span?.attributes['error.type']).toBe((headError as Error).name);
    expect(s3Span?.status).toEqual({ code: SpanStatusCode.ERROR, message: (headError as Error).name });
    expect(sqsSpan?.attributes['error.type']).toBe((error as Error).name);
    expect(sqsSpan?.status).toEqual({ code: SpanStatusCode.ERROR, message: (error as Error).name });
  });

  it('makes no span for a call made outside a job', async () => {
    // Prepare
    parent = undefined;

    // Act
    await headObject();
    await queueAttributes();

    // Assess
    expect(server.requests).toHaveLength(2);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
  });

  it('makes one span for a call, its retries included', async () => {
    // Prepare: a 503 first, then the answer
    server.answerWith((_request, res) => {
      if (server.requests.length === 1) return reply(res, 503);
      return reply(res, 200, { 'x-amz-request-id': 'S3-REQUEST-2' });
    });

    // Act
    await headObject();

    // Assess
    expect(server.requests).toHaveLength(2);
    expect(exporter.getFinishedSpans().map((s) => [s.name, s.attributes['aws.request_id']])).toEqual([['S3.HeadObject', 'S3-REQUEST-2']]);
  });
});
