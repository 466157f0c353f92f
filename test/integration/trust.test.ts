// The trust model end to end (docs/security.md "Threat model"): the built worker against the emulator.
// - a captured signed job re-sent after its staged object was overwritten stores nothing (SOURCE_MISMATCH);
// - a signed job older than SIGNED_JOB_MAX_AGE_SECONDS expires (JOB_EXPIRED);
// - authentication fails closed: a restart whose secret lost the key is refused (exit 78), and a key
//   left in the environment beside a secret is refused; the keys in force are logged by fingerprint;
// - bodies that used to loop end in one verdict: deep nesting, characters SQS refuses (checked at
//   the fast endpoint, which enforces SQS's rules), a staging bucket that does not exist.
import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { signJob } from '../../src/job/signature.ts';
import { buildSignedJob } from '../../src/producer/enqueue.ts';
import { jpegImage } from '../support/images.ts';
import { startFastAws, type FastAws } from '../support/fast-aws.ts';
import { issuedNow, outcomes, sendJob } from '../support/jobs.ts';
import { createStack, drainQueue, listKeys, TEST_REGION, uniqueName, type Stack } from '../support/resources.ts';
import { spawnCli, stackEnv, startWorker, workerReaper } from '../support/worker-process.ts';
import { until } from '../support/wait.ts';
import { sha256Hex as sha256 } from '../support/bytes.ts';

const emulator = inject('emulator');
const workers = workerReaper();
afterAll(() => workers.killAll());

const KEY = 'trust-suite-current-key-0123456789abcdef01';
const NEXT_KEY = 'trust-suite-next-key-0123456789abcdef0123456';
const fingerprint = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 8);

function secretsClient(): SecretsManagerClient {
  // The emulator's dummy credentials.
  return new SecretsManagerClient({ region: TEST_REGION, endpoint: emulator.endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
}

describe('a staged image is pinned by the signed body (the takeover of docs/security.md "Threat model")', () => {
  let stack: Stack;
  let victimFace: Buffer;
  let attackerFace: Buffer;

  beforeAll(async () => {
    stack = await createStack(emulator.endpoint, uniqueName('takeover'));
    [victimFace, attackerFace] = await Promise.all([jpegImage({ width: 200, height: 160, seed: 1 }), jpegImage({ width: 200, height: 160, seed: 2 })]);
    workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { JOB_SIGNING_KEY: KEY, ALLOW_UNSIGNED_JOBS: undefined })));
  });

  it('refuses a captured dead-letter entry re-sent after the staged object was overwritten: SOURCE_MISMATCH, nothing stored', async () => {
    // Prepare: a genuine signed job whose staged photo was not there yet: it fails and its body and
    // Signature land in the dead-letter queue, where a leaked producer role can read them.
    const staging = stack.stagingBucket ?? '';
    const key = 'uploads/victim-1/face.jpg';
    const genuine = buildSignedJob({ jobId: 'victim-1', userId: 'victim', images: [{ bucket: staging, key, bytes: victimFace }] }, KEY);
    await sendJob(stack, genuine.body, genuine.messageAttributes);
    expect((await outcomes(stack, 1))[0]).toMatchObject({ status: 'failed', error: { code: 'SOURCE_NOT_FOUND' } });
    const [captured] = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 1, timeoutMs: 20_000 });
    expect(captured?.MessageAttributes?.Signature?.StringValue).toBe(genuine.messageAttributes.Signature?.StringValue);

    // Act: the attacker (PutObject on staging, SendMessage, no key) stages their own face and replays.
    await stack.s3.send(new PutObjectCommand({ Bucket: staging, Key: key, Body: attackerFace }));
    await sendJob(stack, captured?.Body ?? '', { Signature: { DataType: 'String', StringValue: captured?.MessageAttributes?.Signature?.StringValue ?? '' } });
    const [outcome] = await outcomes(stack, 1);

    // Assess
    expect(outcome).toMatchObject({ jobId: 'victim-1', userId: 'victim', status: 'failed', error: { code: 'SOURCE_MISMATCH' } });
    expect(outcome).toMatchObject({ status: 'failed', error: { message: `images[0]: the staged object's SHA-256 is ${sha256(attackerFace)}, the job says ${sha256(victimFace)}` } });
    const [dead] = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 1, timeoutMs: 20_000 });
    expect(dead?.MessageAttributes?.ErrorCode?.StringValue).toBe('SOURCE_MISMATCH');
    expect(await listKeys(stack.s3, stack.bucket, 'users/victim/')).toEqual([]);
  });

  it('refuses a replay of a job that succeeded once its staged object was overwritten: the victim keeps only their own face', async () => {
    // Prepare: a genuine staged enrollment that succeeds.
    const staging = stack.stagingBucket ?? '';
    const key = 'uploads/victim-2/face.jpg';
    await stack.s3.send(new PutObjectCommand({ Bucket: staging, Key: key, Body: victimFace }));
    const genuine = buildSignedJob({ jobId: 'victim-2', userId: 'victim', images: [{ bucket: staging, key, bytes: victimFace }] }, KEY);
    await sendJob(stack, genuine.body, genuine.messageAttributes);
    expect((await outcomes(stack, 1))[0]?.status).toBe('succeeded');
    const before = await listKeys(stack.s3, stack.bucket, 'users/victim/');

    // Act: overwrite, then send the same body and Signature again.
    await stack.s3.send(new PutObjectCommand({ Bucket: staging, Key: key, Body: attackerFace }));
    await sendJob(stack, genuine.body, genuine.messageAttributes);
    const [outcome] = await outcomes(stack, 1);

    // Assess
    expect(outcome).toMatchObject({ status: 'failed', error: { code: 'SOURCE_MISMATCH' } });
    expect(before).toEqual([`users/victim/ref_${sha256(victimFace).slice(0, 12)}.jpg`]);
    expect(await listKeys(stack.s3, stack.bucket, 'users/victim/')).toEqual(before);
  });
});

