// The loop both baselines share: what a careful engineer writes by hand with the SDK and no
// framework. At most CONCURRENCY messages in flight; receives in batches of up to 10 (never more
// than there is room for); each message: parse, decode or fetch the image, hand it to the
// baseline's image work, SHA-256 it, put it with the same conditional write as the worker
// (If-None-Match: *, ChecksumSHA256), delete the message. No outcome, no dead-letter, no heartbeat,
// no logging beyond one line per job.
//
// Each baseline is its own process (`node test/bench/baseline.ts`, `node
// test/bench/same-work-baseline.ts`) with the worker's settings in the environment, so its CPU and
// memory are measured the same way. Prints `ready` once it receives, then `done <jobId>` per job.
import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DeleteMessageCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import { sleep } from '../support/wait.ts';

/** What a baseline stores for the bytes it received. */
export interface StoredImage {
  bytes: Buffer;
  png: boolean;
}

/** A baseline's image work: the received bytes → the bytes to store. */
export type ImageWork = (received: Buffer) => Promise<StoredImage>;

interface JobBody {
  jobId: string;
  userId: string;
  images: Array<{ data?: string; s3?: { bucket: string; key: string; sha256?: string } }>;
}

const sha256Of = (bytes: Buffer) => createHash('sha256').update(bytes).digest();

/** Runs the loop until SIGTERM, then drains; sets the exit code (1 if any job failed). */
export async function runSdkLoop(work: ImageWork): Promise<void> {
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

  /** The staged object, refused if it is not the one the job names (the hash is computed anyway). */
  async function staged(source: { bucket: string; key: string; sha256?: string }): Promise<{ bytes: Buffer; sha256: Buffer }> {
    const object = await s3.send(new GetObjectCommand({ Bucket: source.bucket, Key: source.key }));
    const bytes = Buffer.from((await object.Body?.transformToByteArray()) ?? []);
    const sha256 = sha256Of(bytes);
    if (source.sha256 !== undefined && source.sha256 !== sha256.toString('hex')) throw new Error(`staged object ${source.key} is not the one the job names`);
    return { bytes, sha256 };
  }

  async function store(userId: string, jobId: string, received: { bytes: Buffer; sha256: Buffer }): Promise<void> {
    const stored = await work(received.bytes);
    // Keyed by the hash as received (a redelivery lands on the same key); checksummed as stored.
    const storedSha256 = stored.bytes === received.bytes ? received.sha256 : sha256Of(stored.bytes);
    try {
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `users/${userId}/ref_${received.sha256.toString('hex').slice(0, 12)}.${stored.png ? 'png' : 'jpg'}`,
          Body: stored.bytes,
          ContentLength: stored.bytes.length,
          ContentType: stored.png ? 'image/png' : 'image/jpeg',
          ChecksumSHA256: storedSha256.toString('base64'),
          IfNoneMatch: '*',
          Metadata: { 'job-id': jobId, sha256: received.sha256.toString('hex'), 'stored-sha256': storedSha256.toString('hex') },
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
      const images = await Promise.all(
        job.images.map((i) => {
          if (i.s3) return staged(i.s3);
          const bytes = Buffer.from(i.data ?? '', 'base64');
          return { bytes, sha256: sha256Of(bytes) };
        }),
      );
      await Promise.all(images.map((image) => store(userId, job.jobId, image)));
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
          await sleep(1_000);
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
}
