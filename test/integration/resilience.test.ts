// Transient failures, slow jobs, heartbeats and the graceful stop, with a fault-injecting proxy
// between the worker and the emulator.
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, inject, it } from 'vitest';
import { faultProxyPerFile } from '../support/fault-proxy.ts';
import { jpegImage } from '../support/images.ts';
import { inlineJob, outcomes, queueHolds, sendJob, stagedImage } from '../support/jobs.ts';
import { scrapeMetrics } from '../support/metrics.ts';
import { createStack, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { sleep, until } from '../support/wait.ts';
import { spawnCli, stackEnv, startWorker, workerReaper, type LogLine } from '../support/worker-process.ts';
import { sha256Hex } from '../support/bytes.ts';

const emulator = inject('emulator');
const workers = workerReaper();
const proxy = faultProxyPerFile(emulator.endpoint, () => workers.killAll());

/** A job whose one image is staged under `key`; the proxy can then slow down just that read. */
async function stagedJob(stack: Stack, userId: string, key: string, jobId: string) {
  const photo = await jpegImage();
  await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: key, Body: photo }));
  return { version: 1, jobId, userId, images: [stagedImage(stack.stagingBucket, key, photo)] };
}

const succeededJob = (jobId: string) => (l: LogLine) => l.msg === 'job succeeded' && l.jobId === jobId;

describe('transient failures', () => {
  it('an S3 outage makes the job retry with backoff, and it succeeds once S3 is back, stored once', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('transient'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url })));
    proxy.setRule((req) => (req.method === 'PUT' && req.path.startsWith(`/${stack.bucket}/`) ? { kind: 'status', status: 503 } : undefined));
    const job = inlineJob('grace', [await jpegImage()]);

    await sendJob(stack, job);
    const retry = await worker.waitForLog((l) => l.outcome === 'retry' && l.jobId === job.jobId);
    proxy.setRule(undefined);
    const [outcome] = await outcomes(stack, 1);

    expect(retry).toMatchObject({ level: 'warn', reason: 'server', receiveCount: 1 });
    expect(retry.retryInSeconds).toBeGreaterThanOrEqual(1);
    expect(outcome).toMatchObject({ jobId: job.jobId, status: 'succeeded' });
    expect(await listKeys(stack.s3, stack.bucket)).toHaveLength(1);
    // The line comes after the outcome is published: waited for, not read at one instant.
    await worker.waitForLog(succeededJob(job.jobId));
    expect(worker.logs.filter(succeededJob(job.jobId))).toHaveLength(1);
    expect(worker.logs.find(succeededJob(job.jobId))?.receiveCount).toBeGreaterThanOrEqual(2);
  });

  it('a receive outage is backed off, not busy-looped, and the worker picks up jobs once it ends', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('rcvfail'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url })));
    let receives = 0;
    proxy.setRule((req) => {
      if (req.target !== 'AmazonSQS.ReceiveMessage') return undefined;
      receives += 1;
      return { kind: 'status', status: 500 };
    });

    await worker.waitForLog((l) => l.msg === 'receiving from the jobs queue failed; backing off');
    await sleep(3_000);
    const duringOutage = receives;
    proxy.setRule(undefined);
    const job = inlineJob('heidi', [await jpegImage()]);
    await sendJob(stack, job);
    const [outcome] = await outcomes(stack, 1, 45_000);

    // 4 slots over 3 s with backoff from 1 s, each try up to 3 SDK attempts: dozens, not thousands.
    expect(duringOutage).toBeLessThan(150);
    expect(outcome).toMatchObject({ jobId: job.jobId, status: 'succeeded' });
    expect(worker.logs.some((l) => l.msg === 'receiving from the jobs queue works again')).toBe(true);
  });
});

describe('requests that never get an answer', () => {
  it('end at the client request timeout (STS: 10 s), and is sent again instead of waiting for ever', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('hung'));
    // The first GetCallerIdentity is accepted and never answered (until the test ends).
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = 0;
    const isSts = (req: { method: string; path: string; target: string | undefined }) =>
      req.method === 'POST' && req.path === '/' && (req.target === undefined || req.target.startsWith('AWSSecurityTokenService'));
    proxy.setRule((req) => (isSts(req) && ++held === 1 ? { kind: 'hold', until: released } : undefined));
    try {
      const worker = workers.track(spawnCli(['run'], stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url, STARTUP_TIMEOUT_SECONDS: '120' })));

      // The SDK ends the unanswered call at its timeout and sends it again (its own retry); without a
      // request timeout the first call would wait for ever and the worker would never be ready.
      const ready = await worker.waitForLog((l) => l.msg === 'ready: receiving jobs', 40_000);

      expect(ready).toMatchObject({ level: 'info' });
      expect(held).toBe(2);
      await worker.stop();
    } finally {
      release();
    }
  });
});

