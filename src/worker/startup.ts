/**
 * The start-up checks: configuration (with the secret), credentials and caller identity, the jobs
 * queue and its dead-letter queue, the result queue and the reference bucket. What the world gets wrong for now (no credentials yet, network)
 * is retried with backoff until STARTUP_TIMEOUT_SECONDS; what the configuration gets wrong fails
 * at once with a ConfigError (exit 78), naming the variable to fix.
 */
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { S3Client } from '@aws-sdk/client-s3';
import { GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentityProvider } from '@aws-sdk/types';
import type { Logger } from 'pino';
import { whoAmI, type Identity } from '../aws/clients.ts';
import { awsErrorName } from '../aws/errors.ts';
import { queueAttributes } from '../aws/queues.ts';
import { probeReferenceBucket } from '../aws/s3.ts';
import { sameQueue } from '../aws/sqs-rules.ts';
import { ConfigError, secretVariable, type Env, type SecretFetcher } from '../config.ts';
import { describeError, transientReason } from '../job/errors.ts';

export class StartupError extends Error {
  override readonly name = 'StartupError';
}

const RETRYABLE = new Set(['network', 'server', 'throttled', 'timeout', 'credentials']);

/** An endpoint that accepts a connection and never answers must not hold the start past its deadline. */
async function beforeDeadline<T>(work: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StartupError(`${what} did not succeed before the start-up timeout: no answer`)),
      Math.max(0, deadline - Date.now()),
    );
  });
  // If the deadline wins, the abandoned call may still fail later: that is expected, not unhandled.
  work.catch(() => {});
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `attempt` until it succeeds, a non-transient error occurs (rethrown, after `explain` may
 * turn it into a ConfigError), or the deadline passes. Logs the first failure and the recovery.
 */
export async function untilReady<T>(
  what: string,
  attempt: () => Promise<T>,
  options: { deadline: number; log: Logger; explain?: (e: unknown) => Error | undefined; sleep?: (ms: number) => Promise<void> },
): Promise<T> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let tries = 1; ; tries += 1) {
    try {
      const result = await beforeDeadline(attempt(), options.deadline, what);
      if (tries > 1) options.log.info({ tries }, `${what}: ready`);
      return result;
    } catch (e: unknown) {
      if (e instanceof StartupError) throw e;
      const explained = options.explain?.(e);
      if (explained) throw explained;
      const reason = transientReason(e);
      if (!RETRYABLE.has(reason)) throw e;
      const wait = Math.min(10_000, 500 * 2 ** tries);
      if (Date.now() + wait > options.deadline) {
        throw new StartupError(`${what} did not succeed before the start-up timeout: ${describeError(e).message}`, { cause: e });
      }
      const fields = { tries, reason, err: describeError(e), retryInMs: wait };
      if (tries === 1) options.log.warn(fields, `${what}: not ready yet, retrying`);
      else options.log.debug(fields, `${what}: still not ready`);
      await sleep(wait);
    }
  }
}

const SECRET_CONFIG_ERRORS = new Set([
  'ResourceNotFoundException',
  'AccessDeniedException',
  'DecryptionFailure',
  'InvalidRequestException',
  'InvalidParameterException',
]);

export async function fetchSecretText(secrets: SecretsManagerClient, secretName: string, variable: string): Promise<string> {
  try {
    const result = await secrets.send(new GetSecretValueCommand({ SecretId: secretName }));
    if (result.SecretString === undefined) throw new ConfigError([`${variable} secret "${secretName}" has no string value (binary secrets are not supported)`]);
    return result.SecretString;
  } catch (e: unknown) {
    if (SECRET_CONFIG_ERRORS.has(awsErrorName(e))) {
      throw new ConfigError([`${variable} secret "${secretName}" cannot be read: ${awsErrorName(e)}: ${describeError(e).message}`]);
    }
    throw e;
  }
}

/** The fetcher `loadConfig` takes: the secret's text through `secrets`, errors naming the variable used. */
export function secretFetcher(secrets: SecretsManagerClient, env: Env): SecretFetcher {
  return (secretName) => fetchSecretText(secrets, secretName, secretVariable(env));
}

export function identityOf(credentials: AwsCredentialIdentityProvider, sts: STSClient, deadline: number, log: Logger): Promise<Identity> {
  return untilReady('AWS credentials', () => whoAmI(credentials, sts), {
    deadline,
    log,
    explain: (e) =>
      ['InvalidClientTokenId', 'SignatureDoesNotMatch', 'UnrecognizedClientException'].includes(awsErrorName(e))
        ? new StartupError(`the credentials from the default chain were refused: ${awsErrorName(e)}`, { cause: e })
        : undefined,
  });
}

const QUEUE_CONFIG_ERRORS = new Set([
  'QueueDoesNotExist',
  'AWS.SimpleQueueService.NonExistentQueue',
  'AccessDenied',
  'AccessDeniedException',
  'InvalidAddress',
  'InvalidSecurity',
]);

