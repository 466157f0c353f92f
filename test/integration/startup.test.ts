// Start-up as ops meet it: bad configuration, credentials from IMDSv2 only, the optional secret,
// and a world that is not there.
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { jpegImage } from '../support/images.ts';
import { startImds, type Imds } from '../support/imds.ts';
import { inlineJob, outcomes, sendJob } from '../support/jobs.ts';
import { createStack, TEST_REGION, uniqueName, type Stack } from '../support/resources.ts';
import { within } from '../support/wait.ts';
import { baseEnv, CLI, spawnCli, stackEnv, startWorker, workerReaper } from '../support/worker-process.ts';

const emulator = inject('emulator');
const workers = workerReaper();
let stack: Stack;
let secrets: SecretsManagerClient;

beforeAll(async () => {
  stack = await createStack(emulator.endpoint, uniqueName('startup'));
  secrets = new SecretsManagerClient({
    region: TEST_REGION,
    endpoint: emulator.endpoint,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, // the emulator's dummies
  });
});
afterAll(() => workers.killAll());

async function createSecret(value: string): Promise<string> {
  const name = uniqueName('secret');
  await secrets.send(new CreateSecretCommand({ Name: name, SecretString: value }));
  return name;
}

describe('bad configuration', () => {
  it('exits 78 at once, naming every missing or invalid variable in one message', async () => {
    const env = { ...baseEnv('http://127.0.0.1:9'), AWS_REGION: 'us-east-1', CONCURRENCY: 'lots', SQS_QUEUE_URL: 'not a url' };
    const worker = spawnCli(['run'], env);

    const exit = await worker.exited;

    expect(exit.code).toBe(78);
    const fatal = worker.logs.find((l) => l.level === 'fatal');
    expect(fatal?.problems).toEqual([
      expect.stringMatching(/^SQS_QUEUE_URL must be an http\(s\) URL/),
      'S3_BUCKET is required',
      'CONCURRENCY must be a whole number from 1 to 1024',
    ]);
    expect(String(fatal?.msg)).toContain('S3_BUCKET is required');
  });

  it('exits 78 when the jobs queue does not exist', async () => {
    const env = stackEnv(stack, emulator.imdsEndpoint, { SQS_QUEUE_URL: `${stack.jobsQueueUrl}-nope` });
    const worker = spawnCli(['run'], env);

    const exit = await worker.exited;

    expect(exit.code).toBe(78);
    expect(String(worker.logs.find((l) => l.level === 'fatal')?.msg)).toMatch(/SQS_QUEUE_URL: the queue .*-nope cannot be used/);
  });
});

describe('an installation without the JPEG codec', () => {
  it('exits 78 before any network call, saying how to build the codec', async () => {
    // Prepare: the built worker beside its dependencies, with no build/ (no native addons)
    const root = mkdtempSync(join(tmpdir(), 'no-codec-'));
    cpSync(dirname(CLI), join(root, 'dist'), { recursive: true });
    copyFileSync(join(dirname(CLI), '..', 'package.json'), join(root, 'package.json'));
    symlinkSync(join(dirname(CLI), '..', 'node_modules'), join(root, 'node_modules'));
    const env = { ...baseEnv('http://127.0.0.1:9'), AWS_REGION: 'us-east-1', SQS_QUEUE_URL: 'http://127.0.0.1:9/000000000000/jobs', S3_BUCKET: 'references', ALLOW_UNSIGNED_JOBS: 'true' };

    // Act
    const run = spawnSync(process.execPath, [join(root, 'dist', 'cli.js'), 'run'], { env, encoding: 'utf8', timeout: 30_000 });

    // Assess
    expect(run.status).toBe(78);
    const fatal = run.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string | number; problems?: string[] }).find((l) => l.problems);
    expect(fatal?.problems?.[0]).toMatch(/^the JPEG codec \(build\/Release\/jpeg\.node\) could not be loaded .*libjpeg62-turbo-dev/);
  });
});

