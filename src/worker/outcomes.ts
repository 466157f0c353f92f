/**
 * A job's outcome as the SQS message published to RESULT_QUEUE_URL, when one is configured (the
 * daemon sends it through a batcher, src/aws/sqs-batches.ts). The `status` and `jobId` attributes
 * let a consumer filter without parsing the body.
 */
import type { MessageAttributeValue } from '@aws-sdk/client-sqs';
import { sqsJson } from '../aws/sqs-rules.ts';
import type { Outcome } from '../job/contract.ts';

export type OutcomePublisher = (outcome: Outcome) => Promise<void>;

/**
 * The SQS message of an outcome: a body SQS accepts whatever job text the error quotes; `trace` is
 * the job's trace context (`traceparent`, `tracestate`), so the producer's consumer continues it.
 */
export function outcomeMessage(
  outcome: Outcome,
  trace: Record<string, MessageAttributeValue> = {},
): { body: string; attributes: Record<string, MessageAttributeValue> } {
  return {
    body: sqsJson(outcome),
    attributes: {
      status: { DataType: 'String', StringValue: outcome.status },
      ...(outcome.jobId !== null ? { jobId: { DataType: 'String', StringValue: outcome.jobId } } : {}),
      ...trace,
    },
  };
}