describe('signed jobs expire', () => {
  it('dead-letters a signed job older than SIGNED_JOB_MAX_AGE_SECONDS as JOB_EXPIRED, and runs a fresh one', async () => {
    // Prepare
    const stack = await createStack(emulator.endpoint, uniqueName('expiry'));
    workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { JOB_SIGNING_KEY: KEY, SIGNED_JOB_MAX_AGE_SECONDS: '60' })));
    const photo = await jpegImage({ width: 120, height: 90 });
    const oldIssuedAt = issuedNow() - 120;
    const old = buildSignedJob({ jobId: 'old', userId: 'olga', images: [photo], issuedAt: oldIssuedAt }, KEY);
    const fresh = buildSignedJob({ jobId: 'fresh', userId: 'olga', images: [photo] }, KEY);

    // Act
    await sendJob(stack, old.body, old.messageAttributes);
    await sendJob(stack, fresh.body, fresh.messageAttributes);
    const results = await outcomes(stack, 2);

    // Assess
    const byJob = new Map(results.map((o) => [o.jobId, o]));
    expect(byJob.get('old')).toMatchObject({
      status: 'failed',
      error: { code: 'JOB_EXPIRED', message: expect.stringMatching(/^the job was issued \d+ s ago; jobs expire after 60 s \(SIGNED_JOB_MAX_AGE_SECONDS\)/) },
    });
    // Its age when the worker judged it: at least the 120 s it was built with, at most its age now.
    const oldOutcome = byJob.get('old');
    const age = Number(/issued (\d+) s ago/.exec(oldOutcome?.status === 'failed' ? oldOutcome.error.message : '')?.[1]);
    expect(age).toBeGreaterThanOrEqual(120);
    expect(age).toBeLessThanOrEqual(issuedNow() - oldIssuedAt);
    expect(byJob.get('fresh')?.status).toBe('succeeded');
    const dead = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 1, timeoutMs: 20_000 });
    expect(dead.map((m) => [m.Body, m.MessageAttributes?.ErrorCode?.StringValue])).toEqual([[old.body, 'JOB_EXPIRED']]);
  });
});

