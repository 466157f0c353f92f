/**
 * `enrollment-worker check`: what ops run after attaching a role, and the first thing to try when
 * something is wrong. Each check is one line with ✓ or ✗ and, on ✗, how to fix it. Checks that
 * need a working earlier step are reported as not run rather than failing noisily.
 */
import { randomUUID } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentityProvider } from '@aws-sdk/types';
import { whoAmI } from './aws/clients.ts';
import { checkEnvironment, ConfigError, loadConfig, secretNameOf, type Config, type Env } from './config.ts';
import { describeError } from './job/errors.ts';
import { createFaceDetector } from './face/detector.ts';
import { fingerprintsOf } from './job/signature.ts';
import { parseQueueArn, secretFetcher } from './worker/startup.ts';

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  readonly hint?: string;
}

export interface CheckClients {
  readonly credentials: AwsCredentialIdentityProvider;
  readonly sts: STSClient;
  readonly sqs: SQSClient;
  readonly s3: S3Client;
  readonly secrets: SecretsManagerClient;
}

const errorText = (e: unknown) => {
  const { name, message } = describeError(e);
  return name && name !== 'Error' ? `${name}: ${message}` : message;
};
/** The probe's expected answer: the object is not there (or does not match), the bucket is. */
const missingObject = (e: unknown) => {
  const name = e instanceof Error ? e.name : '';
  return name === 'NoSuchKey' || name === 'PreconditionFailed' || name === 'NotFound';
};

async function queueAttributes(sqs: SQSClient, queueUrl: string) {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn', 'VisibilityTimeout', 'RedrivePolicy'] }),
  );
  return Attributes;
}

