// The happy paths end to end: the built worker, a real emulator, jobs in, references out.
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { jpegImage, pngImage } from '../support/images.ts';
import { inlineJob, outcomes, queueHolds, sendJob, stagedImage } from '../support/jobs.ts';
import { createStack, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { spawnCli, stackEnv, startWorker, workerReaper, type WorkerProcess } from '../support/worker-process.ts';
import { sha256Hex as sha256 } from '../support/bytes.ts';

const emulator = inject('emulator');
const workers = workerReaper();
let stack: Stack;
let worker: WorkerProcess;


beforeAll(async () => {
  stack = await createStack(emulator.endpoint, uniqueName('enroll'));
  worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
});

afterAll(() => workers.killAll());

describe('a good job', () => {
  it('stores an inline JPEG and PNG at users/<id>/ref_<12 hex>.<ext>, with type and metadata, and reports them', async () => {
    const jpeg = await jpegImage();
    const png = await pngImage();
    const job = inlineJob('  Alice.Smith@Example.COM ', [jpeg, png]);

    const messageId = await sendJob(stack, job);
    const [outcome] = await outcomes(stack, 1);

    const userId = 'alice.smith@example.com';
    // The key and `sha256` name the photo as received; `bytes` is the size of what is stored (the
    // image re-encoded, without metadata).
    const expected = [
      { key: `users/${userId}/ref_${sha256(jpeg).slice(0, 12)}.jpg`, sha256: sha256(jpeg), contentType: 'image/jpeg', bytes: expect.any(Number) },
      { key: `users/${userId}/ref_${sha256(png).slice(0, 12)}.png`, sha256: sha256(png), contentType: 'image/png', bytes: expect.any(Number) },
    ];
    expect(outcome).toEqual({ version: 1, jobId: job.jobId, userId, messageId, status: 'succeeded', references: expected });
    expect((await listKeys(stack.s3, stack.bucket, `users/${userId}/`)).sort()).toEqual(expected.map((r) => r.key).sort());
    for (const [index, ref] of (outcome?.references ?? []).entries()) {
      const object = await stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: ref.key }));
      const stored = Buffer.from(await object.Body!.transformToByteArray());
      expect(stored.length).toBe(ref.bytes);
      const meta = await sharp(stored).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual([index === 0 ? 'jpeg' : 'png', 96, 72]);
      expect(object.ContentType).toBe(ref.contentType);
      expect(object.Metadata).toEqual({ 'job-id': job.jobId, sha256: ref.sha256, 'stored-sha256': sha256(stored) });
    }
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 });
  });

  it('reads an image staged in the staging bucket', async () => {
    // Over 1 MiB: too large for a message, so the producer stages it.
    const big = await jpegImage({ width: 1400, height: 1400 });
    expect(big.length).toBeGreaterThan(1024 * 1024);
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: 'uploads/big.bin', Body: big }));
    const job = { version: 1, jobId: 'staged-1', userId: 'bob', images: [stagedImage(stack.stagingBucket, 'uploads/big.bin', big)] };

    await sendJob(stack, job);
    const [outcome] = await outcomes(stack, 1);

    const key = `users/bob/ref_${sha256(big).slice(0, 12)}.jpg`;
    expect(outcome?.status).toBe('succeeded');
    expect(outcome?.references).toEqual([{ key, sha256: sha256(big), contentType: 'image/jpeg', bytes: expect.any(Number) }]);
    const head = await stack.s3.send(new HeadObjectCommand({ Bucket: stack.bucket, Key: key }));
    expect(head.ContentLength).toBe(outcome?.references?.[0]?.bytes);
  });

  it('the enqueue command stages what does not fit, sends the job and prints its outcome', async () => {
    const { writeFile, mkdtemp } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'enqueue-'));
    const small = await pngImage();
    const big = await jpegImage({ width: 1400, height: 1400 });
    await writeFile(join(dir, 'small.png'), small);
    await writeFile(join(dir, 'big.jpg'), big);
    const env = stackEnv(stack, emulator.imdsEndpoint);
    // The result queue is drained by this command itself, so keep other outcomes out of its way.
    const cli = spawnCli(['enqueue', '--user', 'Carol', '--job-id', 'by-hand-1', join(dir, 'small.png'), join(dir, 'big.jpg')], env);

    const exit = await cli.exited;

    expect(exit.code, cli.text.join('\n')).toBe(0);
    // Its first line is one JSON object (what was sent); then the outcome, pretty-printed.
    const printed = JSON.parse(cli.text.join('\n')) as { status: string; userId: string; references: { key: string }[] };
    expect(printed.status).toBe('succeeded');
    expect(printed.userId).toBe('carol');
    expect(printed.references.map((r) => r.key).sort()).toEqual(
      [`users/carol/ref_${sha256(small).slice(0, 12)}.png`, `users/carol/ref_${sha256(big).slice(0, 12)}.jpg`].sort(),
    );
    expect(cli.logs[0]).toMatchObject({ enqueued: { jobId: 'by-hand-1', staged: ['by-hand-1/1'] } });
  });
});

