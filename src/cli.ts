#!/usr/bin/env node
/**
 * Entry point: `run` (the daemon) and `enqueue` (send a job by hand). The only place that wires
 * configuration, clients and the core together.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { defaultCredentials, s3Client, secretsClient, sqsClient, stsClient, type AwsTarget } from './aws.ts';
import {
  ConfigError,
  EXIT_CONFIG,
  parseBootstrap,
  parseConfig,
  parseProducerConfig,
  secretNameOf,
  secretVariable,
  settingsFromSecret,
  type Config,
  type Env,
} from './config.ts';
import { enroll } from './enroll/enroll.ts';
import { s3ReferenceWriter } from './enroll/references.ts';
import { s3StagedObjectReader } from './enroll/sources.ts';
import { describeError } from './job/errors.ts';
import { createLogger, type Logger } from './log.ts';
import { enqueueJob, waitForOutcome } from './producer/enqueue.ts';
import { createConsumerPool } from './worker/consumer.ts';
import { sqsDeadLetterSender } from './worker/dead-letter.ts';
import { processJobMessage } from './worker/job-message.ts';
import { handleShutdownSignals } from './worker/lifecycle.ts';
import { noOutcomePublisher, sqsOutcomePublisher } from './worker/outcomes.ts';
import { receiveCountOf, retryDelaySeconds } from './worker/retry.ts';
import { fetchSecretText, identityOf, inspectJobsQueue, StartupError, untilReady } from './worker/startup.ts';

const USAGE = `usage: enrollment-worker <command>

commands:
  run                                   start the worker (configuration from the environment)
  enqueue --user ID [--job-id ID] [--timeout SECONDS] [--no-wait] FILE...
                                        send an enrollment job with these images; with
                                        RESULT_QUEUE_URL set, wait for its outcome and print it
`;

/** Configuration: the environment alone, or the environment plus the secret once credentials work. */
async function configure(env: Env, log: Logger, target: AwsTarget, deadline: number): Promise<Config> {
  const secretName = secretNameOf(env);
  if (secretName === undefined) return parseConfig(env);
  const secrets = secretsClient(target, defaultCredentials());
  const variable = secretVariable(env);
  const text = await untilReady('the secret', () => fetchSecretText(secrets, secretName, variable), { deadline, log });
  secrets.destroy();
  const { settings, ignored } = settingsFromSecret(text, secretName, variable);
  const config = parseConfig(env, settings);
  log.info({ secret: secretName, settings: config.fromSecret, ignoredKeys: ignored }, 'settings read from the secret');
  return config;
}