describe('where results go, confirmed at start', () => {
  it('exits 78 when the result queue does not exist, naming RESULT_QUEUE_URL', async () => {
    const env = stackEnv(stack, emulator.imdsEndpoint, { RESULT_QUEUE_URL: `${stack.resultQueueUrl}-typo` });
    const worker = spawnCli(['run'], env);

    const exit = await worker.exited;

    expect(exit.code).toBe(78);
    expect(String(worker.logs.find((l) => l.level === 'fatal')?.msg)).toMatch(/RESULT_QUEUE_URL: the result queue .*-typo cannot be used/);
    expect(worker.logs.some((l) => l.msg === 'ready: receiving jobs')).toBe(false);
  });

  it('exits 78 when DEAD_LETTER_QUEUE_URL names no queue, naming it', async () => {
    const env = stackEnv(stack, emulator.imdsEndpoint, { DEAD_LETTER_QUEUE_URL: `${stack.deadLetterQueueUrl}-typo` });
    const worker = spawnCli(['run'], env);

    const exit = await worker.exited;

    expect(exit.code).toBe(78);
    expect(String(worker.logs.find((l) => l.level === 'fatal')?.msg)).toMatch(/DEAD_LETTER_QUEUE_URL: the dead-letter queue .*-typo cannot be used/);
  });

  it('exits 78 when the reference bucket does not exist, naming S3_BUCKET', async () => {
    const env = stackEnv(stack, emulator.imdsEndpoint, { S3_BUCKET: `${stack.bucket}-typo` });
    const worker = spawnCli(['run'], env);

    const exit = await worker.exited;

    expect(exit.code).toBe(78);
    expect(String(worker.logs.find((l) => l.level === 'fatal')?.msg)).toMatch(/S3_BUCKET: references cannot be written to s3:\/\/.*-typo\/users\/: NoSuchBucket/);
  });

  it("warns when one job's worst case is more than the share of the memory budget it is admitted from", async () => {
    // 16 MiB budget: a held share of 5,592,405 bytes, against 2 images of 4 MiB.
    const env = stackEnv(stack, emulator.imdsEndpoint, { MAX_IN_FLIGHT_BYTES: String(16 * 1024 * 1024), MAX_IMAGES_PER_JOB: '2', MAX_IMAGE_BYTES: String(4 * 1024 * 1024) });
    const worker = workers.track(await startWorker(env));

    const warning = worker.logs.find((l) => String(l.msg).startsWith('one job may need MAX_IMAGES_PER_JOB × MAX_IMAGE_BYTES'));
    await worker.stop();

    expect(warning).toMatchObject({ level: 'warn', worstJobBytes: 8 * 1024 * 1024, heldShareBytes: 5_592_405, maxImagesPerJob: 2, maxImageBytes: 4 * 1024 * 1024 });
    expect(String(warning?.msg)).toContain('MAX_IN_FLIGHT_BYTES');
  });
});

describe('credentials', () => {
  let imds: Imds;
  beforeAll(async () => {
    imds = await startImds();
  });
  afterAll(() => imds.stop());

  it('come from IMDSv2 alone when the environment has no keys at all', async () => {
    const env = stackEnv(stack, imds.endpoint);
    expect(Object.keys(env).filter((k) => /^AWS_(ACCESS|SECRET|SESSION|PROFILE)/.test(k))).toEqual([]);

    const worker = workers.track(await startWorker(env));
    const job = inlineJob('nina', [await jpegImage()]);
    await sendJob(stack, job);
    const [outcome] = await outcomes(stack, 1);

    // The token call succeeded, so the SDK never had a reason to fall back to v1 here: the test
    // below, against a service without tokens, is the one that shows the worker refuses v1.
    expect(imds.requests).toBeGreaterThanOrEqual(2);
    expect(imds.servedWithoutToken).toBe(0);
    expect(worker.logs.find((l) => l.msg === 'AWS credentials')).toMatchObject({
      credentialSource: 'EC2 instance metadata (IMDSv2, instance role)',
      account: expect.stringMatching(/^\d{12}$/),
      arn: expect.stringMatching(/^arn:aws:/),
    });
    expect(outcome).toMatchObject({ jobId: job.jobId, status: 'succeeded' });
    await worker.stop();
  });

  it('are never taken from an IMDSv1-only service: the worker refuses to start (exit 1)', async () => {
    const v1 = await startImds({ v1Only: true });
    try {
      const worker = workers.track(spawnCli(['run'], stackEnv(stack, v1.endpoint, { STARTUP_TIMEOUT_SECONDS: '3' })));

      // A worker that took v1 credentials would be running: it is given well past its start-up timeout.
      const exit = await within(worker.exited, 20_000, 'still running');

      expect(exit).toEqual({ code: 1, signal: null });
      expect(String(worker.logs.find((l) => l.level === 'fatal')?.msg)).toMatch(/^AWS credentials did not succeed before the start-up timeout/);
      expect(worker.logs.some((l) => l.msg === 'ready: receiving jobs')).toBe(false);
      // It asked (so the service was reachable) and took nothing without a token.
      expect(v1.requests).toBeGreaterThan(0);
      expect(v1.servedWithoutToken).toBe(0);
    } finally {
      await v1.stop();
    }
  });

  it('that never come end the start with a clear error and exit 1, without a busy loop', async () => {
    // Nothing listens on port 9 (discard): IMDS is unreachable, as on a host with no instance role.
    const env = stackEnv(stack, 'http://127.0.0.1:9', { STARTUP_TIMEOUT_SECONDS: '4' });
    const started = Date.now();
    const worker = spawnCli(['run'], env);

    const exit = await worker.exited;

    expect(exit.code).toBe(1);
    expect(Date.now() - started).toBeGreaterThan(2_000);
    const fatal = worker.logs.find((l) => l.level === 'fatal');
    expect(String(fatal?.msg)).toMatch(/^AWS credentials did not succeed before the start-up timeout/);
    expect(worker.logs.filter((l) => String(l.msg).startsWith('AWS credentials: ')).length).toBeLessThan(10);
  });
});

