// Every permanent error code, end to end: dead-lettered once with its code and its body and
// attributes unchanged, a failed outcome, nothing written, nothing left in the jobs queue.
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { MessageAttributeValue } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { jpegImage } from '../support/images.ts';
import { inlineJob, outcomes, queueHolds, sendJob, stagedImage } from '../support/jobs.ts';
import { createStack, drainQueue, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { stackEnv, startWorker, workerReaper, type WorkerProcess } from '../support/worker-process.ts';
import { base64 as b64 } from '../support/bytes.ts';

const emulator = inject('emulator');
const workers = workerReaper();
afterAll(() => workers.killAll());


interface Case {
  code: string;
  body: string;
  jobId: string | null;
  userId: string | null;
}

async function badJobs(stack: Stack): Promise<Case[]> {
  const good = await jpegImage();
  const staging = stack.stagingBucket ?? '';
  // 11 MiB staged: over the default MAX_IMAGE_BYTES, refused from its size before it is read.
  await stack.s3.send(new PutObjectCommand({ Bucket: staging, Key: 'in/huge.jpg', Body: Buffer.alloc(11 * 1024 * 1024, 0xff) }));
  const job = (jobId: string, userId: unknown, images: unknown[]) => JSON.stringify({ version: 1, jobId, userId, images });
  return [
    { code: 'INVALID_MESSAGE', body: '{"version":1, "jobId": "x", ', jobId: null, userId: null },
    { code: 'INVALID_MESSAGE', body: JSON.stringify({ version: 1, jobId: 'no-images', userId: 'frank', images: [] }), jobId: 'no-images', userId: 'frank' },
    { code: 'UNSUPPORTED_VERSION', body: JSON.stringify({ ...inlineJob('frank', [good], 'v2-job'), version: 2 }), jobId: 'v2-job', userId: 'frank' },
    { code: 'INVALID_USER_ID', body: JSON.stringify(inlineJob('../admin', [good], 'traversal')), jobId: 'traversal', userId: null },
    { code: 'INVALID_USER_ID', body: JSON.stringify(inlineJob('\u212Aevin', [good], 'kelvin')), jobId: 'kelvin', userId: null },
    { code: 'TOO_MANY_IMAGES', body: JSON.stringify(inlineJob('frank', Array(11).fill(good), 'eleven')), jobId: 'eleven', userId: 'frank' },
    // One good image and one that is HTML: the job fails whole, and the good one is not stored either.
    { code: 'INVALID_IMAGE', body: job('html', 'frank', [{ data: good.toString('base64') }, { data: b64('<html><body>hi</body></html>') }]), jobId: 'html', userId: 'frank' },
    { code: 'INVALID_IMAGE', body: job('garbage', 'frank', [{ data: '!!!not base64!!!' }]), jobId: 'garbage', userId: 'frank' },
    { code: 'IMAGE_TOO_LARGE', body: job('huge', 'frank', [stagedImage(staging, 'in/huge.jpg', Buffer.alloc(11 * 1024 * 1024, 0xff))]), jobId: 'huge', userId: 'frank' },
    { code: 'SOURCE_NOT_ALLOWED', body: job('refs', 'frank', [stagedImage(stack.bucket, 'users/victim/ref_000000000000.jpg')]), jobId: 'refs', userId: 'frank' },
    { code: 'SOURCE_NOT_FOUND', body: job('missing', 'frank', [stagedImage(staging, 'in/missing.jpg', good)]), jobId: 'missing', userId: 'frank' },
  ];
}

describe('with a dead-letter queue (from the redrive policy)', () => {
  let stack: Stack;
  let cases: Case[];
  let worker: WorkerProcess;
  const attributes: Record<string, MessageAttributeValue> = {
    traceparent: { DataType: 'String', StringValue: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    blob: { DataType: 'Binary', BinaryValue: new Uint8Array([1, 2, 3, 255]) },
  };

  beforeAll(async () => {
    stack = await createStack(emulator.endpoint, uniqueName('permanent'));
    cases = await badJobs(stack);
    worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
    for (const c of cases) await sendJob(stack, c.body, attributes);
  });

  it('dead-letters each bad job once, body and attributes unchanged, with ErrorCode and ErrorMessage', async () => {
    const dead = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: cases.length, timeoutMs: 30_000 });

    expect(dead).toHaveLength(cases.length);
    const byBody = new Map(dead.map((m) => [m.Body, m]));
    for (const c of cases) {
      const entry = byBody.get(c.body);
      expect(entry, c.code).toBeDefined();
      expect(entry?.MessageAttributes?.ErrorCode?.StringValue).toBe(c.code);
      expect(entry?.MessageAttributes?.ErrorMessage?.StringValue?.length).toBeGreaterThan(0);
      expect(entry?.MessageAttributes?.traceparent?.StringValue).toBe(attributes.traceparent?.StringValue);
      expect(Buffer.from(entry?.MessageAttributes?.blob?.BinaryValue ?? [])).toEqual(Buffer.from([1, 2, 3, 255]));
    }
  });

  it('publishes a failed outcome with the code, and the ids where they could be read', async () => {
    const results = await outcomes(stack, cases.length);

    expect(results).toHaveLength(cases.length);
    const got = results.map((o) => ({ status: o.status, code: o.status === 'failed' ? o.error.code : undefined, jobId: o.jobId, userId: o.userId }));
    const want = cases.map((c) => ({ status: 'failed', code: c.code, jobId: c.jobId, userId: c.userId }));
    const order = (a: { code?: string; jobId: string | null }) => `${a.code}/${a.jobId}`;
    expect(got.sort((a, b) => order(a).localeCompare(order(b)))).toEqual(want.sort((a, b) => order(a).localeCompare(order(b))));
  });

  it('writes nothing, leaves nothing in the jobs queue, and never logs image bytes', async () => {
    expect(await listKeys(stack.s3, stack.bucket)).toEqual([]);
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 });
    const failures = worker.logs.filter((l) => l.msg === 'job failed');
    expect(failures.map((l) => l.code).sort()).toEqual(cases.map((c) => c.code).sort());
    const everything = JSON.stringify(worker.logs);
    const good = JSON.parse(cases[2]?.body ?? '{}').images[0].data as string;
    expect(everything).not.toContain(good.slice(0, 64));
  });
});

describe('without any dead-letter queue', () => {
  it('warns at start, then logs the whole failure (without image data) and deletes the message', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('nodlq'), { withDeadLetterQueue: false });
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
    expect(worker.logs.some((l) => l.level === 'warn' && String(l.msg).startsWith('no dead-letter queue'))).toBe(true);
    const image = (await jpegImage()).toString('base64');

    await sendJob(stack, { version: 1, jobId: 'lost-cause', userId: 'a/b', images: [{ data: image }] });
    const line = await worker.waitForLog((l) => l.msg === 'job failed');

    expect(line).toMatchObject({ level: 'error', code: 'INVALID_USER_ID', jobId: 'lost-cause', deadLetter: 'none' });
    expect(line.body).toMatchObject({ jobId: 'lost-cause', userId: 'a/b', images: [{ data: `<${image.length} base64 chars>` }] });
    expect(JSON.stringify(worker.logs)).not.toContain(image.slice(0, 64));
    const [outcome] = await outcomes(stack, 1);
    expect(outcome).toMatchObject({ status: 'failed', error: { code: 'INVALID_USER_ID' } });
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 });
  });
});