describe('exactly once in effect', () => {
  it('a job sent twice, and the same photo in another job, leave one reference', async () => {
    const photo = await jpegImage();
    const first = inlineJob('dave', [photo]);
    const again = { ...first };
    const other = inlineJob('DAVE', [photo, photo]);

    await sendJob(stack, first);
    await sendJob(stack, again);
    await sendJob(stack, other);
    const results = await outcomes(stack, 3);

    const key = `users/dave/ref_${sha256(photo).slice(0, 12)}.jpg`;
    expect(results.map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    for (const o of results) expect(o.references?.map((r) => r.key)).toEqual([key]);
    expect(await listKeys(stack.s3, stack.bucket, 'users/dave/')).toEqual([key]);
  });

  it('a reference already stored is never overwritten: the job succeeds with created 0, and the object keeps its bytes and metadata', async () => {
    // Prepare: an object at the key the photo will name, with other bytes and metadata (the
    // reference an earlier job stored; "the metadata of a reference is that of the job that first
    // stored it").
    const photo = await jpegImage();
    const key = `users/frank/ref_${sha256(photo).slice(0, 12)}.jpg`;
    const earlier = Buffer.from('the reference an earlier job stored');
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: key, Body: earlier, ContentType: 'image/jpeg', Metadata: { 'job-id': 'earlier-job' } }));
    const job = inlineJob('frank', [photo]);

    // Act
    await sendJob(stack, job);
    const [outcome] = await outcomes(stack, 1);
    const line = await worker.waitForLog((l) => l.msg === 'job succeeded' && l.jobId === job.jobId);
    const object = await stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: key }));
    const bytes = Buffer.from(await (object.Body?.transformToByteArray() ?? Promise.resolve(new Uint8Array())));

    // Assess
    expect(outcome).toMatchObject({ jobId: job.jobId, status: 'succeeded', references: [{ key, sha256: sha256(photo) }] });
    expect(line).toMatchObject({ references: 1, created: 0 });
    expect(bytes.equals(earlier)).toBe(true);
    expect(object.Metadata).toEqual({ 'job-id': 'earlier-job' });
    expect(await listKeys(stack.s3, stack.bucket, 'users/frank/')).toEqual([key]);
  });

  it('a redelivered job (a second worker racing on the same queue) still ends with one object per photo', async () => {
    const second = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { CONCURRENCY: '8' })));
    const photos = await Promise.all(Array.from({ length: 12 }, () => jpegImage()));
    const jobs = photos.map((p) => inlineJob('erin', [p]));

    // Every job twice: two workers will often run the two copies at the same time.
    for (const job of [...jobs, ...jobs]) await sendJob(stack, job);
    const results = await outcomes(stack, 24, 60_000);

    expect(results).toHaveLength(24);
    expect(results.every((o) => o.status === 'succeeded')).toBe(true);
    const keys = await listKeys(stack.s3, stack.bucket, 'users/erin/');
    expect(keys.sort()).toEqual(photos.map((p) => `users/erin/ref_${sha256(p).slice(0, 12)}.jpg`).sort());
    await second.stop();
  });
});