/** Runs every check in order; never throws. */
export async function runChecks(env: Env, clientsFor: (target: { region: string; endpoint: string | undefined }) => CheckClients): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const pass = (name: string, detail: string) => results.push({ name, ok: true, detail });
  const fail = (name: string, detail: string, hint: string) => results.push({ name, ok: false, detail, hint });

  let boot;
  try {
    boot = checkEnvironment(env);
  } catch (e: unknown) {
    fail('configuration', e instanceof ConfigError ? e.problems.join('; ') : errorText(e), 'fix the variables named, in the environment file');
    return results;
  }
  const clients = clientsFor({ region: boot.region, endpoint: boot.endpoint });

  try {
    const identity = await whoAmI(clients.credentials, clients.sts);
    pass('credentials', `${identity.credentialSource}; caller ${identity.arn}`);
  } catch (e: unknown) {
    fail('credentials', errorText(e), 'on EC2, attach an instance profile whose role has systemd/iam-policy.json; IMDSv2 must be reachable (hop limit ≥ 1 on the host)');
    return results;
  }

  let config: Config;
  const secretName = secretNameOf(env);
  try {
    ({ config } = await loadConfig(env, secretFetcher(clients.secrets, env)));
    if (secretName !== undefined) {
      pass('secret', `"${secretName}" readable; supplies ${config.fromSecret.length > 0 ? config.fromSecret.join(', ') : 'no settings'}`);
    }
    pass('configuration', `queue ${config.queueUrl}, bucket ${config.bucket}, concurrency ${config.concurrency}`);
    const keys = fingerprintsOf(config.signingKeys);
    pass(
      'signing',
      keys.current === null
        ? 'ALLOW_UNSIGNED_JOBS=true: jobs are NOT authenticated'
        : `jobs must be signed; keys in force: current ${keys.current}${keys.previous === null ? '' : `, previous ${keys.previous}`} (fingerprints)`,
    );
  } catch (e: unknown) {
    const problems = e instanceof ConfigError ? e.problems.join('; ') : errorText(e);
    fail(secretName !== undefined ? 'secret' : 'configuration', problems, 'grant secretsmanager:GetSecretValue on the secret, and make it a JSON object of settings');
    return results;
  }

  let redrive: { deadLetterTargetArn?: unknown; maxReceiveCount?: unknown } = {};
  try {
    const attributes = await queueAttributes(clients.sqs, config.queueUrl);
    redrive = attributes.RedrivePolicy ? JSON.parse(attributes.RedrivePolicy) : {};
    pass('jobs queue', `${config.queueUrl} reachable (${attributes.QueueArn ?? 'no ARN'})`);
  } catch (e: unknown) {
    fail('jobs queue', errorText(e), 'check SQS_QUEUE_URL and sqs:GetQueueAttributes/ReceiveMessage on it');
  }

  const { visibilityTimeoutSeconds: visibility, heartbeatIntervalSeconds: heartbeat } = config;
  const maxReceiveCount = Number(redrive.maxReceiveCount);
  if (heartbeat * 2 > visibility) {
    fail('visibility', `heartbeat every ${heartbeat} s against a ${visibility} s visibility timeout`, 'keep HEARTBEAT_INTERVAL_SECONDS at most half of VISIBILITY_TIMEOUT_SECONDS, so one late heartbeat cannot free a running job');
  } else if (Number.isInteger(maxReceiveCount) && maxReceiveCount < 3) {
    fail('visibility', `maxReceiveCount ${maxReceiveCount} leaves a transient failure fewer than 2 retries`, 'raise maxReceiveCount in the jobs queue redrive policy (5 or more)');
  } else {
    pass('visibility', `${visibility} s, renewed every ${heartbeat} s; drain ${config.drainTimeoutSeconds} s${Number.isInteger(maxReceiveCount) ? `; maxReceiveCount ${maxReceiveCount}` : ''}`);
  }

  const target = typeof redrive.deadLetterTargetArn === 'string' ? parseQueueArn(redrive.deadLetterTargetArn) : undefined;
  if (config.deadLetterQueueUrl !== undefined) {
    try {
      await queueAttributes(clients.sqs, config.deadLetterQueueUrl);
      pass('dead-letter queue', `${config.deadLetterQueueUrl} (DEAD_LETTER_QUEUE_URL) reachable`);
    } catch (e: unknown) {
      fail('dead-letter queue', errorText(e), 'check DEAD_LETTER_QUEUE_URL and sqs:SendMessage/GetQueueAttributes on it');
    }
  } else if (target) {
    pass('dead-letter queue', `${target.name} (from the redrive policy)`);
  } else {
    fail('dead-letter queue', 'none: no DEAD_LETTER_QUEUE_URL and no redrive policy', 'give the jobs queue a redrive policy to a dead-letter queue, or set DEAD_LETTER_QUEUE_URL');
  }

  // A conditional put that can never match: S3 checks the permission first, then answers 404/412
  // for the missing object, so the right to write is proven and nothing is left behind. The "_"
  // segment can never be a user id.
  const probeKey = `users/_check/${randomUUID()}`;
  try {
    await clients.s3.send(
      new PutObjectCommand({ Bucket: config.bucket, Key: probeKey, Body: Buffer.alloc(0), ContentLength: 0, IfMatch: '"enrollment-worker-check"' }),
    );
    fail('reference bucket', `s3://${config.bucket}/${probeKey} was written although it should not have been`, 'this S3 endpoint ignores If-Match; delete the probe object');
  } catch (e: unknown) {
    if (missingObject(e)) pass('reference bucket', `s3://${config.bucket}/users/ writable (probe left nothing behind)`);
    else fail('reference bucket', errorText(e), `check that S3_BUCKET exists, and grant s3:PutObject on arn:aws:s3:::${config.bucket}/users/*`);
  }

  if (config.stagingBucket !== undefined) {
    const key = `${config.stagingPrefix}_check/${randomUUID()}`;
    try {
      // A GET, not a HEAD: only an error body tells a missing key from a missing bucket.
      await clients.s3.send(new GetObjectCommand({ Bucket: config.stagingBucket, Key: key, Range: 'bytes=0-0' }));
      pass('staging bucket', `s3://${config.stagingBucket}/${config.stagingPrefix} readable`);
    } catch (e: unknown) {
      if (missingObject(e)) pass('staging bucket', `s3://${config.stagingBucket}/${config.stagingPrefix} readable`);
      else fail('staging bucket', errorText(e), `check that STAGING_BUCKET exists, and grant s3:GetObject on arn:aws:s3:::${config.stagingBucket}/${config.stagingPrefix}* and s3:ListBucket on the bucket`);
    }
  }

  if (config.resultQueueUrl !== undefined) {
    try {
      await queueAttributes(clients.sqs, config.resultQueueUrl);
      pass('result queue', `${config.resultQueueUrl} reachable`);
    } catch (e: unknown) {
      fail('result queue', errorText(e), 'check RESULT_QUEUE_URL and sqs:SendMessage/GetQueueAttributes on it');
    }
  }

  if (config.faceCheck === 'one') {
    // The model must load and find the one face of the built-in probe image, as at the worker's start.
    const detector = createFaceDetector({ threads: 1 });
    try {
      const probe = await detector.probe();
      if (probe.ok) pass('face check', `${probe.message}; FACE_MIN_SCORE ${config.faceMinScore}, FACE_MIN_SIZE ${config.faceMinSize}`);
      else fail('face check', probe.message, 'reinstall the release (the model ships inside @vladmandic/face-api), or set FACE_CHECK=off');
    } finally {
      await detector.close();
    }
  } else {
    pass('face check', 'off (FACE_CHECK=one refuses images without exactly one usable face)');
  }
  return results;
}

export function formatChecks(results: readonly CheckResult[]): string {
  return results
    .map((r) => `${r.ok ? '✓' : '✗'} ${r.name}: ${r.detail}${r.ok || !r.hint ? '' : `\n    fix: ${r.hint}`}`)
    .join('\n');
}
