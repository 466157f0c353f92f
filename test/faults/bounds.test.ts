// The worker's bounds under faults (issue 9): a failed job's other downloads are cancelled; a job
// stuck on a stalled S3 read is abandoned at its deadline and /healthz says so; a job that stored
// part of its references and then failed reports them. A loopback proxy between the worker and the
// emulator stalls chosen requests and shows which are still open.
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, inject, it } from 'vitest';
import { faultProxyPerFile } from '../support/fault-proxy.ts';
import { jpegImage } from '../support/images.ts';
import { inlineJob, issuedNow, outcomes, queueHolds, sendJob, stagedImage } from '../support/jobs.ts';
import { createStack, listKeys, uniqueName } from '../support/resources.ts';
import { until } from '../support/wait.ts';
import { stackEnv, startWorker, workerReaper } from '../support/worker-process.ts';

const emulator = inject('emulator');
const workers = workerReaper();
const proxy = faultProxyPerFile(emulator.endpoint, () => workers.killAll());

const STALL = { kind: 'delay', ms: 10 * 60_000 } as const;

describe('a job whose first image fails fast', () => {
  it('cancels its other downloads: its stalled requests are closed by the worker, long before the stall or the SDK would end them', async () => {
    // Prepare: two large staged images whose every request stalls, and a third that is not there.
    const stack = await createStack(emulator.endpoint, uniqueName('cancel'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url, LOG_LEVEL: 'info' })));
    const photos = await Promise.all([1, 2].map((seed) => jpegImage({ width: 900, height: 700, seed })));
    for (const [i, photo] of photos.entries()) {
      await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: `slow/${i}.jpg`, Body: photo }));
    }
    proxy.setRule((req) => (req.path.includes('/slow/') ? STALL : undefined));
    const job = {
      version: 1,
      jobId: 'fails-fast',
      userId: 'fiona',
      issuedAt: issuedNow(),
      images: [stagedImage(stack.stagingBucket, 'slow/0.jpg', photos[0]), stagedImage(stack.stagingBucket, 'slow/1.jpg', photos[1]), stagedImage(stack.stagingBucket, 'missing.jpg', photos[0])],
    };

    // Act
    await sendJob(stack, job);
    const [outcome] = await outcomes(stack, 1, 20_000);
    // The stall lasts ten minutes and the worker's S3 client gives a request 60 s: requests closed
    // well within that were cancelled by the worker.
    await until('the stalled requests to close', () => !proxy.open().some((r) => r.path.includes('/slow/')), 30_000);

    // Assess
    expect(outcome).toMatchObject({ jobId: 'fails-fast', status: 'failed', error: { code: 'SOURCE_NOT_FOUND' } });
    // The stalled requests did reach the endpoint (and were held there) before they were cancelled.
    expect(proxy.hits).toBeGreaterThanOrEqual(2);
    await worker.stop();
  });
});