describe('slow jobs', () => {
  it('one slow job does not hold up the others, and its heartbeat keeps it from being received twice', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('slow'));
    // Visibility 6 s, heartbeat 1 s: five beats of slack, so a beat that lands late on a busy machine
    // (or waits behind other requests at the shared emulator) still lands in time. The read is held
    // until the other jobs are done and twice the visibility timeout has passed since it began:
    // without a recurring heartbeat the message would be received again by one of the free slots.
    const visibilitySeconds = 6;
    const worker = workers.track(
      await startWorker(
        stackEnv(stack, emulator.imdsEndpoint, {
          AWS_ENDPOINT_URL: proxy.url,
          VISIBILITY_TIMEOUT_SECONDS: String(visibilitySeconds),
          HEARTBEAT_INTERVAL_SECONDS: '1',
          // The held read is slow, not stuck: the job's deadline must not end it.
          JOB_TIMEOUT_SECONDS: '300',
        }),
      ),
    );
    const slow = await stagedJob(stack, 'ivan', 'slow/one.jpg', 'slow-job');
    const fast = await Promise.all(Array.from({ length: 8 }, async (_, i) => inlineJob('judy', [await jpegImage()], `fast-${i}`)));
    const fastDone = () => worker.logs.filter((l) => l.msg === 'job succeeded' && String(l.jobId).startsWith('fast-')).length === fast.length;
    let readAt = 0;
    let beats = 0;
    const released = until('the other jobs, and twice the visibility timeout since the read began', () => readAt > 0 && fastDone() && Date.now() - readAt >= 2 * visibilitySeconds * 1000, 90_000).catch(() => undefined);
    proxy.setRule((req) => {
      if (req.target === 'AmazonSQS.ChangeMessageVisibilityBatch' || req.target === 'AmazonSQS.ChangeMessageVisibility') beats += 1;
      if (req.method === 'GET' && req.path.startsWith(`/${stack.stagingBucket}/slow/`)) {
        readAt ||= Date.now();
        return { kind: 'hold', until: released };
      }
      return undefined;
    });

    await sendJob(stack, slow);
    await until('the slow read to reach the endpoint', () => readAt > 0, 10_000);
    for (const job of fast) await sendJob(stack, job);
    const results = await outcomes(stack, 9, 90_000);
    // The slow job finishes last, and its line comes after its outcome is published.
    await worker.waitForLog((l) => l.jobId === 'slow-job' && l.msg === 'job succeeded');

    const finished = worker.logs.filter((l) => l.msg === 'job succeeded').map((l) => l.jobId);
    expect(finished).toHaveLength(9);
    expect(finished.at(-1)).toBe('slow-job');
    expect(results.map((o) => o.jobId).sort()).toEqual([...fast.map((j) => j.jobId), 'slow-job'].sort());
    expect(worker.logs.filter((l) => l.jobId === 'slow-job' && l.msg === 'job succeeded')).toEqual([
      expect.objectContaining({ receiveCount: 1 }),
    ]);
    // A heartbeat that beats again and again, not once: 12 s held at one beat a second.
    expect(beats).toBeGreaterThanOrEqual(4);
  });
});