export interface QueueFacts {
  readonly deadLetterQueueUrl: string | undefined;
  /** Where the dead-letter queue came from, for the start-up log. */
  readonly deadLetterSource: 'DEAD_LETTER_QUEUE_URL' | 'redrive policy' | 'none';
  readonly maxReceiveCount: number | undefined;
}

function queueError(variable: string, what: string) {
  return (e: unknown) =>
    QUEUE_CONFIG_ERRORS.has(awsErrorName(e))
      ? new ConfigError([`${variable}: ${what} cannot be used: ${awsErrorName(e)}: ${describeError(e).message}`])
      : undefined;
}

/** Confirms the jobs queue answers and finds its dead-letter queue. */
export async function inspectJobsQueue(
  sqs: SQSClient,
  queueUrl: string,
  deadLetterQueueUrl: string | undefined,
  deadline: number,
  log: Logger,
): Promise<QueueFacts> {
  const attributes = await untilReady('the jobs queue', () => queueAttributes(sqs, queueUrl), {
    deadline,
    log,
    explain: queueError('SQS_QUEUE_URL', `the queue ${queueUrl}`),
  });
  if (attributes.redriveMalformed) log.warn('the jobs queue has a redrive policy that is not JSON; ignoring it');
  const maxReceiveCount = attributes.redrive?.maxReceiveCount;
  if (deadLetterQueueUrl !== undefined) {
    // Named outright: it must answer too, or every failed job would be retried instead of dead-lettered.
    await untilReady('the dead-letter queue', () => queueAttributes(sqs, deadLetterQueueUrl), {
      deadline,
      log,
      explain: queueError('DEAD_LETTER_QUEUE_URL', `the dead-letter queue ${deadLetterQueueUrl}`),
    });
    return { deadLetterQueueUrl, deadLetterSource: 'DEAD_LETTER_QUEUE_URL', maxReceiveCount };
  }
  const target = attributes.redrive?.deadLetterQueue;
  if (!target) return { deadLetterQueueUrl: undefined, deadLetterSource: 'none', maxReceiveCount };
  const url = await untilReady(
    'the dead-letter queue',
    async () => (await sqs.send(new GetQueueUrlCommand({ QueueName: target.name, QueueOwnerAWSAccountId: target.account }))).QueueUrl,
    { deadline, log, explain: queueError('SQS_QUEUE_URL', `the dead-letter queue "${target.name}" named by its redrive policy`) },
  );
  if (url !== undefined && sameQueue(url, queueUrl)) {
    throw new ConfigError([`SQS_QUEUE_URL: its redrive policy names the jobs queue itself as the dead-letter queue`]);
  }
  return { deadLetterQueueUrl: url, deadLetterSource: url ? 'redrive policy' : 'none', maxReceiveCount };
}

/** Where a job's results go, as far as the worker can be told wrong about them. */
export interface OutputSettings {
  readonly bucket: string;
  readonly resultQueueUrl: string | undefined;
}

/**
 * Confirms where results go before any job depends on it: the result queue answers (GetQueueAttributes,
 * which the role has for sending) and the reference bucket takes writes under `users/` (a conditional
 * put that leaves nothing behind). A typo in either would otherwise be found job by job — every good
 * job stored and then retried until the redrive policy dead-letters it without an outcome — so it is
 * a ConfigError naming the variable: exit 78 at start, a refused reload. `only` limits the probes to
 * the settings a reload changes.
 */
export async function inspectOutputs(
  clients: { readonly sqs: SQSClient; readonly s3: S3Client },
  settings: OutputSettings,
  deadline: number,
  log: Logger,
  only: { readonly bucket: boolean; readonly resultQueue: boolean } = { bucket: true, resultQueue: true },
): Promise<void> {
  const { resultQueueUrl, bucket } = settings;
  if (only.resultQueue && resultQueueUrl !== undefined) {
    await untilReady('the result queue', () => queueAttributes(clients.sqs, resultQueueUrl), {
      deadline,
      log,
      explain: queueError('RESULT_QUEUE_URL', `the result queue ${resultQueueUrl}`),
    });
  }
  if (only.bucket) {
    const probe = await untilReady('the reference bucket', () => probeReferenceBucket(clients.s3, bucket), {
      deadline,
      log,
      // A missing bucket, a refused write, a bucket in another region: nothing a retry mends.
      explain: (e) =>
        RETRYABLE.has(transientReason(e))
          ? undefined
          : new ConfigError([`S3_BUCKET: references cannot be written to s3://${bucket}/users/: ${awsErrorName(e) || describeError(e).name}: ${describeError(e).message}`]),
    });
    if (probe.result === 'written') log.warn({ bucket, key: probe.key }, 'the S3 endpoint ignored If-Match: the reference bucket probe left an empty object behind (delete it)');
  }
}
