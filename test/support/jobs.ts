// Sending jobs and reading outcomes in integration tests.
import { randomUUID } from 'node:crypto';
import { GetQueueAttributesCommand, SendMessageCommand, type MessageAttributeValue } from '@aws-sdk/client-sqs';
import type { Outcome } from '../../src/job/contract.ts';
import { drainQueue, type Stack } from './resources.ts';
import { until } from './wait.ts';
import { inlineImage, sha256Hex } from './bytes.ts';

/** A staged image as a job names it: where it is and the SHA-256 of the bytes put there. */
export function stagedImage(bucket: string | undefined, key: string, bytes: Buffer = Buffer.alloc(0)) {
  return { s3: { bucket: bucket ?? '', key, sha256: sha256Hex(bytes) } };
}

/** Now, as a job's `issuedAt` (whole seconds since the Unix epoch). */
export const issuedNow = () => Math.floor(Date.now() / 1000);

/** A v1 job with inline images, issued now (so it is valid for a worker with a signing key too). */
export function inlineJob(userId: string, images: Buffer[], jobId = `job-${randomUUID()}`) {
  return { version: 1, jobId, userId, issuedAt: issuedNow(), images: images.map(inlineImage) };
}

export async function sendJob(
  stack: Stack,
  body: unknown,
  attributes?: Record<string, MessageAttributeValue>,
): Promise<string> {
  const sent = await stack.sqs.send(
    new SendMessageCommand({
      QueueUrl: stack.jobsQueueUrl,
      MessageBody: typeof body === 'string' ? body : JSON.stringify(body),
      MessageAttributes: attributes,
    }),
  );
  return sent.MessageId ?? '';
}

/** Reads (and deletes) outcomes until `expected` arrived or the timeout passed. */
export async function outcomes(stack: Stack, expected: number, timeoutMs = 30_000): Promise<Outcome[]> {
  if (!stack.resultQueueUrl) throw new Error('this stack has no result queue');
  const messages = await drainQueue(stack.sqs, stack.resultQueueUrl, { expected, timeoutMs });
  return messages.map((m) => JSON.parse(m.Body ?? 'null') as Outcome);
}

/** How many messages a queue still holds, visible or not. */
export async function queueDepth(stack: Stack, queueUrl: string): Promise<QueueDepth> {
  const { Attributes = {} } = await stack.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return {
    visible: Number(Attributes.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}

export type QueueDepth = { visible: number; inFlight: number };

/**
 * Waits until a queue holds exactly `expected` and returns it; fails after `timeoutMs` with what it
 * held last. A job's outcome is published before its message's batched delete, and SQS's counts
 * are approximate: read once right after an event, a queue can still show what is about to change.
 * Keep `timeoutMs` below the queue's visibility timeout where a message that should be visible at
 * once would otherwise become visible by itself.
 */
export async function queueHolds(stack: Stack, queueUrl: string, expected: QueueDepth, timeoutMs = 15_000): Promise<QueueDepth> {
  let last: QueueDepth | undefined;
  return until(
    `the queue to hold ${JSON.stringify(expected)}`,
    async () => {
      last = await queueDepth(stack, queueUrl);
      return last.visible === expected.visible && last.inFlight === expected.inFlight ? last : undefined;
    },
    timeoutMs,
    { everyMs: 200, detail: () => `it held ${JSON.stringify(last)}` },
  );
}
