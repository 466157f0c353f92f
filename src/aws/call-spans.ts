/**
 * A span for each S3/SQS call a job makes, under the phase it is made in: one small middleware on
 * the SDK clients, added only when tracing is on (so with tracing off the clients are exactly as
 * before). One span per call, retries included. Calls made outside a job (the receive loop, the
 * heartbeat) get none; a batched call gets its span under the job whose entry opened the batch.
 *
 * Why not @opentelemetry/instrumentation-aws-sdk: it patches modules as they load (an ESM loader
 * hook for this build), makes its own receive spans, and injects `traceparent` into every
 * SendMessage it sees — attributes the worker budgets itself (docs/operations.md "Tracing").
 */
import type { S3Client, ServiceInputTypes as S3Input, ServiceOutputTypes as S3Output } from '@aws-sdk/client-s3';
import type { SQSClient, ServiceInputTypes as SQSInput, ServiceOutputTypes as SQSOutput } from '@aws-sdk/client-sqs';
import type { InitializeMiddleware } from '@aws-sdk/types';
import { SpanKind, SpanStatusCode, type Context, type Tracer } from '@opentelemetry/api';

export interface CallSpans {
  readonly tracer: Tracer;
  /** The parent of a call made now (the job's phase), or undefined: no span. */
  readonly parent: () => Context | undefined;
}

function errorName(e: unknown): string {
  return e instanceof Error ? e.name : 'Error';
}

/** What every SDK output says of its request. */
function metadataOf(output: object): { requestId?: string; httpStatusCode?: number } | undefined {
  return '$metadata' in output ? (output.$metadata as { requestId?: string; httpStatusCode?: number }) : undefined;
}

function callSpanMiddleware<I extends object, O extends object>(service: 'S3' | 'SQS', spans: CallSpans): InitializeMiddleware<I, O> {
  return (next, context) => async (args) => {
    const parent = spans.parent();
    if (parent === undefined) return next(args);
    const method = (context.commandName ?? 'Unknown').replace(/Command$/, '');
    const span = spans.tracer.startSpan(
      `${service}.${method}`,
      { kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'aws-api', 'rpc.service': service, 'rpc.method': method } },
      parent,
    );
    try {
      const result = await next(args);
      const metadata = metadataOf(result.output);
      if (metadata?.requestId) span.setAttribute('aws.request_id', metadata.requestId);
      if (metadata?.httpStatusCode !== undefined) span.setAttribute('http.response.status_code', metadata.httpStatusCode);
      return result;
    } catch (e: unknown) {
      span.setAttribute('error.type', errorName(e));
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorName(e) });
      throw e;
    } finally {
      span.end();
    }
  };
}

/** Adds call spans to the job's clients. */
export function traceCalls(clients: { readonly s3: S3Client; readonly sqs: SQSClient }, spans: CallSpans): void {
  const options = { step: 'initialize', name: 'enrollmentCallSpans', override: true } as const;
  clients.s3.middlewareStack.add(callSpanMiddleware<S3Input, S3Output>('S3', spans), options);
  clients.sqs.middlewareStack.add(callSpanMiddleware<SQSInput, SQSOutput>('SQS', spans), options);
}
