/**
 * The SQS batch calls the worker makes — DeleteMessageBatch, ChangeMessageVisibilityBatch,
 * SendMessageBatch — behind batchers (batcher.ts): callers add one entry and learn its
 * own result. An entry SQS reports as failed becomes an Error named by SQS's code, so the error
 * table (src/job/errors.ts) classifies it like any other SDK error.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  SendMessageBatchCommand,
  type BatchResultErrorEntry,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { createBatcher, type Batcher } from './batcher.ts';
import { SQS_MAX_BATCH_ENTRIES, SQS_MAX_MESSAGE_BYTES } from './sqs-rules.ts';

/** One entry of a batch that SQS refused, as an error. */
export class BatchEntryError extends Error {
  override readonly name: string;
  /** SQS says the request was wrong (not worth a retry as is), as opposed to its own failure. */
  readonly senderFault: boolean;
  /** As on the SDK's own errors: whose fault it was, so an entry SQS failed on its side reads as a server error. */
  readonly $fault: 'client' | 'server';

  constructor(entry: BatchResultErrorEntry) {
    super(entry.Message ?? `the entry failed: ${entry.Code ?? 'unknown error'}`);
    this.name = entry.Code ?? 'BatchEntryError';
    this.senderFault = entry.SenderFault === true;
    this.$fault = this.senderFault ? 'client' : 'server';
  }
}

/** Maps SQS's Successful/Failed lists (by Id, which is the entry's index) back onto the entries. */
function perEntry<R>(count: number, failed: readonly BatchResultErrorEntry[] | undefined, success: (index: number) => R): (R | Error)[] {
  const failures = new Map((failed ?? []).map((f) => [Number(f.Id), new BatchEntryError(f)]));
  return Array.from({ length: count }, (_, i) => failures.get(i) ?? success(i));
}

const ids = <T>(entries: readonly T[]) => entries.map((entry, i) => ({ entry, Id: String(i) }));

export interface BatchTiming {
  /** How long the first entry of a batch waits for company. */
  readonly flushAfterMs: number;
}

export function deleteBatcher(sqs: SQSClient, queueUrl: string, timing: BatchTiming): Batcher<string, void> {
  return createBatcher<string, void>({
    maxEntries: SQS_MAX_BATCH_ENTRIES,
    flushAfterMs: timing.flushAfterMs,
    send: async (receipts) => {
      const out = await sqs.send(
        new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: ids(receipts).map(({ entry, Id }) => ({ Id, ReceiptHandle: entry })) }),
      );
      return perEntry(receipts.length, out.Failed, () => undefined);
    },
  });
}

export interface VisibilityChange {
  readonly receiptHandle: string;
  readonly seconds: number;
}

export function visibilityBatcher(sqs: SQSClient, queueUrl: string, timing: BatchTiming): Batcher<VisibilityChange, void> {
  return createBatcher<VisibilityChange, void>({
    maxEntries: SQS_MAX_BATCH_ENTRIES,
    flushAfterMs: timing.flushAfterMs,
    send: async (changes) => {
      const out = await sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: queueUrl,
          Entries: ids(changes).map(({ entry, Id }) => ({ Id, ReceiptHandle: entry.receiptHandle, VisibilityTimeout: entry.seconds })),
        }),
      );
      return perEntry(changes.length, out.Failed, () => undefined);
    },
  });
}

export interface OutgoingMessage {
  readonly body: string;
  readonly attributes: Record<string, MessageAttributeValue>;
}

/** What SQS counts against a message's size: the body, and each attribute's name, type and value. */
export function messageBytes(message: OutgoingMessage): number {
  let bytes = Buffer.byteLength(message.body);
  for (const [name, value] of Object.entries(message.attributes)) {
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value.DataType ?? '');
    bytes += value.StringValue !== undefined ? Buffer.byteLength(value.StringValue) : (value.BinaryValue?.length ?? 0);
  }
  return bytes;
}

/** SendMessageBatch: up to 10 messages and 1 MiB in all per call; resolves with each message id. */
export function sendBatcher(sqs: SQSClient, queueUrl: string, timing: BatchTiming): Batcher<OutgoingMessage, string> {
  return createBatcher<OutgoingMessage, string>({
    maxEntries: SQS_MAX_BATCH_ENTRIES,
    maxBytes: SQS_MAX_MESSAGE_BYTES,
    sizeOf: messageBytes,
    flushAfterMs: timing.flushAfterMs,
    send: async (messages) => {
      const out = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: ids(messages).map(({ entry, Id }) => ({
            Id,
            MessageBody: entry.body,
            ...(Object.keys(entry.attributes).length > 0 ? { MessageAttributes: entry.attributes } : {}),
          })),
        }),
      );
      const sent = new Map((out.Successful ?? []).map((s) => [Number(s.Id), s.MessageId ?? '']));
      return perEntry(messages.length, out.Failed, (i) => sent.get(i) ?? '');
    },
  });
}