describe('a stop during start-up', () => {
  it('exits 0 at once on SIGTERM while start-up still waits for credentials', async () => {
    const worker = spawnCli(['run'], stackEnv(stack, 'http://127.0.0.1:9', { STARTUP_TIMEOUT_SECONDS: '60' }));
    await worker.waitForLog((l) => String(l.msg).startsWith('AWS credentials: not ready yet'));

    const exit = await worker.stop('SIGTERM');

    // At once, not at the end of the 60 s start-up timeout: worker.stop would have sent SIGKILL
    // after 30 s, and a start that gave up would exit 1 with a fatal line.
    expect(exit).toEqual({ code: 0, signal: null });
    expect(worker.logs.filter((l) => l.level === 'fatal')).toEqual([]);
    expect(worker.logs.at(-1)).toMatchObject({ msg: 'stopped during start-up', signal: 'SIGTERM' });
  });
});

describe('the secret', () => {
  it('supplies settings, and wins over the environment (SECRETS_NAME, as in the seed)', async () => {
    const name = await createSecret(JSON.stringify({ MAX_IMAGES_PER_JOB: 1, SECRET_KEY: 'not-ours', AWS_REGION: 'eu-west-1' }));
    const env = stackEnv(stack, emulator.imdsEndpoint, { SECRETS_NAME: name, MAX_IMAGES_PER_JOB: '5' });
    const worker = workers.track(await startWorker(env));
    const image = await jpegImage();

    await sendJob(stack, inlineJob('oscar', [image, image], 'two-images'));
    const [outcome] = await outcomes(stack, 1);

    expect(outcome).toMatchObject({ status: 'failed', error: { code: 'TOO_MANY_IMAGES' } });
    const line = worker.logs.find((l) => l.msg === 'settings read from the secret');
    expect(line).toMatchObject({ secret: name, settings: ['MAX_IMAGES_PER_JOB'], ignoredKeys: ['SECRET_KEY', 'AWS_REGION'] });
    // Names only: no value of the secret is ever logged.
    expect(JSON.stringify(worker.logs)).not.toContain('not-ours');
    await worker.stop();
  });

  it('that cannot be read stops the start with exit 78, naming the variable', async () => {
    const env = stackEnv(stack, emulator.imdsEndpoint, { SECRETS_MANAGER_SECRET_NAME: 'no-such-secret' });
    const worker = spawnCli(['run'], env);

    const exit = await worker.exited;

    expect(exit.code).toBe(78);
    expect(String(worker.logs.find((l) => l.level === 'fatal')?.msg)).toMatch(
      /SECRETS_MANAGER_SECRET_NAME secret "no-such-secret" cannot be read: ResourceNotFoundException/,
    );
  });

  it('that is not a JSON object stops the start with exit 78', async () => {
    const name = await createSecret('["a", "list"]');
    const worker = spawnCli(['run'], stackEnv(stack, emulator.imdsEndpoint, { SECRETS_MANAGER_SECRET_NAME: name }));

    expect((await worker.exited).code).toBe(78);
    expect(String(worker.logs.find((l) => l.level === 'fatal')?.msg)).toContain(`secret "${name}" must be a JSON object`);
  });

  it('whose value breaks a setting says so, without echoing the value', async () => {
    const name = await createSecret(JSON.stringify({ CONCURRENCY: 'hunter2' }));
    const worker = spawnCli(['run'], stackEnv(stack, emulator.imdsEndpoint, { SECRETS_MANAGER_SECRET_NAME: name }));

    expect((await worker.exited).code).toBe(78);
    const fatal = worker.logs.find((l) => l.level === 'fatal');
    expect(fatal?.problems).toEqual(['CONCURRENCY (from the secret) must be a whole number from 1 to 1024']);
    expect(JSON.stringify(worker.logs)).not.toContain('hunter2');
  });
});