describe('memory admission', () => {
  it('admits a staged image by the size S3 gives for it before reading it', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('admit'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url, METRICS_PORT: '0' })));
    const metrics = `${String(worker.logs.find((l) => l.msg === 'ready: receiving jobs')?.metrics)}/metrics`;
    const photo = await jpegImage({ width: 1000, height: 800 });
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: 'slow/admit.jpg', Body: photo }));
    const job = { version: 1, jobId: 'admitted', userId: 'olga', images: [stagedImage(stack.stagingBucket, 'slow/admit.jpg', photo)] };
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let readAt = 0;
    proxy.setRule((req) => {
      if (req.method !== 'GET' || !req.path.includes('/slow/admit')) return undefined;
      readAt ||= Date.now();
      return { kind: 'hold', until: released };
    });

    const messageBytes = Buffer.byteLength(JSON.stringify(job));
    await sendJob(stack, job);
    // The read comes only once its bytes were admitted: while it is held, they are in use.
    await until('the staged read to reach the endpoint', () => readAt > 0, 20_000);
    const whileReading = await scrapeMetrics(metrics);
    release();
    const [outcome] = await outcomes(stack, 1);

    // Held while the read waits: the message, the object's size as its HEAD gave it, and whatever room
    // the next long poll holds for what it may bring (whole MiB, at most the CONCURRENCY − 1 = 3 free
    // slots) — so the object's size is in use before its read (a HEAD size of 0 would leave it out).
    const held = Number(whileReading['enrollment_memory_in_use_bytes{share="held"}']);
    const pollRoom = held - messageBytes - photo.length;
    expect(pollRoom % 1_048_576, `held ${String(held)} = message ${String(messageBytes)} + object ${String(photo.length)} + whole MiB`).toBe(0);
    expect(pollRoom).toBeGreaterThanOrEqual(0);
    expect(pollRoom).toBeLessThanOrEqual(3 * 1_048_576);
    expect(outcome).toMatchObject({ jobId: 'admitted', status: 'succeeded' });
    await worker.stop();
  });
});

describe('one write per key', () => {
  it('two jobs with the same photo in flight at once make one PUT: the second waits for the first and finds it stored', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('onekey'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url, METRICS_PORT: '0' })));
    const healthz = `${String(worker.logs.find((l) => l.msg === 'ready: receiving jobs')?.metrics)}/healthz`;
    const photo = await jpegImage();
    const key = `users/pia/ref_${sha256Hex(photo).slice(0, 12)}.jpg`;
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let puts = 0;
    proxy.setRule((req) => {
      if (req.method !== 'PUT' || !req.path.startsWith(`/${stack.bucket}/${key}`)) return undefined;
      puts += 1;
      return { kind: 'hold', until: released };
    });

    // The first job's PUT is held; the second job is received while it is.
    await sendJob(stack, inlineJob('pia', [photo], 'first'));
    await until('the first PUT to be held', () => puts === 1, 20_000);
    await sendJob(stack, inlineJob('PIA', [photo], 'second'));
    await until('both jobs in flight', async () => ((await (await fetch(healthz)).json()) as { inFlight: number }).inFlight === 2, 20_000);
    // A window for the second job to reach its write (its 96×72 photo decodes in milliseconds); a
    // second PUT for the key ends it at once. Without the lock a second PUT comes whatever the window.
    await until('a second PUT (there must be none)', () => puts > 1, 3_000).catch(() => undefined);
    release();
    const results = await outcomes(stack, 2);

    expect(results.map((o) => [o.jobId, o.status, o.references?.map((r) => r.key)]).sort()).toEqual([
      ['first', 'succeeded', [key]],
      ['second', 'succeeded', [key]],
    ]);
    expect(puts).toBe(1);
    const created = worker.logs.filter((l) => l.msg === 'job succeeded').map((l) => [l.jobId, l.created]);
    expect(created.sort()).toEqual([
      ['first', 1],
      ['second', 0],
    ]);
    await worker.stop();
  });
});

