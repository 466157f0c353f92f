// Signals, end to end (the built worker as a process):
// - a reload (SIGHUP) cannot drop the signing key: a secret that lost JOB_SIGNING_KEY is refused,
//   and jobs must still be signed;
// - a second SIGTERM during a drain exits 130 at once, leaving the unfinished job in the queue;
// - messages a long poll brings in after the stop began are handed back (visible at once), not run.
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, inject, it } from 'vitest';
import { signJob } from '../../src/job/signature.ts';
import { faultProxyPerFile } from '../support/fault-proxy.ts';
import { jpegImage } from '../support/images.ts';
import { inlineJob, issuedNow, outcomes, queueHolds, sendJob, stagedImage } from '../support/jobs.ts';
import { createStack, listKeys, TEST_REGION, uniqueName } from '../support/resources.ts';
import { until } from '../support/wait.ts';
import { stackEnv, startWorker, workerReaper } from '../support/worker-process.ts';

const emulator = inject('emulator');
const workers = workerReaper();
const proxy = faultProxyPerFile(emulator.endpoint, () => workers.killAll());

const KEY = 'signals-suite-key-0123456789abcdef0123456789';
const stopping = (l: { msg?: string }) => String(l.msg).startsWith('stopping');

describe('a reload (SIGHUP)', () => {
  it('cannot drop the signing key: a secret without JOB_SIGNING_KEY is refused, and jobs must still be signed', async () => {
    // Prepare: the key in the secret, and no permission to run unsigned in the environment.
    const secrets = new SecretsManagerClient({ region: TEST_REGION, endpoint: emulator.endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    const stack = await createStack(emulator.endpoint, uniqueName('reload-key'));
    const name = uniqueName('reload-key');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ JOB_SIGNING_KEY: KEY }) }));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { SECRETS_MANAGER_SECRET_NAME: name, ALLOW_UNSIGNED_JOBS: undefined })));
    // The edit a reload must not apply: the key gone, and running unsigned allowed in its place.
    await secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: JSON.stringify({ ALLOW_UNSIGNED_JOBS: 'true', MAX_IMAGES_PER_JOB: '3' }) }));
    const photo = await jpegImage();
    const unsigned = JSON.stringify(inlineJob('sara', [photo], 'unsigned-after-reload'));
    const signed = JSON.stringify(inlineJob('sara', [photo], 'signed-after-reload'));

    // Act
    worker.child.kill('SIGHUP');
    const refused = await worker.waitForLog((l) => String(l.msg).startsWith('reload failed'));
    await sendJob(stack, unsigned);
    await sendJob(stack, signed, { Signature: { DataType: 'String', StringValue: signJob(signed, KEY) } });
    const results = await outcomes(stack, 2);

    // Assess
    expect(refused).toMatchObject({
      level: 'error',
      msg: 'reload failed: the worker keeps its current settings',
      problems: ['JOB_SIGNING_KEY is gone from the secret: a reload does not switch job authentication off (restart to do that)'],
    });
    expect(worker.logs.some((l) => l.msg === 'reload: secret re-read')).toBe(false);
    const byMessage = new Map(results.map((o) => [o.status === 'failed' ? o.error.code : o.jobId, o]));
    expect(byMessage.get('INVALID_SIGNATURE')).toMatchObject({ status: 'failed', jobId: null, userId: null });
    expect(byMessage.get('signed-after-reload')).toMatchObject({ status: 'succeeded' });
    // The line comes after the outcome is published: waited for, not read at one instant.
    expect(await worker.waitForLog((l) => l.jobId === 'signed-after-reload' && l.msg === 'job succeeded')).toMatchObject({ signature: 'current' });
    expect(worker.child.exitCode).toBeNull();
    secrets.destroy();
  });
});

describe('a second SIGTERM during a drain', () => {
  it('exits 130 at once; the unfinished job stays in the queue and the next worker does it', async () => {
    // Prepare: a job whose staged read never answers, so the drain cannot finish by itself.
    const stack = await createStack(emulator.endpoint, uniqueName('second-signal'));
    const env = stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url, VISIBILITY_TIMEOUT_SECONDS: '5', HEARTBEAT_INTERVAL_SECONDS: '2' });
    const worker = workers.track(await startWorker(env));
    const photo = await jpegImage();
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: 'stall/a.jpg', Body: photo }));
    proxy.setRule((req) => (req.method === 'GET' && req.path.includes('/stall/') ? { kind: 'delay', ms: 10 * 60_000 } : undefined));
    await sendJob(stack, { version: 1, jobId: 'interrupted', userId: 'tess', issuedAt: issuedNow(), images: [stagedImage(stack.stagingBucket, 'stall/a.jpg', photo)] });
    await until('the staged read to be held', () => proxy.open().some((r) => r.path.includes('/stall/')), 30_000);

    // Act
    worker.child.kill('SIGTERM');
    await worker.waitForLog(stopping);
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    proxy.setRule(undefined);
    const next = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
    const results = await outcomes(stack, 1, 60_000);

    // Assess
    expect(exit).toEqual({ code: 130, signal: null });
    expect(worker.logs.find((l) => l.msg === 'second signal: exiting now; unfinished jobs stay in the queue')).toMatchObject({ level: 'warn', signal: 'SIGTERM' });
    expect(worker.logs.some((l) => l.jobId === 'interrupted' && (l.msg === 'job succeeded' || l.msg === 'job failed'))).toBe(false);
    expect(results).toEqual([expect.objectContaining({ jobId: 'interrupted', status: 'succeeded' })]);
    expect(next.logs.find((l) => l.jobId === 'interrupted' && l.msg === 'job succeeded')?.receiveCount).toBe(2);
    expect(await listKeys(stack.s3, stack.bucket)).toHaveLength(1);
  });
});

describe('a long poll open when the stop begins', () => {
  it('hands the messages it brings back to the queue (visible at once), without running them', async () => {
    // Prepare: a long visibility timeout, so a message visible right after the stop was handed back.
    const stack = await createStack(emulator.endpoint, uniqueName('poll-at-stop'));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { AWS_ENDPOINT_URL: proxy.url, VISIBILITY_TIMEOUT_SECONDS: '120' })));
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = false;
    // The next receive is held at the proxy until the stop has begun: a poll in flight across the signal.
    proxy.setRule((req) => {
      if (held || req.target !== 'AmazonSQS.ReceiveMessage') return undefined;
      held = true;
      return { kind: 'hold', until: released };
    });
    await until('a receive to be held', () => held, 30_000);
    const job = inlineJob('uma', [await jpegImage()], 'brought-at-stop');
    const messageId = await sendJob(stack, job);

    // Act
    worker.child.kill('SIGTERM');
    await worker.waitForLog(stopping);
    release();
    const exit = await worker.exited;
    // Visible at once: the wait gives up long before the 120 s visibility timeout would end.
    const depth = await queueHolds(stack, stack.jobsQueueUrl, { visible: 1, inFlight: 0 }, 10_000);

    // Assess
    expect(exit).toEqual({ code: 0, signal: null });
    // Handed back unread: its line names the message, not yet the job.
    expect(worker.logs.filter((l) => l.msg === 'message handed back to the queue at shutdown')).toEqual([expect.objectContaining({ messageId })]);
    expect(worker.logs.some((l) => l.jobId === 'brought-at-stop' && l.msg === 'job succeeded')).toBe(false);
    expect(depth).toEqual({ visible: 1, inFlight: 0 });
    expect(await listKeys(stack.s3, stack.bucket)).toEqual([]);
  });
});