describe('authentication fails closed', () => {
  it('refuses a restart whose secret lost JOB_SIGNING_KEY (exit 78, one fatal line that says how to fix it)', async () => {
    // Prepare: a worker running with its key in the secret.
    const stack = await createStack(emulator.endpoint, uniqueName('failclosed'));
    const secrets = secretsClient();
    const name = uniqueName('keys');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ JOB_SIGNING_KEY: KEY }) }));
    const env = stackEnv(stack, emulator.imdsEndpoint, { SECRETS_MANAGER_SECRET_NAME: name, ALLOW_UNSIGNED_JOBS: undefined });
    const first = workers.track(await startWorker(env));
    expect((await first.stop('SIGTERM')).code).toBe(0);

    // Act: one bad edit of the secret, then a restart (watchdog, crash, a new instance…).
    await secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: JSON.stringify({ MAX_IMAGES_PER_JOB: '5' }) }));
    const second = workers.track(spawnCli(['run'], env));
    const exit = await second.exited;

    // Assess
    expect(exit.code).toBe(78);
    const fatal = second.logs.filter((l) => l.level === 'fatal');
    expect(fatal).toHaveLength(1);
    expect(fatal[0]?.problems).toEqual([
      'JOB_SIGNING_KEY is required: jobs must be signed (put the key in the secret; to run without authenticating jobs, set ALLOW_UNSIGNED_JOBS=true)',
    ]);
    expect(second.logs.some((l) => l.msg === 'ready: receiving jobs')).toBe(false);
    secrets.destroy();
  });

  it('refuses a key left in the environment when a secret is named, before reading anything (exit 78, naming the variable)', async () => {
    // Prepare
    const stack = await createStack(emulator.endpoint, uniqueName('envkey'));
    const env = stackEnv(stack, emulator.imdsEndpoint, { SECRETS_MANAGER_SECRET_NAME: 'any-secret', JOB_SIGNING_KEY: KEY, ALLOW_UNSIGNED_JOBS: undefined });

    // Act
    const worker = workers.track(spawnCli(['run'], env));
    const exit = await worker.exited;

    // Assess
    expect(exit.code).toBe(78);
    expect(worker.logs.find((l) => l.level === 'fatal')?.problems).toEqual([
      'JOB_SIGNING_KEY must not be set in the environment when SECRETS_MANAGER_SECRET_NAME names a secret: keep signing keys in the secret only',
    ]);
    expect(worker.logs.some((l) => l.msg === 'AWS credentials')).toBe(false);
    expect(JSON.stringify(worker.logs)).not.toContain(KEY);
  });

  it('logs the keys in force by fingerprint at start, and a swapped key in "applied" at reload', async () => {
    // Prepare
    const stack = await createStack(emulator.endpoint, uniqueName('rotation'));
    const secrets = secretsClient();
    const name = uniqueName('rotkeys');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ JOB_SIGNING_KEY: KEY }) }));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { SECRETS_MANAGER_SECRET_NAME: name, ALLOW_UNSIGNED_JOBS: undefined })));
    const photo = await jpegImage({ width: 100, height: 80 });

    // Act: rotate (new key current, old one previous), reload, then send jobs signed by each key.
    await secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: JSON.stringify({ JOB_SIGNING_KEY: NEXT_KEY, JOB_SIGNING_KEY_PREVIOUS: KEY }) }));
    worker.child.kill('SIGHUP');
    const reloaded = await worker.waitForLog((l) => l.msg === 'reload: secret re-read');
    const byOld = buildSignedJob({ jobId: 'by-old', userId: 'rita', images: [photo] }, KEY);
    const byNew = buildSignedJob({ jobId: 'by-new', userId: 'rita', images: [photo] }, NEXT_KEY);
    await sendJob(stack, byOld.body, byOld.messageAttributes);
    await sendJob(stack, byNew.body, byNew.messageAttributes);
    const results = await outcomes(stack, 2);

    // Assess
    expect(worker.logs.find((l) => l.msg === 'ready: receiving jobs')?.signingKeys).toEqual({ current: fingerprint(KEY), previous: null });
    expect(reloaded).toMatchObject({ applied: ['signingKeys'], signingKeys: { current: fingerprint(NEXT_KEY), previous: fingerprint(KEY) } });
    expect(results.map((o) => o.status)).toEqual(['succeeded', 'succeeded']);
    // The outcome is sent before the job's last log line is written: wait for the lines, not the outcomes.
    await until('both jobs to log their success', () => worker.logs.filter((l) => l.msg === 'job succeeded').length >= 2, 10_000);
    const matched = Object.fromEntries(worker.logs.filter((l) => l.msg === 'job succeeded').map((l) => [l.jobId, l.signature]));
    expect(matched).toEqual({ 'by-old': 'previous', 'by-new': 'current' });
    const everything = JSON.stringify(worker.logs);
    for (const key of [KEY, NEXT_KEY]) expect(everything).not.toContain(key);
    secrets.destroy();
  });
});