async function run(env: Env): Promise<number> {
  let log = createLogger('info');
  try {
    // Fail on a bad environment before any network call.
    const boot = parseBootstrap(env);
    if (secretNameOf(env) === undefined) parseConfig(env);
    log = createLogger(boot.logLevel);
    const target: AwsTarget = { region: boot.region, endpoint: boot.endpoint };
    const deadline = Date.now() + boot.startupTimeoutSeconds * 1000;
    const credentials = defaultCredentials();

    const sts = stsClient(target, credentials);
    const identity = await identityOf(credentials, sts, deadline, log);
    sts.destroy();
    log.info({ credentialSource: identity.credentialSource, arn: identity.arn, account: identity.account }, 'AWS credentials');

    const config = await configure(env, log, target, deadline);
    const sockets = config.concurrency * 2 + 8;
    const sqs = sqsClient(target, credentials, sockets);
    const s3 = s3Client(target, credentials, sockets);
    const queue = await inspectJobsQueue(sqs, config.queueUrl, config.deadLetterQueueUrl, deadline, log);
    if (queue.deadLetterQueueUrl === undefined) {
      log.warn(
        'no dead-letter queue (DEAD_LETTER_QUEUE_URL unset, and the jobs queue has no redrive policy): failed jobs will only be logged',
      );
    }

    const retryPolicy = { baseSeconds: config.retryBaseSeconds, maxSeconds: config.retryMaxSeconds };
    const pool = createConsumerPool({
      sqs,
      queueUrl: config.queueUrl,
      concurrency: config.concurrency,
      visibilityTimeoutSeconds: config.visibilityTimeoutSeconds,
      heartbeatIntervalSeconds: config.heartbeatIntervalSeconds,
      pollWaitSeconds: config.pollWaitSeconds,
      redeliveryDelaySeconds: (message) => retryDelaySeconds(receiveCountOf(message), retryPolicy),
      log,
      process: (message) =>
        processJobMessage(message, {
          limits: config,
          enroll: (job) =>
            enroll(job, {
              rules: config,
              readStaged: s3StagedObjectReader(s3),
              writeReference: s3ReferenceWriter(s3, config.bucket),
            }),
          deadLetter: queue.deadLetterQueueUrl ? sqsDeadLetterSender(sqs, queue.deadLetterQueueUrl) : undefined,
          publish: config.resultQueueUrl ? sqsOutcomePublisher(sqs, config.resultQueueUrl) : noOutcomePublisher,
          retryPolicy,
          maxReceiveCount: queue.maxReceiveCount,
          log,
          now: () => performance.now(),
        }),
    });

    const drainMs = config.drainTimeoutSeconds * 1000;
    handleShutdownSignals({
      log,
      // The drain also waits for long polls in flight (up to POLL_WAIT_SECONDS).
      guardMs: Math.max(drainMs, config.pollWaitSeconds * 1000) + 10_000,
      stop: async () => {
        const { unfinished } = await pool.drain(Date.now() + drainMs);
        if (unfinished > 0) log.warn({ unfinished }, 'drain timeout: unfinished jobs stay in the queue and will be received again');
        log.info({ ...pool.stats }, 'stopped');
        sqs.destroy();
        s3.destroy();
        return 0;
      },
    });
    pool.start();
    log.info(
      {
        queue: config.queueUrl,
        bucket: config.bucket,
        concurrency: config.concurrency,
        deadLetterQueue: queue.deadLetterQueueUrl ?? null,
        deadLetterSource: queue.deadLetterSource,
        maxReceiveCount: queue.maxReceiveCount ?? null,
        resultQueue: config.resultQueueUrl ?? null,
        stagingBucket: config.stagingBucket ?? null,
        endpoint: target.endpoint ?? null,
      },
      'ready: receiving jobs',
    );
    return await new Promise<number>(() => {}); // runs until a signal ends the process
  } catch (e: unknown) {
    if (e instanceof ConfigError) {
      log.fatal({ problems: e.problems }, e.message);
      return EXIT_CONFIG;
    }
    log.fatal({ err: describeError(e) }, e instanceof StartupError ? e.message : 'start-up failed');
    return 1;
  }
}

async function enqueue(env: Env, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      user: { type: 'string' },
      'job-id': { type: 'string' },
      timeout: { type: 'string', default: '60' },
      'no-wait': { type: 'boolean', default: false },
    },
  });
  if (!values.user || positionals.length === 0) {
    process.stderr.write(USAGE);
    return 64; // EX_USAGE
  }
  const config = parseProducerConfig(env);
  const target = { region: config.region, endpoint: config.endpoint };
  const credentials = defaultCredentials();
  const sqs = sqsClient(target, credentials);
  const s3 = s3Client(target, credentials);
  try {
    const images = await Promise.all(positionals.map((file) => readFile(file)));
    const sent = await enqueueJob(
      { userId: values.user, images, ...(values['job-id'] ? { jobId: values['job-id'] } : {}) },
      { sqs, s3, queueUrl: config.queueUrl, stagingBucket: config.stagingBucket, stagingPrefix: config.stagingPrefix },
    );
    process.stdout.write(`${JSON.stringify({ enqueued: sent })}\n`);
    if (values['no-wait'] || config.resultQueueUrl === undefined) return 0;
    const outcome = await waitForOutcome(sqs, config.resultQueueUrl, sent.jobId, Number(values.timeout) * 1000);
    if (!outcome) {
      process.stderr.write(`no outcome for job ${sent.jobId} within ${values.timeout} s (is the worker running?)\n`);
      return 1;
    }
    process.stdout.write(`${JSON.stringify(outcome, null, 2)}\n`);
    return outcome.status === 'succeeded' ? 0 : 1;
  } finally {
    sqs.destroy();
    s3.destroy();
  }
}

async function main(argv: string[], env: Env): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await run(env);
      case 'enqueue':
        return await enqueue(env, rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 64 : 0;
      default:
        process.stderr.write(`unknown command: ${command}\n${USAGE}`);
        return 64;
    }
  } catch (e: unknown) {
    if (e instanceof ConfigError) {
      process.stderr.write(`enrollment-worker: ${e.message}\n`);
      return EXIT_CONFIG;
    }
    process.stderr.write(`enrollment-worker: ${describeError(e).message}\n`);
    return 1;
  }
}

process.on('uncaughtException', (e) => {
  process.stderr.write(`enrollment-worker: uncaught exception: ${describeError(e).name}: ${describeError(e).message}\n`);
  process.exit(1);
});

process.exitCode = await main(process.argv.slice(2), process.env);
