// The face check end to end (FACE_CHECK=one): the built worker against the emulator, with photos
// composed from scikit-image's public-domain samples (Debian's python3-skimage). Each code, the
// sideways selfie that passes once turned upright, and the face box in the outcome and the S3 metadata.
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { astronautCutOut, skimagePhoto, twoAstronauts } from '../face/photos.ts';
import { inlineJob, outcomes, sendJob } from '../support/jobs.ts';
import { scrapeMetrics } from '../support/metrics.ts';
import { until } from '../support/wait.ts';
import type { Outcome } from '../../src/job/contract.ts';
import { createStack, drainQueue, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { spawnCli, stackEnv, startWorker, workerReaper, type WorkerProcess } from '../support/worker-process.ts';

const emulator = inject('emulator');
const workers = workerReaper();
afterAll(() => workers.killAll());

const jpeg = (image: sharp.Sharp) => image.jpeg({ quality: 90 }).toBuffer();

describe('a worker with FACE_CHECK=one', () => {
  let stack: Stack;
  let worker: WorkerProcess;
  let results: Map<string, Outcome>;
  const jobs: Record<string, Buffer[]> = {};

  beforeAll(async () => {
    stack = await createStack(emulator.endpoint, uniqueName('faces'));
    const astronaut = skimagePhoto('astronaut.png');
    jobs.upright = [await jpeg(sharp(astronaut))];
    // Sideways pixels with the EXIF orientation that turns them upright, as phones write them.
    jobs['sideways-6'] = [await sharp(astronaut).rotate(-90).jpeg().withMetadata({ orientation: 6 }).toBuffer()];
    jobs['sideways-8'] = [await sharp(astronaut).rotate(90).jpeg().withMetadata({ orientation: 8 }).toBuffer()];
    jobs['png-with-alpha'] = [await astronautCutOut()];
    jobs.camera = [await sharp(skimagePhoto('camera.png')).png().toBuffer()];
    jobs.cat = [await jpeg(sharp(skimagePhoto('chelsea.png')))];
    jobs.coffee = [await jpeg(sharp(skimagePhoto('coffee.png')))];
    jobs.two = [await jpeg(sharp(await twoAstronauts()))];
    // The astronaut at 200×200: her face is ~48 px on its shorter side, under FACE_MIN_SIZE (64).
    jobs.small = [await jpeg(sharp(astronaut).resize(200, 200))];
    // A job whose second image shows no face: it fails whole, and its good image is not stored either.
    jobs.mixed = [jobs.upright[0] as Buffer, jobs.cat[0] as Buffer];

    worker = workers.track(
      await startWorker(stackEnv(stack, emulator.imdsEndpoint, { FACE_CHECK: 'one', FACE_THREADS: '1', CONCURRENCY: '2', JOB_TIMEOUT_SECONDS: '120', LOG_LEVEL: 'info', METRICS_PORT: '0' })),
    );
    for (const [name, images] of Object.entries(jobs)) await sendJob(stack, inlineJob(`u-${name}`, images, name));
    results = new Map((await outcomes(stack, Object.keys(jobs).length, 120_000)).map((o) => [o.jobId ?? '', o]));
  }, 240_000);

  it.each([
    ['upright', 'an upright face'],
    ['sideways-6', 'a sideways selfie (EXIF orientation 6), turned upright before detection'],
    ['sideways-8', 'a sideways selfie (EXIF orientation 8)'],
    ['png-with-alpha', 'a PNG with alpha'],
    ['camera', 'a grey photo of one person'],
  ])('stores %s: %s', (name) => {
    expect(results.get(name)).toMatchObject({ status: 'succeeded' });
  });

  it.each([
    ['cat', 'NO_FACE', /^images\[0\] shows no face with a score of at least 0\.5 \(FACE_MIN_SCORE\)$/],
    ['coffee', 'NO_FACE', /^images\[0\] shows no face/],
    ['two', 'MULTIPLE_FACES', /^images\[0\] shows 2 faces of at least 64 pixels \(FACE_MIN_SIZE\) with a score of at least 0\.5 \(FACE_MIN_SCORE\); a reference must show exactly one$/],
    ['small', 'FACE_TOO_SMALL', /^images\[0\] shows a face of \d+ pixels on its shorter side; at least 64 are needed \(FACE_MIN_SIZE\)$/],
    ['mixed', 'NO_FACE', /^images\[1\] shows no face/],
  ])('refuses %s with %s, dead-lettered, nothing stored', async (name, code, message) => {
    expect(results.get(name)).toMatchObject({ status: 'failed', error: { code, message: expect.stringMatching(message) } });
    expect(await listKeys(stack.s3, stack.bucket, `users/u-${name}/`)).toEqual([]);
  });

  it('dead-letters each refused job with its face code', async () => {
    const dead = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 5, timeoutMs: 20_000 });
    const codes = dead.map((m) => m.MessageAttributes?.ErrorCode?.StringValue).sort();
    expect(codes).toEqual(['FACE_TOO_SMALL', 'MULTIPLE_FACES', 'NO_FACE', 'NO_FACE', 'NO_FACE']);
  });

  it('gives the face box and score, in stored pixels, in the outcome and in the S3 metadata', async () => {
    const reference = results.get('upright')?.references?.[0];
    const face = reference?.face;
    // astronaut.png is 512×512; her face is near (162, 79), about 122×106 (the detector's box).
    expect(face).toMatchObject({ x: expect.any(Number), y: expect.any(Number), width: expect.any(Number), height: expect.any(Number), score: expect.any(Number) });
    expect(face?.x).toBeGreaterThan(130);
    expect(face?.x).toBeLessThan(200);
    expect(face?.width).toBeGreaterThan(90);
    expect(face?.width).toBeLessThan(160);
    expect(face?.score).toBeGreaterThanOrEqual(0.5);
    const head = await stack.s3.send(new HeadObjectCommand({ Bucket: stack.bucket, Key: reference?.key }));
    expect(JSON.parse(head.Metadata?.face ?? 'null')).toEqual(face);
  });

  it('puts the sideways selfie\'s box in the upright, stored image', async () => {
    const reference = results.get('sideways-6')?.references?.[0];
    const upright = results.get('upright')?.references?.[0];
    // Turned back upright, the face is where it is in the upright photo (within a few pixels).
    expect(Math.abs((reference?.face?.x ?? Number.NaN) - (upright?.face?.x ?? Number.NaN))).toBeLessThan(20);
    expect(Math.abs((reference?.face?.y ?? Number.NaN) - (upright?.face?.y ?? Number.NaN))).toBeLessThan(20);
  });

  it('logs how long detection took, and counts the face codes', async () => {
    const base = String(worker.logs.find((l) => l.msg === 'ready: receiving jobs')?.metrics);

    // A fate is counted after its outcome is published: wait for all ten jobs' counts.
    const counted = (m: Record<string, number>) => Object.entries(m).filter(([name]) => name.startsWith('enrollment_face_checks_total')).reduce((sum, [, n]) => sum + n, 0);
    const metrics = await until('ten face checks counted', async () => {
      const now = await scrapeMetrics(`${base}/metrics`);
      return counted(now) >= 10 ? now : undefined;
    }, 15_000).catch(() => scrapeMetrics(`${base}/metrics`));

    const line = worker.logs.find((l) => l.msg === 'job succeeded' && l.jobId === 'upright');
    expect(line?.faceCheckMs).toEqual(expect.any(Number));
    expect(worker.logs.find((l) => l.msg === 'face detector ready')).toBeDefined();
    // One per stored reference (five jobs of one image each), one per refused job by its code
    // (the mixed job counts once, for the image that failed it).
    const faceChecks = Object.fromEntries(Object.entries(metrics).filter(([name]) => name.startsWith('enrollment_face_checks_total')));
    expect(faceChecks).toEqual({
      'enrollment_face_checks_total{result="ok"}': 5,
      'enrollment_face_checks_total{result="NO_FACE"}': 3,
      'enrollment_face_checks_total{result="MULTIPLE_FACES"}': 1,
      'enrollment_face_checks_total{result="FACE_TOO_SMALL"}': 1,
    });
  });

  it('check says the model loads and finds the face of its probe image', async () => {
    const cli = spawnCli(['check'], stackEnv(stack, emulator.imdsEndpoint, { FACE_CHECK: 'one' }));
    await cli.exited;
    expect(cli.text.find((l) => l.startsWith('✓ face check:'))).toMatch(/1 face\(s\) in the probe image/);
  });
});