describe('bodies that used to loop end in one verdict', () => {
  it('dead-letters a ~600 KB body of nested arrays once, with its code and message id, with only DEAD_LETTER_QUEUE_URL set', async () => {
    // Prepare: no redrive policy — nothing but the worker would ever end a loop.
    const stack = await createStack(emulator.endpoint, uniqueName('nested'), { withDeadLetterQueue: false });
    const dlq = await createStack(emulator.endpoint, uniqueName('nested-dlq'), { withDeadLetterQueue: false, withResultQueue: false, withStaging: false });
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { DEAD_LETTER_QUEUE_URL: dlq.jobsQueueUrl })));
    const depth = 300_000;
    const body = `{"version":${'['.repeat(depth)}${']'.repeat(depth)}}`;

    // Act
    const messageId = await sendJob(stack, body);
    const [outcome] = await outcomes(stack, 1);

    // Assess
    expect(outcome).toMatchObject({ messageId, status: 'failed', error: { code: 'UNSUPPORTED_VERSION' } });
    const dead = await drainQueue(stack.sqs, dlq.jobsQueueUrl, { timeoutMs: 5_000 });
    expect(dead.map((m) => m.MessageAttributes?.ErrorCode?.StringValue)).toEqual(['UNSUPPORTED_VERSION']);
    expect(dead[0]?.Body).toBe(body);
    expect(worker.logs.find((l) => l.msg === 'job failed')).toMatchObject({ messageId, code: 'UNSUPPORTED_VERSION' });
    expect(worker.logs.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('retries, not dead-letters, staged jobs when STAGING_BUCKET does not exist, and says so loudly; check reports it', async () => {
    // Prepare: a typo in STAGING_BUCKET.
    const stack = await createStack(emulator.endpoint, uniqueName('typo'));
    const env = stackEnv(stack, emulator.imdsEndpoint, { STAGING_BUCKET: `${stack.stagingBucket ?? ''}x` });
    const worker = workers.track(await startWorker(env));
    const photo = await jpegImage();
    const job = { version: 1, jobId: 'typo-1', userId: 'tom', issuedAt: issuedNow(), images: [{ s3: { bucket: env.STAGING_BUCKET, key: 'uploads/a.jpg', sha256: sha256(photo) } }] };

    // Act
    await sendJob(stack, job);
    const line = await worker.waitForLog((l) => l.jobId === 'typo-1' && l.outcome === 'retry');
    const check = spawnCli(['check'], env);
    await check.exited;

    // Assess
    expect(line).toMatchObject({ level: 'error', reason: 'configuration' });
    expect(String((line.err as { message?: string }).message)).toContain('STAGING_BUCKET');
    expect(await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { timeoutMs: 2_000 })).toEqual([]);
    expect(worker.logs.some((l) => l.jobId === 'typo-1' && l.msg === 'job failed')).toBe(false);
    expect(check.text.find((l) => l.startsWith('✗ staging bucket'))).toMatch(/NoSuchBucket/);
  });
});

describe('what the worker sends, at an endpoint that enforces SQS\'s character rules', () => {
  let fast: FastAws;
  beforeAll(async () => {
    fast = await startFastAws({ delayMs: 0 });
  });
  afterAll(async () => {
    await workers.killAll();
    await fast.stop();
  });

  it('dead-letters a job whose staged bucket name holds U+0001 and U+FFFF, with an ErrorMessage SQS accepts', async () => {
    // Prepare
    const stack = await createStack(fast.endpoint, uniqueName('chars'));
    const worker = workers.track(await startWorker(stackEnv(stack, fast.imdsEndpoint, { JOB_SIGNING_KEY: KEY })));
    const photo = await jpegImage();
    const job = { version: 1, jobId: 'chars-1', userId: 'una', issuedAt: issuedNow(), images: [{ s3: { bucket: 'stag\u0001ing\uFFFF', key: 'uploads/a.jpg', sha256: sha256(photo) } }] };
    // As JSON text SQS accepts: U+FFFF written as an escape (the endpoint refuses it raw, as SQS does).
    const body = JSON.stringify(job).replace('\uFFFF', '\\uffff');
    const attributes = { Signature: { DataType: 'String', StringValue: signJob(body, KEY) } };

    // Act
    await sendJob(stack, body, attributes);
    const [outcome] = await outcomes(stack, 1);

    // Assess: the dead-letter send was accepted on the first try; nothing was retried.
    expect(outcome).toMatchObject({ jobId: 'chars-1', status: 'failed', error: { code: 'SOURCE_NOT_ALLOWED' } });
    const [dead] = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 1, timeoutMs: 10_000 });
    expect(dead?.MessageAttributes?.ErrorMessage?.StringValue).toBe('images[0]: bucket "stag\\u0001ing\\uffff" is not the staging bucket');
    expect(worker.logs.some((l) => l.outcome === 'retry')).toBe(false);
  });
});
