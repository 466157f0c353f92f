/**
 * Publishing a job's outcome to RESULT_QUEUE_URL, when one is configured. The `status` and
 * `jobId` attributes let a consumer filter without parsing the body.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Outcome } from '../job/contract.ts';

export type OutcomePublisher = (outcome: Outcome) => Promise<void>;

export const noOutcomePublisher: OutcomePublisher = async () => {};

export function sqsOutcomePublisher(sqs: SQSClient, queueUrl: string): OutcomePublisher {
  return async (outcome) => {
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify(outcome),
        MessageAttributes: {
          status: { DataType: 'String', StringValue: outcome.status },
          ...(outcome.jobId !== null ? { jobId: { DataType: 'String', StringValue: outcome.jobId } } : {}),
        },
      }),
    );
  };
}
