/**
 * Dead-lettering a permanently failed job: the original body and attributes, unchanged, plus
 * `ErrorCode` and `ErrorMessage` (and the job's own `traceparent` in place of the producer's). SQS allows 10 attributes and 1 MiB per message, and the job may
 * already use most of both, so the entry is fitted to those limits rather than failing to send.
 */
import { SendMessageCommand, type Message, type MessageAttributeValue, type SQSClient } from '@aws-sdk/client-sqs';
import { SQS_MAX_ATTRIBUTES, SQS_MAX_MESSAGE_BYTES, sqsText } from '../aws/sqs-rules.ts';
const ERROR_MESSAGE_MAX_CHARS = 1024;
const ERROR_ATTRIBUTES = ['ErrorCode', 'ErrorMessage'] as const;

export interface DeadLetterEntry {
  readonly body: string;
  readonly attributes: Record<string, MessageAttributeValue>;
  /** Original attributes left out to make room for the error attributes (names only). */
  readonly droppedAttributes: readonly string[];
  /** True when even the error attributes did not fit beside a body of nearly 1 MiB. */
  readonly errorOmitted: boolean;
}

function attributeSize(name: string, value: MessageAttributeValue): number {
  const data = value.StringValue !== undefined ? Buffer.byteLength(value.StringValue) : (value.BinaryValue?.length ?? 0);
  return Buffer.byteLength(name) + Buffer.byteLength(value.DataType ?? '') + data;
}

function totalSize(body: string, attributes: Record<string, MessageAttributeValue>): number {
  return Object.entries(attributes).reduce((sum, [n, v]) => sum + attributeSize(n, v), Buffer.byteLength(body));
}

/** Keeps only the fields SendMessage accepts, so a received attribute can be sent again as is. */
function copyAttribute(value: MessageAttributeValue): MessageAttributeValue {
  return value.BinaryValue !== undefined
    ? { DataType: value.DataType, BinaryValue: value.BinaryValue }
    : { DataType: value.DataType, StringValue: value.StringValue };
}

/** The first `n` UTF-16 units, never ending in half a surrogate pair (SQS refuses those). */
function firstChars(text: string, n: number): string {
  const cut = text.toWellFormed().slice(0, n);
  return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut;
}

function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const bytes = Buffer.from(text);
  // Cut before the character the limit falls in: back over its continuation bytes (10xxxxxx). A
  // U+FFFD the error itself contains is kept, wherever it stands.
  let end = maxBytes - 3;
  while (bytes.readUInt8(end) >> 6 === 0b10) end -= 1;
  return `${bytes.subarray(0, end).toString()}…`;
}

/**
 * `trace`: the job's trace context (`traceparent`, `tracestate`); it replaces the producer's own and
 * takes a slot only when one is free — an original attribute is never dropped for it, and it is left
 * out before the error code when the entry is at its size limit.
 */
export function deadLetterEntry(
  message: Message,
  error: { code: string; message: string },
  trace: Record<string, MessageAttributeValue> = {},
): DeadLetterEntry {
  const body = message.Body ?? '';
  const replaced = new Set<string>([...ERROR_ATTRIBUTES, ...Object.keys(trace)]);
  const original = Object.entries(message.MessageAttributes ?? {})
    .filter(([name]) => !replaced.has(name))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const room = SQS_MAX_ATTRIBUTES - ERROR_ATTRIBUTES.length;
  const kept = Object.fromEntries(original.slice(0, room).map(([n, v]) => [n, copyAttribute(v)]));
  const droppedAttributes = original.slice(room).map(([n]) => n);
  const traceKept = Object.fromEntries(Object.entries(trace).slice(0, Math.max(0, room - Object.keys(kept).length)));

  const code: MessageAttributeValue = { DataType: 'String', StringValue: sqsText(error.code) };
  let withCode = { ...kept, ...traceKept, ErrorCode: code };
  if (totalSize(body, withCode) > SQS_MAX_MESSAGE_BYTES) withCode = { ...kept, ErrorCode: code };
  if (totalSize(body, withCode) > SQS_MAX_MESSAGE_BYTES) return { body, attributes: kept, droppedAttributes, errorOmitted: true };
  const spare = SQS_MAX_MESSAGE_BYTES - totalSize(body, withCode) - Buffer.byteLength('ErrorMessage') - Buffer.byteLength('String');
  // Less room than "x…" leaves the message out: SQS refuses an empty attribute value.
  if (spare < 4) return { body, attributes: withCode, droppedAttributes, errorOmitted: false };
  // Job text quoted in the message (a bucket name, a libvips reason) may hold characters SQS refuses.
  const text = truncateUtf8(firstChars(sqsText(error.message), ERROR_MESSAGE_MAX_CHARS), spare);
  return { body, attributes: { ...withCode, ErrorMessage: { DataType: 'String', StringValue: text } }, droppedAttributes, errorOmitted: false };
}

export type DeadLetterSender = (entry: DeadLetterEntry) => Promise<void>;

export function sqsDeadLetterSender(sqs: SQSClient, queueUrl: string): DeadLetterSender {
  return async (entry) => {
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: entry.body,
        MessageAttributes: Object.keys(entry.attributes).length > 0 ? entry.attributes : undefined,
      }),
    );
  };
}
