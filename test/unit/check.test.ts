// `enrollment-worker check` (src/check.ts runChecks) with the worker's own clients against the
// in-process endpoint (test/support/fast-aws.ts): every check passing on a sound stack, and each
// one failing, with its fix, on the stack or settings that break it; checks after a failed
// credential or configuration step are not run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Client, secretsClient, sqsClient, stsClient } from '../../src/aws/clients.ts';
import { runChecks, type CheckClients, type CheckResult } from '../../src/check.ts';
import { startFastAws, type FastAws } from '../support/fast-aws.ts';
import { reply, startLoopbackHttp } from '../support/loopback-http.ts';
import { createStack, uniqueName, type Stack } from '../support/resources.ts';
import { stackEnv } from '../support/worker-process.ts';

let aws: FastAws;
let stack: Stack;
beforeAll(async () => {
  aws = await startFastAws({ delayMs: 0 });
  stack = await createStack(aws.endpoint, uniqueName('check'));
});
afterAll(async () => {
  await aws.stop();
});

/** The checks of `env`, run with clients that use `credentials`, and the clients closed after. */
async function check(
  env: NodeJS.ProcessEnv,
  credentials: CheckClients['credentials'] = async () => ({ accessKeyId: 'test', secretAccessKey: 'test' }),
  secretsEndpoint?: string,
): Promise<CheckResult[]> {
  const made: { destroy(): void }[] = [];
  const targets: unknown[] = [];
  const results = await runChecks(env, (target) => {
    targets.push(target);
    const clients = { credentials, sts: stsClient(target, credentials), sqs: sqsClient(target, credentials), s3: s3Client(target, credentials), secrets: secretsClient(secretsEndpoint ? { ...target, endpoint: secretsEndpoint } : target, credentials) };
    made.push(clients.sts, clients.sqs, clients.s3, clients.secrets);
    return clients;
  });
  for (const client of made) client.destroy();
  if (targets.length > 0) expect(targets).toEqual([{ region: 'us-east-1', endpoint: aws.endpoint }]);
  return results;
}

const envOf = (s: Stack, overrides: Record<string, string | undefined> = {}) => stackEnv(s, aws.imdsEndpoint, overrides);
const named = (results: CheckResult[], name: string) => results.find((r) => r.name === name);