describe('the job deadline', () => {
  it('a job that outlives JOB_TIMEOUT_SECONDS is handed back for a retry, /healthz answers 503 meanwhile, and the retry completes it', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('deadline'));
    const timeoutSeconds = 4;
    const env = { AWS_ENDPOINT_URL: proxy.url, JOB_TIMEOUT_SECONDS: String(timeoutSeconds), METRICS_PORT: '0', RETRY_BASE_SECONDS: '0', RETRY_MAX_SECONDS: '0' };
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, env)));
    const healthz = `${String(worker.logs.find((l) => l.msg === 'ready: receiving jobs')?.metrics)}/healthz`;
    const job = await stagedJob(stack, 'nora', 'slow/deadline.jpg', 'past-deadline');
    // The first read of the source is held until the test has seen the worker unhealthy; the retry's read passes.
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let reads = 0;
    proxy.setRule((req) => (req.method === 'GET' && req.path.includes('/slow/deadline') && ++reads === 1 ? { kind: 'hold', until: released } : undefined));

    await sendJob(stack, job);
    // Well past the deadline, and far short of a deadline wired in minutes rather than seconds.
    const abandoned = await worker.waitForLog((l) => l.jobId === 'past-deadline' && l.outcome === 'retry', 20_000);
    const unhealthy = await until('/healthz to answer 503', async () => ((await fetch(healthz)).status === 503 ? true : undefined), 10_000).catch(() => false);
    release();
    const [outcome] = await outcomes(stack, 1);
    const healthyAgain = await until('/healthz to answer 200 again', async () => ((await fetch(healthz)).status === 200 ? true : undefined), 30_000).catch(() => false);

    expect(abandoned).toMatchObject({ level: 'warn', reason: 'timeout', phase: 'download', msg: expect.stringMatching(/^the job outlived its deadline in its download phase/) });
    // Not before its deadline: the job's own working time had passed JOB_TIMEOUT_SECONDS.
    expect(Number(abandoned.durationMs)).toBeGreaterThanOrEqual(timeoutSeconds * 1000);
    expect(unhealthy).toBe(true);
    expect(outcome).toMatchObject({ jobId: 'past-deadline', status: 'succeeded' });
    await worker.waitForLog(succeededJob('past-deadline'));
    expect(worker.logs.filter(succeededJob('past-deadline'))).toEqual([expect.objectContaining({ receiveCount: 2 })]);
    expect(healthyAgain).toBe(true);
    await worker.stop();
  });
});

describe('a staged object swapped between its HEAD and its GET', () => {
  it('is not read past what its HEAD admitted: the GET is held to the ETag (412), the job retried, and the next attempt judges the new object', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('swap'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url })));
    const job = await stagedJob(stack, 'olga', 'swap/one.jpg', 'swapped-mid-read');
    // The first GET of the object is held at the proxy, after its HEAD admitted the photo's size.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    proxy.setRule((req) => (req.method === 'GET' && req.path.startsWith(`/${stack.stagingBucket}/swap/`) ? { kind: 'hold', until: released } : undefined));

    await sendJob(stack, job);
    await until('the GET to be held at the proxy', () => proxy.open().some((r) => r.method === 'GET' && r.path.includes('/swap/')), 15_000);
    // Swapped for something 40 times larger: without the condition, the read would bring it all.
    const larger = Buffer.concat([await jpegImage({ width: 1200, height: 900, seed: 5 }), Buffer.alloc(2 * 1024 * 1024, 7)]);
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: 'swap/one.jpg', Body: larger }));
    proxy.setRule(undefined);
    release();
    const [outcome] = await outcomes(stack, 1, 45_000);

    const retry = worker.logs.find((l) => l.outcome === 'retry' && l.jobId === job.jobId);
    expect(retry).toMatchObject({ receiveCount: 1, reason: 'changed', err: { name: 'SourceChanged' } });
    expect(String((retry?.err as { message?: unknown } | undefined)?.message)).toContain('images[0]: s3://');
    expect(String((retry?.err as { message?: unknown } | undefined)?.message)).toContain('changed after it was admitted (another ETag)');
    // The next attempt HEADs the object as it is now, reads it whole and finds it is not the job's.
    expect(outcome).toMatchObject({ jobId: job.jobId, status: 'failed', error: { code: 'SOURCE_MISMATCH' } });
    expect(await worker.waitForLog((l) => l.msg === 'job failed' && l.jobId === job.jobId)).toMatchObject({ receiveCount: 2, code: 'SOURCE_MISMATCH' });
    expect(await listKeys(stack.s3, stack.bucket)).toEqual([]);
  });
});

