// The AWS resources one integration test needs (queues, buckets), created fresh on the emulator under
// a unique name, plus the few helpers tests use to look at them afterwards.
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';

export const TEST_REGION = 'us-east-1';
// The emulators' dummy credentials; they accept any. Never real ones.
const DUMMY_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' } as const;

export interface Stack {
  region: string;
  endpoint: string;
  jobsQueueUrl: string;
  deadLetterQueueUrl?: string;
  resultQueueUrl?: string;
  /** Where references are written. */
  bucket: string;
  /** Where upstream stages large images. */
  stagingBucket?: string;
  sqs: SQSClient;
  s3: S3Client;
}

export interface StackOptions {
  /** Default true. */
  withDeadLetterQueue?: boolean;
  /** The redrive policy's maxReceiveCount; default 5. */
  maxReceiveCount?: number;
  /** Default true. */
  withResultQueue?: boolean;
  /** Default true. */
  withStaging?: boolean;
}

/**
 * SDK clients that send every call to `endpoint`, whatever host a QueueUrl names. `maxAttempts: 1`
 * turns SDK retries off, so one injected fault is one failed call.
 */
export function testClients(endpoint: string, opts: { maxAttempts?: number } = {}): { sqs: SQSClient; s3: S3Client } {
  const common = { region: TEST_REGION, endpoint, credentials: DUMMY_CREDENTIALS, maxAttempts: opts.maxAttempts };
  return {
    sqs: new SQSClient({ ...common, useQueueUrlAsEndpoint: false }),
    s3: new S3Client({ ...common, forcePathStyle: true }),
  };
}

async function createQueue(sqs: SQSClient, name: string, attributes?: Record<string, string>): Promise<string> {
  const created = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  if (created.QueueUrl === undefined) throw new Error(`CreateQueue ${name} returned no QueueUrl`);
  return created.QueueUrl;
}

async function queueArn(sqs: SQSClient, queueUrl: string): Promise<string> {
  const attributes = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
  const arn = attributes.Attributes?.QueueArn;
  if (arn === undefined) throw new Error(`GetQueueAttributes gave no QueueArn for ${queueUrl}`);
  return arn;
}

/**
 * Creates `${name}-jobs` (redriven to `${name}-dlq`), `${name}-results`, and the buckets
 * `${name}-refs` and `${name}-staging`, as the options ask.
 */
export async function createStack(endpoint: string, name: string, opts: StackOptions = {}): Promise<Stack> {
  const { withDeadLetterQueue = true, maxReceiveCount = 5, withResultQueue = true, withStaging = true } = opts;
  const { sqs, s3 } = testClients(endpoint);

  let deadLetterQueueUrl: string | undefined;
  let jobsAttributes: Record<string, string> | undefined;
  if (withDeadLetterQueue) {
    deadLetterQueueUrl = await createQueue(sqs, `${name}-dlq`);
    const deadLetterTargetArn = await queueArn(sqs, deadLetterQueueUrl);
    jobsAttributes = { RedrivePolicy: JSON.stringify({ deadLetterTargetArn, maxReceiveCount }) };
  }
  const jobsQueueUrl = await createQueue(sqs, `${name}-jobs`, jobsAttributes);
  const resultQueueUrl = withResultQueue ? await createQueue(sqs, `${name}-results`) : undefined;

  const bucket = `${name}-refs`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const stagingBucket = withStaging ? `${name}-staging` : undefined;
  if (stagingBucket !== undefined) await s3.send(new CreateBucketCommand({ Bucket: stagingBucket }));

  return { region: TEST_REGION, endpoint, jobsQueueUrl, deadLetterQueueUrl, resultQueueUrl, bucket, stagingBucket, sqs, s3 };
}

/**
 * Receives and deletes messages until `expected` have come (or, without `expected`, until a receive
 * comes back empty) or `timeoutMs` passes. Returns everything received, possibly more than
 * `expected`, so a test can see duplicates; it never throws for too few: assert on the length.
 */
export async function drainQueue(
  sqs: SQSClient,
  queueUrl: string,
  opts: { expected?: number; timeoutMs: number },
): Promise<Message[]> {
  const received: Message[] = [];
  const deadline = Date.now() + opts.timeoutMs;
  while (Date.now() < deadline) {
    const remainingSeconds = Math.floor((deadline - Date.now()) / 1000);
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        // Short polls, so the deadline is kept to about a second.
        WaitTimeSeconds: Math.max(0, Math.min(1, remainingSeconds)),
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    );
    if (Messages.length > 0) {
      received.push(...Messages);
      const deleted = await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
      const failed = deleted.Failed ?? [];
      if (failed.length > 0) throw new Error(`drainQueue could not delete: ${JSON.stringify(failed)}`);
    }
    if (opts.expected === undefined ? Messages.length === 0 : received.length >= opts.expected) break;
  }
  return received;
}

/** Every key in `bucket` (under `prefix`), in S3's order. */
export async function listKeys(s3: S3Client, bucket: string, prefix?: string): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }));
    for (const object of page.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
    ContinuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (ContinuationToken !== undefined);
  return keys;
}

/**
 * A fresh lowercase name, valid as a bucket and a queue name once createStack adds its suffixes
 * (at most 39 characters, so `-staging` still fits SQS's 80 and S3's 63 with room to spare).
 */
export function uniqueName(prefix: string): string {
  const cleaned = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 20)
    .replace(/-+$/g, '');
  const random = Math.random().toString(36).slice(2, 8).padEnd(6, '0');
  return `${cleaned === '' ? 'test' : cleaned}-${Date.now().toString(36)}-${random}`;
}