describe('a job stuck on a stalled S3 read', () => {
  it('is handed back after JOB_TIMEOUT_SECONDS, /healthz says 503, every other job completes, and nothing is lost or stored twice', async () => {
    // Prepare
    const stack = await createStack(emulator.endpoint, uniqueName('deadline'));
    const worker = workers.track(
      await startWorker(
        stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url, JOB_TIMEOUT_SECONDS: '5', METRICS_PORT: '0', RETRY_BASE_SECONDS: '1', LOG_LEVEL: 'info' }),
      ),
    );
    const metrics = String(worker.logs.find((l) => l.msg === 'ready: receiving jobs')?.metrics);
    const health = async () => (await fetch(`${metrics}/healthz`)).status;
    const stuckPhoto = await jpegImage({ width: 300, height: 200, seed: 9 });
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: 'stall/face.jpg', Body: stuckPhoto }));
    // The GET of that one object stalls; its HEAD (the size, for the memory budget) answers.
    proxy.setRule((req) => (req.method === 'GET' && req.path.includes('/stall/') ? STALL : undefined));
    const others = await Promise.all(Array.from({ length: 6 }, (_, i) => jpegImage({ width: 200, height: 150, seed: 100 + i })));

    // Act
    await sendJob(stack, { version: 1, jobId: 'stuck', userId: 'sam', issuedAt: issuedNow(), images: [stagedImage(stack.stagingBucket, 'stall/face.jpg', stuckPhoto)] });
    for (const [i, photo] of others.entries()) await sendJob(stack, inlineJob('olly', [photo], `other-${i}`));
    const abandoned = await worker.waitForLog((l) => l.jobId === 'stuck' && l.reason === 'timeout', 20_000);
    const statusAfterDeadline = await health();
    const otherOutcomes = await until(
      'the other jobs',
      async () => {
        const done = worker.logs.filter((l) => l.msg === 'job succeeded' && String(l.jobId).startsWith('other-'));
        return done.length === others.length ? done : undefined;
      },
      30_000,
    );
    // The stall ends: the job, received again, completes.
    proxy.setRule(undefined);
    await worker.waitForLog((l) => l.jobId === 'stuck' && l.msg === 'job succeeded', 30_000);
    const results = await outcomes(stack, others.length + 1, 20_000);
    // Healthy again once the window in which /healthz reports the deadline has passed.
    const statusAfterRecovery = await until('/healthz to answer 200 again', async () => ((await health()) === 200 ? 200 : undefined), 30_000).catch(() => health());

    // Assess
    expect(abandoned).toMatchObject({ level: 'warn', outcome: 'retry', phase: 'download', msg: expect.stringMatching(/^the job outlived its deadline in its download phase/) });
    expect(statusAfterDeadline).toBe(503);
    expect(otherOutcomes).toHaveLength(others.length);
    expect(results.map((o) => [o.jobId, o.status]).sort()).toEqual([['stuck', 'succeeded'], ...others.map((_, i) => [`other-${i}`, 'succeeded'])].sort());
    expect((await listKeys(stack.s3, stack.bucket)).length).toBe(others.length + 1);
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 });
    expect(statusAfterRecovery).toBe(200);
    await worker.stop();
  });
});

describe('a job that stored part of its references and then failed', () => {
  it('reports the references that exist beside its error', async () => {
    // Prepare: three staged photos; the write of the third fails (503), so the first attempt stores two.
    const stack = await createStack(emulator.endpoint, uniqueName('partial'));
    const photos = await Promise.all([1, 2, 3].map((seed) => jpegImage({ width: 200, height: 160, seed: 300 + seed })));
    for (const [i, photo] of photos.entries()) await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: `part/${i}.jpg`, Body: photo }));
    const refKey = (photo: Buffer) => `users/pat/ref_${stagedImage('', '', photo).s3.sha256.slice(0, 12)}.jpg`;
    proxy.setRule((req) => (req.method === 'PUT' && req.path.includes(refKey(photos[2] ?? Buffer.alloc(0))) ? { kind: 'status', status: 503 } : undefined));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url, RETRY_BASE_SECONDS: '2', RETRY_MAX_SECONDS: '2' })));

    // Act: the first attempt fails for now; meanwhile the third staged object goes away.
    await sendJob(stack, { version: 1, jobId: 'partial', userId: 'pat', issuedAt: issuedNow(), images: photos.map((p, i) => stagedImage(stack.stagingBucket, `part/${i}.jpg`, p)) });
    await worker.waitForLog((l) => l.jobId === 'partial' && l.outcome === 'retry', 20_000);
    await stack.s3.send(new DeleteObjectCommand({ Bucket: stack.stagingBucket, Key: 'part/2.jpg' }));
    proxy.setRule(undefined);
    const [outcome] = await outcomes(stack, 1, 30_000);

    // Assess: failed for good, and it says which references it left stored.
    expect(outcome).toMatchObject({ jobId: 'partial', status: 'failed', error: { code: 'SOURCE_NOT_FOUND' } });
    const stored = [refKey(photos[0] ?? Buffer.alloc(0)), refKey(photos[1] ?? Buffer.alloc(0))].sort();
    expect(outcome?.references?.map((r) => r.key).sort()).toEqual(stored);
    expect((await listKeys(stack.s3, stack.bucket)).sort()).toEqual(stored);
    expect(await worker.waitForLog((l) => l.jobId === 'partial' && l.msg === 'job failed')).toMatchObject({ storedReferences: 2 });
    await worker.stop();
  });
});
