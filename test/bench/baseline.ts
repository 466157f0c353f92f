// The baseline: what a careful engineer writes by hand with the SDK and no framework. At most
// CONCURRENCY messages in flight; receives in batches of up to 10 (never more than there is room
// for); each message: parse, decode or fetch the image, SHA-256 it, put it with the same
// conditional write as the worker (If-None-Match: *, ChecksumSHA256), delete the message. No
// validation, no outcome, no dead-letter, no heartbeat, no logging beyond one line per job.
//
// Run by the benchmark as its own process (`node test/bench/baseline.ts`) with the worker's
// settings in the environment, so its CPU and memory are measured the same way. Prints `ready`
// once it receives, then `done <jobId> <epoch ms>` per job on stdout.
import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DeleteMessageCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';

const env = process.env;
const queueUrl = env.SQS_QUEUE_URL ?? '';
const bucket = env.S3_BUCKET ?? '';
const concurrency = Number(env.CONCURRENCY ?? 16);
const waitSeconds = Number(env.POLL_WAIT_SECONDS ?? 20);
const endpoint = env.AWS_ENDPOINT_URL;
const sockets = concurrency * 2 + 8;
const handler = { connectionTimeout: 5_000, requestTimeout: 60_000, httpAgent: { maxSockets: sockets, keepAlive: true }, httpsAgent: { maxSockets: sockets, keepAlive: true } };
const sqs = new SQSClient({ region: env.AWS_REGION, ...(endpoint ? { endpoint } : {}), useQueueUrlAsEndpoint: !endpoint, requestHandler: handler });
const s3 = new S3Client({ region: env.AWS_REGION, ...(endpoint ? { endpoint } : {}), forcePathStyle: Boolean(endpoint), requestHandler: handler });

interface JobBody {
  jobId: string;
  userId: string;
  images: Array<{ data?: string; s3?: { bucket: string; key: string } }>;
}

async function staged(source: { bucket: string; key: string }): Promise<Buffer> {
  const object = await s3.send(new GetObjectCommand({ Bucket: source.bucket, Key: source.key }));
  return Buffer.from((await object.Body?.transformToByteArray()) ?? []);
}

async function store(userId: string, jobId: string, bytes: Buffer): Promise<void> {
  const sha256 = createHash('sha256').update(bytes).digest();
  const png = bytes[0] === 0x89;
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `users/${userId}/ref_${sha256.toString('hex').slice(0, 12)}.${png ? 'png' : 'jpg'}`,
        Body: bytes,
        ContentLength: bytes.length,
        ContentType: png ? 'image/png' : 'image/jpeg',
        ChecksumSHA256: sha256.toString('base64'),
        IfNoneMatch: '*',
        Metadata: { 'job-id': jobId, sha256: sha256.toString('hex') },
      }),
    );
  } catch (e: unknown) {
    // Already stored (a redelivery): that is success.
    if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 412) throw e;
  }
}

let failures = 0;

async function handle(message: Message): Promise<void> {
  try {
    const job = JSON.parse(message.Body ?? '') as JobBody;
    const userId = job.userId.trim().toLowerCase();
    const images = await Promise.all(job.images.map((i) => (i.s3 ? staged(i.s3) : Buffer.from(i.data ?? '', 'base64'))));
    await Promise.all(images.map((bytes) => store(userId, job.jobId, bytes)));
    await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }));
    process.stdout.write(`done ${job.jobId} ${Date.now()}\n`);
  } catch (e: unknown) {
    // Left in the queue: it comes back after its visibility timeout.
    failures += 1;
    process.stderr.write(`job failed: ${e instanceof Error ? e.message : String(e)}\n`);
  }
}

// Room for `free` more messages; pollers wait here when it is used up.
let free = concurrency;
const roomWaiters: Array<() => void> = [];
const stopping = new AbortController();
const running = new Set<Promise<void>>();

function room(): Promise<void> {
  if (free > 0 || stopping.signal.aborted) return Promise.resolve();
  return new Promise((resolve) => roomWaiters.push(resolve));
}

async function poller(): Promise<void> {
  while (!stopping.signal.aborted) {
    await room();
    if (stopping.signal.aborted) break;
    const asked = Math.min(10, free);
    free -= asked;
    let messages: Message[] = [];
    try {
      const received = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: asked, WaitTimeSeconds: waitSeconds, VisibilityTimeout: 60, MessageSystemAttributeNames: ['ApproximateReceiveCount'] }),
        { abortSignal: stopping.signal },
      );
      messages = received.Messages ?? [];
    } catch (e: unknown) {
      if (!stopping.signal.aborted) {
        process.stderr.write(`receive failed: ${e instanceof Error ? e.message : String(e)}\n`);
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
    free += asked - messages.length;
    for (const message of messages) {
      const job = handle(message).finally(() => {
        running.delete(job);
        free += 1;
        roomWaiters.shift()?.();
      });
      running.add(job);
    }
  }
}

process.on('SIGTERM', () => {
  stopping.abort();
  for (const wake of roomWaiters.splice(0)) wake();
});

// Credentials and the first connection, before saying ready (as the worker's start-up does).
await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
const pollers = Array.from({ length: Math.ceil(concurrency / 10) }, () => poller());
process.stdout.write('ready\n');
await Promise.all(pollers);
await Promise.all(running);
sqs.destroy();
s3.destroy();
process.stderr.write(`stopped; ${failures} failures\n`);
process.exitCode = failures > 0 ? 1 : 0;