describe('runChecks', () => {
  it('passes every check of a sound stack, one line each, in order', async () => {
    const results = await check(envOf(stack));

    expect(results.map((r) => [r.name, r.ok])).toEqual([
      ['credentials', true],
      ['configuration', true],
      ['signing', true],
      ['jobs queue', true],
      ['visibility', true],
      ['dead-letter queue', true],
      ['reference bucket', true],
      ['staging bucket', true],
      ['result queue', true],
      ['JPEG codec', true],
      ['face check', true],
    ]);
    expect(results.every((r) => r.hint === undefined)).toBe(true);
    const details = Object.fromEntries(results.map((r) => [r.name, r.detail]));
    expect(details).toEqual({
      credentials: expect.stringMatching(/; caller arn:aws:/),
      configuration: `queue ${stack.jobsQueueUrl}, bucket ${stack.bucket}, concurrency 4`,
      signing: 'ALLOW_UNSIGNED_JOBS=true: jobs are NOT authenticated',
      'jobs queue': expect.stringMatching(new RegExp(`^${stack.jobsQueueUrl} reachable \\(arn:aws:sqs:`)),
      visibility: '60 s, renewed every 20 s; drain 30 s; maxReceiveCount 5',
      'dead-letter queue': `${stack.deadLetterQueueUrl?.split('/').at(-1)} (from the redrive policy)`,
      'reference bucket': `s3://${stack.bucket}/users/ writable (probe left nothing behind)`,
      'staging bucket': `s3://${stack.stagingBucket}/ readable`,
      'result queue': `${stack.resultQueueUrl} reachable`,
      'JPEG codec': 'libjpeg-turbo loaded: references are rebuilt from their coefficients',
      'face check': 'off (FACE_CHECK=one refuses images without exactly one usable face)',
    });
  });

  it('names the signing keys in force by fingerprint, and a DEAD_LETTER_QUEUE_URL that answers', async () => {
    const results = await check(envOf(stack, { JOB_SIGNING_KEY: 'k'.repeat(32), JOB_SIGNING_KEY_PREVIOUS: 'p'.repeat(32), ALLOW_UNSIGNED_JOBS: undefined, DEAD_LETTER_QUEUE_URL: stack.deadLetterQueueUrl }));

    expect(named(results, 'signing')).toEqual({ name: 'signing', ok: true, detail: expect.stringMatching(/^jobs must be signed; keys in force: current \S+, previous \S+ \(fingerprints\)$/) });
    expect(named(results, 'dead-letter queue')).toEqual({ name: 'dead-letter queue', ok: true, detail: `${stack.deadLetterQueueUrl} (DEAD_LETTER_QUEUE_URL) reachable` });
  });

  it('stops after a secret that cannot be read, naming it and the fix', async () => {
    // No such secret on the in-process endpoint: Secrets Manager answers ResourceNotFoundException.
    const results = await check(envOf(stack, { SECRETS_MANAGER_SECRET_NAME: 'enrollment/worker' }));

    expect(results).toEqual([
      { name: 'credentials', ok: true, detail: expect.any(String) },
      { name: 'secret', ok: false, detail: expect.stringMatching(/\S/), hint: 'grant secretsmanager:GetSecretValue on the secret, and make it a JSON object of settings' },
    ]);
  });

  it('stops before any call when the environment is wrong', async () => {
    const results = await check(envOf(stack, { SQS_QUEUE_URL: undefined }));

    expect(results).toEqual([{ name: 'configuration', ok: false, detail: expect.stringContaining('SQS_QUEUE_URL'), hint: 'fix the variables named, in the environment file' }]);
  });

  it('stops after credentials that are refused, with how to attach a role', async () => {
    const results = await check(envOf(stack), async () => {
      throw Object.assign(new Error('no credentials here'), { name: 'CredentialsProviderError' });
    });

    expect(results).toEqual([{ name: 'credentials', ok: false, detail: 'CredentialsProviderError: no credentials here', hint: expect.stringContaining('instance profile') }]);
  });

  it('fails each missing queue and bucket with its fix, and a heartbeat too slow for the visibility timeout', async () => {
    const missing = {
      ...stack,
      jobsQueueUrl: `${aws.endpoint}/123456789012/no-such-jobs`,
      resultQueueUrl: `${aws.endpoint}/123456789012/no-such-results`,
      bucket: 'no-such-refs',
      stagingBucket: 'no-such-staging',
    };
    const results = await check(envOf(missing, { DEAD_LETTER_QUEUE_URL: `${aws.endpoint}/123456789012/no-such-dlq`, HEARTBEAT_INTERVAL_SECONDS: '31', VISIBILITY_TIMEOUT_SECONDS: '60' }));

    const failed = results.filter((r) => !r.ok);
    expect(failed.map((r) => r.name)).toEqual(['jobs queue', 'visibility', 'dead-letter queue', 'reference bucket', 'staging bucket', 'result queue']);
    expect(named(results, 'jobs queue')?.hint).toBe('check SQS_QUEUE_URL and sqs:GetQueueAttributes/ReceiveMessage on it');
    expect(named(results, 'visibility')).toMatchObject({ detail: 'heartbeat every 31 s against a 60 s visibility timeout', hint: expect.stringContaining('at most half') });
    expect(named(results, 'dead-letter queue')?.hint).toBe('check DEAD_LETTER_QUEUE_URL and sqs:SendMessage/GetQueueAttributes on it');
    expect(named(results, 'reference bucket')).toMatchObject({ detail: expect.stringContaining('NoSuchBucket'), hint: 'check that S3_BUCKET exists, and grant s3:PutObject on arn:aws:s3:::no-such-refs/users/*' });
    expect(named(results, 'staging bucket')).toMatchObject({ detail: expect.stringContaining('NoSuchBucket'), hint: expect.stringContaining('arn:aws:s3:::no-such-staging/') });
    expect(named(results, 'result queue')?.hint).toBe('check RESULT_QUEUE_URL and sqs:SendMessage/GetQueueAttributes on it');
    for (const r of failed) expect(r.detail).not.toBe('');
  });

  it('fails a jobs queue without a dead-letter queue, and a redrive policy that leaves too few retries', async () => {
    const [bare, tight] = await Promise.all([
      createStack(aws.endpoint, uniqueName('check-bare'), { withDeadLetterQueue: false, withResultQueue: false, withStaging: false }),
      createStack(aws.endpoint, uniqueName('check-tight'), { maxReceiveCount: 2 }),
    ]);
    const [bareResults, tightResults] = await Promise.all([check(envOf(bare)), check(envOf(tight))]);

    expect(named(bareResults, 'dead-letter queue')).toEqual({
      name: 'dead-letter queue',
      ok: false,
      detail: 'none: no DEAD_LETTER_QUEUE_URL and no redrive policy',
      hint: 'give the jobs queue a redrive policy to a dead-letter queue, or set DEAD_LETTER_QUEUE_URL',
    });
    expect(named(bareResults, 'visibility')?.detail).toBe('60 s, renewed every 20 s; drain 30 s');
    expect(bareResults.map((r) => r.name)).not.toContain('staging bucket');
    expect(bareResults.map((r) => r.name)).not.toContain('result queue');
    expect(named(tightResults, 'visibility')).toEqual({
      name: 'visibility',
      ok: false,
      detail: 'maxReceiveCount 2 leaves a transient failure fewer than 2 retries',
      hint: 'raise maxReceiveCount in the jobs queue redrive policy (5 or more)',
    });
  });

  it('reads the secret and says which settings it supplies', async () => {
    // Secrets Manager, answered by hand.
    const secrets = await startLoopbackHttp((_req, res) =>
      reply(res, 200, { 'content-type': 'application/x-amz-json-1.1' }, JSON.stringify({ Name: 'worker', SecretString: JSON.stringify({ CONCURRENCY: '4', RETRY_BASE_SECONDS: '1' }) })),
    );
    try {
      const results = await check(envOf(stack, { SECRETS_MANAGER_SECRET_NAME: 'worker', CONCURRENCY: undefined, RETRY_BASE_SECONDS: undefined }), undefined, secrets.endpoint);
      secrets.answerWith((_req, res) => reply(res, 200, { 'content-type': 'application/x-amz-json-1.1' }, JSON.stringify({ Name: 'worker', SecretString: '{}' })));
      const empty = await check(envOf(stack, { SECRETS_MANAGER_SECRET_NAME: 'worker' }), undefined, secrets.endpoint);

      expect(named(results, 'secret')).toEqual({ name: 'secret', ok: true, detail: '"worker" readable; supplies CONCURRENCY, RETRY_BASE_SECONDS' });
      expect(named(empty, 'secret')?.detail).toBe('"worker" readable; supplies no settings');
      expect(named(results, 'configuration')?.ok).toBe(true);
    } finally {
      await secrets.close();
    }
  });

  it('names one signing key without a previous one; a plain error is its message alone', async () => {
    const keyed = await check(envOf(stack, { JOB_SIGNING_KEY: 'k'.repeat(32), ALLOW_UNSIGNED_JOBS: undefined }));
    const plain = await check(envOf(stack), async () => {
      throw new Error('no role attached');
    });

    expect(named(keyed, 'signing')?.detail).toMatch(/^jobs must be signed; keys in force: current \S+ \(fingerprints\)$/);
    expect(plain).toEqual([{ name: 'credentials', ok: false, detail: 'no role attached', hint: expect.any(String) }]);
  });

  it('passes a heartbeat of exactly half the visibility timeout, and a maxReceiveCount of 3', async () => {
    const three = await createStack(aws.endpoint, uniqueName('check-three'), { maxReceiveCount: 3 });
    const results = await check(envOf(three, { HEARTBEAT_INTERVAL_SECONDS: '30', VISIBILITY_TIMEOUT_SECONDS: '60' }));

    expect(named(results, 'visibility')).toEqual({ name: 'visibility', ok: true, detail: '60 s, renewed every 30 s; drain 30 s; maxReceiveCount 3' });
  });
});
