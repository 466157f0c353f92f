/**
 * The producer's side of the contract: build a job, send it, and (when a result queue is known)
 * wait for its outcome. Used by `enrollment-worker enqueue`, and exported for Node producers.
 */
import { createHash, randomUUID } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { context, propagation } from '@opentelemetry/api';
import { CONTRACT_VERSION, type Outcome } from '../job/contract.ts';
import { SIGNATURE_ATTRIBUTE, signJob } from '../job/signature.ts';
import { parseTraceparent, traceAttributes } from '../job/trace-context.ts';
import { SQS_MAX_MESSAGE_BYTES } from '../aws/sqs-rules.ts';

export type JobImage = { data: string } | { s3: { bucket: string; key: string; sha256: string } };

export interface JobMessage {
  version: 1;
  jobId: string;
  userId: string;
  /** Seconds since the Unix epoch when the job was built; signed with the body. */
  issuedAt: number;
  images: JobImage[];
}

/**
 * A staged image as a producer names it: where it is, and either its SHA-256 (hex) or the bytes
 * that were uploaded (hashed here). The worker refuses any other object at that key.
 */
export type StagedImage = { bucket: string; key: string } & ({ sha256: string } | { bytes: Buffer });

export interface JobInput {
  jobId?: string;
  userId: string;
  images: ReadonlyArray<Buffer | StagedImage>;
  /** Default: now. */
  issuedAt?: number;
  /**
   * The trace the job continues (W3C `traceparent`, optional `tracestate`). Default: the caller's
   * active OpenTelemetry context, through its global propagator (nothing when it has none).
   */
  trace?: { traceparent: string; tracestate?: string };
}

/** The caller's active trace context, as its OpenTelemetry SDK would send it (W3C fields only). */
function activeTrace(): { traceparent: string; tracestate?: string } | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  const { traceparent, tracestate } = carrier;
  return traceparent === undefined ? undefined : { traceparent, ...(tracestate ? { tracestate } : {}) };
}

/** The `traceparent`/`tracestate` attributes of a job; a malformed context is refused here, not sent. */
function jobTraceAttributes(trace: JobInput['trace']): Record<string, MessageAttributeValue> {
  const given = trace ?? activeTrace();
  if (given === undefined) return {};
  const parsed = parseTraceparent(given.traceparent, given.tracestate);
  if (!parsed) throw new Error(`not a W3C traceparent: ${JSON.stringify(given.traceparent.slice(0, 80))}`);
  return traceAttributes(parsed) as Record<string, MessageAttributeValue>;
}

/** SQS's rule for MessageGroupId: 1-128 letters, digits and ASCII punctuation. */
const MESSAGE_GROUP_ID = /^[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]{1,128}$/;

export function checkMessageGroupId(id: string): string {
  if (!MESSAGE_GROUP_ID.test(id)) throw new Error('the message group id must be 1-128 letters, digits or ASCII punctuation');
  return id;
}

const sha256Of = (bytes: Buffer) => createHash('sha256').update(bytes).digest();

/** Builds a v1 job body. Images given as bytes are inlined as base64; staged ones carry their SHA-256. */
export function buildJob(input: JobInput): JobMessage {
  return {
    version: CONTRACT_VERSION,
    jobId: input.jobId ?? randomUUID(),
    userId: input.userId,
    issuedAt: input.issuedAt ?? Math.floor(Date.now() / 1000),
    images: input.images.map((image) =>
      Buffer.isBuffer(image)
        ? { data: image.toString('base64') }
        : { s3: { bucket: image.bucket, key: image.key, sha256: 'sha256' in image ? image.sha256 : sha256Of(image.bytes).toString('hex') } },
    ),
  };
}

export interface SignedJob {
  readonly job: JobMessage;
  /** The message body: send exactly these bytes (the signature covers them). */
  readonly body: string;
  /** `Signature` when a key was given; `traceparent` (and `tracestate`) when there is a trace. */
  readonly messageAttributes: Record<string, MessageAttributeValue>;
}

/**
 * Builds a v1 job and its message: the JSON body, and with a key (JOB_SIGNING_KEY; a string is
 * taken as its UTF-8 bytes) the `Signature` attribute over exactly that body.
 */
export function buildSignedJob(input: JobInput, key: Buffer | string | undefined): SignedJob {
  const job = buildJob(input);
  const body = JSON.stringify(job);
  const messageAttributes: Record<string, MessageAttributeValue> = {
    ...(key === undefined ? {} : { [SIGNATURE_ATTRIBUTE]: { DataType: 'String', StringValue: signJob(body, key) } }),
    ...jobTraceAttributes(input.trace),
  };
  return { job, body, messageAttributes };
}