describe('graceful stop', () => {
  it('SIGTERM lets the job in flight finish, then exits 0; nothing is lost', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('drain'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url })));
    const slow = await stagedJob(stack, 'kim', 'slow/two.jpg', 'in-flight');
    proxy.setRule((req) => (req.method === 'GET' && req.path.includes('/slow/') ? { kind: 'delay', ms: 3_000 } : undefined));

    const hitsBefore = proxy.hits;
    await sendJob(stack, slow);
    await until('the slow read to reach the endpoint', () => proxy.hits > hitsBefore, 10_000);
    const exit = await worker.stop('SIGTERM');
    const later = inlineJob('kim', [await jpegImage()], 'after-stop');
    await sendJob(stack, later);

    expect(exit).toEqual({ code: 0, signal: null });
    expect(worker.logs.some(succeededJob('in-flight'))).toBe(true);
    expect(worker.logs.at(-1)).toMatchObject({ msg: 'stopped', succeeded: 1, inFlight: 0 });
    // The job sent after the stop waits in the queue for the next worker.
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 1, inFlight: 0 });
    const next = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
    const results = await outcomes(stack, 2);
    expect(results.map((o) => o.jobId).sort()).toEqual(['after-stop', 'in-flight']);
    await next.stop();
  });

  it('a job that outlasts DRAIN_TIMEOUT_SECONDS is cancelled and handed back, and the next worker completes it once', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('timeout'));
    // Visible at once after the stop can only be the hand-back: its own visibility timeout is 10 s.
    const env = { AWS_ENDPOINT_URL: proxy.url, DRAIN_TIMEOUT_SECONDS: '1', VISIBILITY_TIMEOUT_SECONDS: '10', HEARTBEAT_INTERVAL_SECONDS: '1' };
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, env)));
    const slow = await stagedJob(stack, 'leo', 'slow/three.jpg', 'too-slow');
    // The read never ends by itself: an exit 0 (not the SIGKILL worker.stop sends after 30 s) is a
    // drain that gave up at its timeout.
    proxy.setRule((req) => (req.method === 'GET' && req.path.includes('/slow/') ? { kind: 'delay', ms: 10 * 60_000 } : undefined));

    const hitsBefore = proxy.hits;
    await sendJob(stack, slow);
    await until('the slow read to reach the endpoint', () => proxy.hits > hitsBefore, 10_000);
    const exit = await worker.stop('SIGTERM');
    proxy.setRule(undefined);

    expect(exit).toEqual({ code: 0, signal: null });
    expect(worker.logs.find((l) => String(l.msg).startsWith('drain timeout'))).toMatchObject({ unfinished: 1 });
    expect(worker.logs.some(succeededJob('too-slow'))).toBe(false);
    expect(worker.logs.find((l) => l.msg === 'message handed back to the queue at shutdown')).toMatchObject({ jobId: 'too-slow' });
    // Handed back (visible at once), not left invisible until its visibility timeout (10 s): the
    // wait gives up well before that. (A heartbeat on its way that landed after the hand-back hid
    // it again, under load: one message's visibility changes are now sent in order.)
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 1, inFlight: 0 }, 5_000);

    const next = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
    const results = await outcomes(stack, 1, 30_000);
    expect(results).toEqual([expect.objectContaining({ jobId: 'too-slow', status: 'succeeded' })]);
    expect(await listKeys(stack.s3, stack.bucket)).toHaveLength(1);
    await next.stop();
  });

  it('SIGTERM under load: everything finished is deleted, the rest is processed by the next start, none twice', async () => {
    const stack = await createStack(emulator.endpoint, uniqueName('load'));
    const photos = await Promise.all(Array.from({ length: 40 }, () => jpegImage()));
    const jobs = photos.map((p, i) => inlineJob('mia', [p], `load-${i}`));
    // The whole load is queued before the worker starts, and each write takes 400 ms: at the signal
    // four jobs are in flight and most of the load is still waiting in the queue.
    for (const job of jobs) await sendJob(stack, job);
    proxy.setRule((req) => (req.method === 'PUT' && req.path.startsWith(`/${stack.bucket}/`) ? { kind: 'delay', ms: 400 } : undefined));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { CONCURRENCY: '4', AWS_ENDPOINT_URL: proxy.url })));

    await worker.waitForLog((l) => l.msg === 'job succeeded', 20_000);
    expect(await worker.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    proxy.setRule(undefined);
    const done = worker.logs.filter((l) => l.msg === 'job succeeded').length;
    const inFlightAtStop = worker.logs.find((l) => String(l.msg).startsWith('stopping'));
    const next = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
    const results = await outcomes(stack, jobs.length, 60_000);

    expect(inFlightAtStop).toBeDefined();
    expect(done).toBeGreaterThanOrEqual(1);
    expect(done).toBeLessThanOrEqual(jobs.length / 2);
    expect(results.map((o) => o.jobId).sort()).toEqual(jobs.map((j) => j.jobId).sort());
    expect(await listKeys(stack.s3, stack.bucket)).toHaveLength(jobs.length);
    expect(next.logs.filter((l) => l.msg === 'job succeeded')).toHaveLength(jobs.length - done);
    await next.stop();
  });
});
