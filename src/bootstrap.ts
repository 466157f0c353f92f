/**
 * Start-up, from a checked environment to a worker ready to run: credentials and caller identity,
 * the configuration (with the secret), the SDK clients, and the jobs queue's facts. What is not ready
 * yet (credentials, network) is retried until STARTUP_TIMEOUT_SECONDS; what is wrong with the
 * configuration — the queues and the reference bucket included — fails at once with a ConfigError
 * (exit 78). Shared by `run`; `check` reports the same
 * steps one by one.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { AwsCredentialIdentityProvider } from '@aws-sdk/types';
import type { Logger } from 'pino';
import { defaultCredentials, s3Client, secretsClient, sqsClient, stsClient, type AwsTarget, type Identity } from './aws/clients.ts';
import { loadConfig, parseConfig, secretNameOf, type Bootstrap, type Config, type Env } from './config.ts';
import type { Notifier } from './worker/notify.ts';
import { identityOf, inspectJobsQueue, inspectOutputs, secretFetcher, untilReady, type QueueFacts } from './worker/startup.ts';

/** Everything the daemon is built from. */
export interface ReadyContext {
  readonly env: Env;
  readonly config: Config;
  readonly target: AwsTarget;
  readonly credentials: AwsCredentialIdentityProvider;
  readonly identity: Identity;
  readonly sqs: SQSClient;
  readonly s3: S3Client;
  readonly queue: QueueFacts;
}

/** Configuration: the environment alone, or the environment plus the secret once credentials work. */
async function configure(env: Env, log: Logger, target: AwsTarget, credentials: AwsCredentialIdentityProvider, deadline: number): Promise<Config> {
  const secretName = secretNameOf(env);
  if (secretName === undefined) return parseConfig(env);
  const secrets = secretsClient(target, credentials);
  const fetch = secretFetcher(secrets, env);
  try {
    const { config, ignoredSecretKeys } = await loadConfig(env, (name) => untilReady('the secret', () => fetch(name), { deadline, log }));
    log.info({ secret: secretName, settings: config.fromSecret, ignoredKeys: ignoredSecretKeys }, 'settings read from the secret');
    return config;
  } finally {
    secrets.destroy();
  }
}

export async function bootstrap(env: Env, boot: Bootstrap, log: Logger, notifier: Notifier): Promise<ReadyContext> {
  const target: AwsTarget = { region: boot.region, endpoint: boot.endpoint };
  const deadline = Date.now() + boot.startupTimeoutSeconds * 1000;
  // While start-up retries what is not ready yet, keep systemd's start timeout ahead of it.
  const extension = setInterval(() => notifier.extendTimeout(15), 5_000);
  extension.unref();
  try {
    const credentials = defaultCredentials();
    const sts = stsClient(target, credentials);
    const identity = await identityOf(credentials, sts, deadline, log).finally(() => sts.destroy());
    log.info({ credentialSource: identity.credentialSource, arn: identity.arn, account: identity.account }, 'AWS credentials');

    const config = await configure(env, log, target, credentials, deadline);
    // Each slot's calls, the receive loop and the batched calls share one socket pool per service.
    const sockets = config.concurrency * 2 + 8;
    const sqs = sqsClient(target, credentials, sockets);
    const s3 = s3Client(target, credentials, sockets);
    const queue = await inspectJobsQueue(sqs, config.queueUrl, config.deadLetterQueueUrl, deadline, log);
    await inspectOutputs({ sqs, s3 }, config, deadline, log);
    return { env, config, target, credentials, identity, sqs, s3, queue };
  } finally {
    clearInterval(extension);
  }
}