// Headroom under the 1 MiB SQS limit for the JSON around the images (ids, punctuation).
const INLINE_BUDGET = SQS_MAX_MESSAGE_BYTES - 4096;
// What one staged reference costs in the body at most: a 63-character bucket, a key of up to
// 1024 characters of prefix plus the job id and index, a 64-character SHA-256, and the JSON around them.
const STAGED_ENTRY_BYTES = 1400;

/**
 * Which images must be staged so the message fits: the largest first, until the inline rest and
 * the staged references fit. Returns the indexes to stage.
 */
export function planStaging(sizes: readonly number[]): Set<number> {
  const base64 = (n: number) => Math.ceil(n / 3) * 4;
  let total = sizes.reduce((sum, n) => sum + base64(n), 0);
  const staged = new Set<number>();
  const bySize = sizes.map((n, i) => [n, i] as const).sort((a, b) => b[0] - a[0]);
  for (const [n, i] of bySize) {
    if (total <= INLINE_BUDGET) break;
    staged.add(i);
    total += STAGED_ENTRY_BYTES - base64(n);
  }
  return staged;
}

export interface EnqueueDeps {
  readonly sqs: SQSClient;
  readonly s3: S3Client;
  readonly queueUrl: string;
  readonly stagingBucket: string | undefined;
  readonly stagingPrefix: string;
  /** When set, the job is signed with it. */
  readonly signingKey?: Buffer | string | undefined;
}

export interface Enqueued {
  readonly jobId: string;
  readonly messageId: string;
  readonly staged: readonly string[];
  readonly signed: boolean;
}

export interface EnqueueInput {
  jobId?: string;
  userId: string;
  images: readonly Buffer[];
  /**
   * The tenant, on a queue several upstream tenants share: SQS fair queues keep one tenant's burst
   * from delaying the others' jobs (docs/operations.md "Tracing").
   */
  messageGroupId?: string;
  trace?: JobInput['trace'];
}

export async function enqueueJob(input: EnqueueInput, deps: EnqueueDeps): Promise<Enqueued> {
  const jobId = input.jobId ?? randomUUID();
  if (input.messageGroupId !== undefined) checkMessageGroupId(input.messageGroupId);
  const toStage = planStaging(input.images.map((b) => b.length));
  if (toStage.size > 0 && deps.stagingBucket === undefined) {
    throw new Error('the images are too large to send inline (1 MiB per message): set STAGING_BUCKET to stage them in S3');
  }
  const staged: string[] = [];
  const images = await Promise.all(
    input.images.map(async (bytes, index) => {
      if (!toStage.has(index) || deps.stagingBucket === undefined) return bytes;
      const key = `${deps.stagingPrefix}${jobId}/${index}`;
      const sha256 = sha256Of(bytes);
      // S3 checks the upload against the same hash the job will carry.
      await deps.s3.send(
        new PutObjectCommand({ Bucket: deps.stagingBucket, Key: key, Body: bytes, ChecksumSHA256: sha256.toString('base64') }),
      );
      staged.push(key);
      return { bucket: deps.stagingBucket, key, sha256: sha256.toString('hex') };
    }),
  );
  const { body, messageAttributes } = buildSignedJob({ jobId, userId: input.userId, images, ...(input.trace ? { trace: input.trace } : {}) }, deps.signingKey);
  const sent = await deps.sqs.send(
    new SendMessageCommand({
      QueueUrl: deps.queueUrl,
      MessageBody: body,
      ...(input.messageGroupId !== undefined ? { MessageGroupId: input.messageGroupId } : {}),
      ...(Object.keys(messageAttributes).length > 0 ? { MessageAttributes: messageAttributes } : {}),
    }),
  );
  return { jobId, messageId: sent.MessageId ?? '', staged, signed: deps.signingKey !== undefined };
}

/**
 * Waits for the outcome of one job on the result queue and deletes it. Other outcomes stay in the
 * queue (hidden for a few seconds, so that a busy queue is still searched past its head).
 */
export async function waitForOutcome(
  sqs: SQSClient,
  resultQueueUrl: string,
  jobId: string,
  timeoutMs: number,
): Promise<Outcome | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const waitSeconds = Math.max(1, Math.min(5, Math.floor((deadline - Date.now()) / 1000)));
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: resultQueueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: waitSeconds,
        VisibilityTimeout: 5,
        MessageAttributeNames: ['jobId'],
      }),
    );
    for (const message of Messages) {
      if (message.MessageAttributes?.jobId?.StringValue !== jobId) continue;
      await sqs.send(new DeleteMessageCommand({ QueueUrl: resultQueueUrl, ReceiptHandle: message.ReceiptHandle }));
      return JSON.parse(message.Body ?? 'null') as Outcome;
    }
  }
  return undefined;
}
