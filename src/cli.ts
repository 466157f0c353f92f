#!/usr/bin/env node
/**
 * Entry point: `run` (the daemon) and `enqueue` (send a job by hand). The only place that wires
 * configuration, clients and the core together.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { AwsCredentialIdentityProvider } from '@aws-sdk/types';
import { defaultCredentials, s3Client, secretsClient, sqsClient, stsClient, type AwsTarget } from './aws/clients.ts';
import {
  checkEnvironment,
  ConfigError,
  EXIT_CONFIG,
  parseConfig,
  parseProducerConfig,
  loadConfig,
  secretNameOf,
  type Config,
  type Env,
} from './config.ts';
import { formatChecks, runChecks } from './check.ts';
import { enroll } from './enroll/enroll.ts';
import { s3ReferenceWriter } from './enroll/references.ts';
import { imageNormaliser } from './enroll/normalise.ts';
import { discardStagedSources, s3StagedObjectReader, s3StagedObjectRemover } from './enroll/sources.ts';
import { jobJsonSchema } from './job/json-schema.ts';
import { fingerprintsOf } from './job/signature.ts';
import { describeError } from './job/errors.ts';
import { createLogger, type Logger } from './log.ts';
import { enqueueJob, waitForOutcome } from './producer/enqueue.ts';
import { Registry } from 'prom-client';
import { createConsumerPool } from './worker/consumer.ts';
import { boundPort, createJobMetrics, startMetricsServer } from './worker/metrics.ts';
import { describeStats, silentNotifier, systemdNotifier, type Notifier } from './worker/notify.ts';
import { applyReload, reloadPlan, reloadRefusal } from './worker/reload.ts';
import { sqsDeadLetterSender } from './worker/dead-letter.ts';
import { processJobMessage } from './worker/job-message.ts';
import { handleShutdownSignals } from './worker/lifecycle.ts';
import { noOutcomePublisher, sqsOutcomePublisher } from './worker/outcomes.ts';
import { receiveCountOf, retryDelaySeconds } from './worker/retry.ts';
import { identityOf, inspectJobsQueue, secretFetcher, StartupError, untilReady } from './worker/startup.ts';

const USAGE = `usage: enrollment-worker <command>

commands:
  run                                   start the worker (configuration from the environment)
  check [--json]                        check configuration, credentials, queues, buckets and the
                                        secret, one line each with a fix for what fails
  enqueue --user ID [--job-id ID] [--timeout SECONDS] [--no-wait] FILE...
                                        send an enrollment job with these images (signed when
                                        JOB_SIGNING_KEY is set); with RESULT_QUEUE_URL set, wait
                                        for its outcome and print it
  schema                                print the JSON Schema of the job message (contract v1)
`;

/** Configuration: the environment alone, or the environment plus the secret once credentials work. */
async function configure(
  env: Env,
  log: Logger,
  target: AwsTarget,
  credentials: AwsCredentialIdentityProvider,
  deadline: number,
): Promise<Config> {
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

async function run(env: Env): Promise<number> {
  let log = createLogger('info');
  let notifier: Notifier = silentNotifier;
  let startExtension: NodeJS.Timeout | undefined;
  // Until the worker is running, a SIGHUP has nothing to reload (the secret is being read right
  // now); without a handler it would kill the process, which systemd counts as a clean exit.
  let onHangUp = () => log.info('reload requested during start-up: the settings being loaded are current');
  process.on('SIGHUP', () => onHangUp());
  // A stop during start-up: nothing was received yet, so there is nothing to drain.
  const stopDuringStartup = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'stopped during start-up');
    process.exit(0);
  };
  process.on('SIGTERM', stopDuringStartup);
  process.on('SIGINT', stopDuringStartup);
  try {
    // Fail on a bad environment before any network call.
    const boot = checkEnvironment(env);
    log = createLogger(boot.logLevel);
    notifier = systemdNotifier(log);
    const target: AwsTarget = { region: boot.region, endpoint: boot.endpoint };
    const deadline = Date.now() + boot.startupTimeoutSeconds * 1000;
    // While start-up retries what is not ready yet, keep systemd's start timeout ahead of it.
    startExtension = setInterval(() => notifier.extendTimeout(15), 5_000);
    startExtension.unref();
    const credentials = defaultCredentials();

    const sts = stsClient(target, credentials);
    const identity = await identityOf(credentials, sts, deadline, log);
    sts.destroy();
    log.info({ credentialSource: identity.credentialSource, arn: identity.arn, account: identity.account }, 'AWS credentials');

    const config = await configure(env, log, target, credentials, deadline);
    const sockets = config.concurrency * 2 + 8;
    const sqs = sqsClient(target, credentials, sockets);
    const s3 = s3Client(target, credentials, sockets);
    const queue = await inspectJobsQueue(sqs, config.queueUrl, config.deadLetterQueueUrl, deadline, log);
    clearInterval(startExtension);
    if (queue.deadLetterQueueUrl === undefined) {
      log.warn(
        'no dead-letter queue (DEAD_LETTER_QUEUE_URL unset, and the jobs queue has no redrive policy): failed jobs will only be logged',
      );
    }

    // Settings read per job come from `live`, which a reload (SIGHUP) replaces.
    let live = config;
    const retryPolicy = () => ({ baseSeconds: live.retryBaseSeconds, maxSeconds: live.retryMaxSeconds });
    const registry = new Registry();
    // Decoding images is the main CPU cost: one libvips thread per image, one image per core.
    const normalise = imageNormaliser();
    if (config.signingKeys.current === undefined) {
      log.warn(
        { allowUnsignedJobs: true },
        'no JOB_SIGNING_KEY and ALLOW_UNSIGNED_JOBS=true: jobs are not authenticated (anyone who can send to the jobs queue can enroll a face)',
      );
    }
    const pool = createConsumerPool({
      sqs,
      queueUrl: config.queueUrl,
      concurrency: config.concurrency,
      visibilityTimeoutSeconds: config.visibilityTimeoutSeconds,
      heartbeatIntervalSeconds: config.heartbeatIntervalSeconds,
      pollWaitSeconds: config.pollWaitSeconds,
      redeliveryDelaySeconds: (message) => retryDelaySeconds(receiveCountOf(message), retryPolicy()),
      log,
      process: async (message) => {
        jobMetrics.received();
        const started = performance.now();
        const verdict = await processJobMessage(message, {
          limits: { maxImagesPerJob: live.maxImagesPerJob, maxJobAgeSeconds: live.signedJobMaxAgeSeconds },
          signingKeys: () => live.signingKeys,
          enroll: (job) =>
            enroll(job, {
              rules: live,
              readStaged: s3StagedObjectReader(s3),
              normalise,
              writeReference: s3ReferenceWriter(s3, live.bucket),
            }),
          ...(live.deleteStagedSources
            ? { discardSources: (job) => discardStagedSources(job, live, s3StagedObjectRemover(s3)) }
            : {}),
          deadLetter: queue.deadLetterQueueUrl ? sqsDeadLetterSender(sqs, queue.deadLetterQueueUrl) : undefined,
          publish: live.resultQueueUrl ? sqsOutcomePublisher(sqs, live.resultQueueUrl) : noOutcomePublisher,
          retryPolicy: retryPolicy(),
          maxReceiveCount: queue.maxReceiveCount,
          log,
          now: () => performance.now(),
        });
        jobMetrics.finished(verdict, (performance.now() - started) / 1000);
        return verdict;
      },
    });
    const health = {
      get lastReceiveAt() {
        return pool.stats.lastReceiveAt;
      },
      get inFlight() {
        return pool.stats.inFlight;
      },
      slots: config.concurrency,
    };
    const jobMetrics = createJobMetrics(registry, health);
    const metricsServer =
      config.metricsPort === undefined
        ? undefined
        : await startMetricsServer({
            host: config.metricsHost,
            port: config.metricsPort,
            registry,
            health,
            // A long poll answers at least every POLL_WAIT_SECONDS; a receive outage backs off to 30 s.
            staleAfterMs: (config.pollWaitSeconds + 45) * 1000,
          });

    const reload = async () => {
      const secretName = secretNameOf(env);
      if (secretName === undefined) {
        log.info('reload: no secret is configured; nothing to re-read');
        return;
      }
      notifier.reloading();
      try {
        const secrets = secretsClient(target, credentials);
        const { config: next } = await loadConfig(env, secretFetcher(secrets, env)).finally(() => secrets.destroy());
        const refusal = reloadRefusal(live, next);
        if (refusal !== undefined) throw new ConfigError([refusal]);
        const plan = reloadPlan(live, next);
        live = applyReload(live, next);
        log.info(
          { secret: secretName, applied: plan.live, needRestart: plan.restart, signingKeys: fingerprintsOf(live.signingKeys) },
          'reload: secret re-read',
        );
        if (plan.restart.length > 0) log.warn({ settings: plan.restart }, 'reload: these settings take effect only at the next start');
      } catch (e: unknown) {
        const problems = e instanceof ConfigError ? e.problems : [describeError(e).message];
        log.error({ problems }, 'reload failed: the worker keeps its current settings');
      } finally {
        notifier.ready(describeStats(pool.stats));
      }
    };
    onHangUp = () => void reload();

    process.off('SIGTERM', stopDuringStartup);
    process.off('SIGINT', stopDuringStartup);
    handleShutdownSignals({
      log,
      // The drain also waits for long polls in flight (up to POLL_WAIT_SECONDS).
      guardMs: Math.max(live.drainTimeoutSeconds, config.pollWaitSeconds) * 1000 + 10_000,
      stop: async () => {
        notifier.stopping();
        clearInterval(statusTimer);
        let lastExtension = 0;
        const { unfinished } = await pool.drain(Date.now() + live.drainTimeoutSeconds * 1000, () => {
          // Still draining: ask systemd for a little more time, never more than the drain needs.
          if (Date.now() - lastExtension < 5_000) return;
          lastExtension = Date.now();
          notifier.extendTimeout(15);
          notifier.status(`stopping: ${describeStats(pool.stats)}`);
        });
        if (unfinished > 0) log.warn({ unfinished }, 'drain timeout: unfinished jobs stay in the queue and will be received again');
        log.info({ ...pool.stats }, 'stopped');
        metricsServer?.close();
        sqs.destroy();
        s3.destroy();
        notifier.close();
        return 0;
      },
    });
    pool.start();
    const statusTimer = setInterval(() => notifier.status(describeStats(pool.stats)), 5_000);
    statusTimer.unref();
    notifier.ready(describeStats(pool.stats));
    notifier.startWatchdog();
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
        // Which keys are in force, by fingerprint (never the key): how a rotation is followed.
        signingKeys: fingerprintsOf(config.signingKeys),
        endpoint: target.endpoint ?? null,
        metrics: metricsServer ? `http://${config.metricsHost}:${boundPort(metricsServer)}` : null,
        notify: notifier.enabled,
      },
      'ready: receiving jobs',
    );
    return await new Promise<number>(() => {}); // runs until a signal ends the process
  } catch (e: unknown) {
    clearInterval(startExtension);
    const status = e instanceof ConfigError ? e.message : e instanceof StartupError ? e.message : 'start-up failed';
    notifier.status(status);
    notifier.close();
    if (e instanceof ConfigError) {
      log.fatal({ problems: e.problems }, e.message);
      return EXIT_CONFIG;
    }
    log.fatal({ err: describeError(e) }, status);
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
      {
        sqs,
        s3,
        queueUrl: config.queueUrl,
        stagingBucket: config.stagingBucket,
        stagingPrefix: config.stagingPrefix,
        signingKey: config.signingKey,
      },
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

async function check(env: Env, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
  const credentials = defaultCredentials();
  const made: { destroy(): void }[] = [];
  const results = await runChecks(env, (target) => {
    const clients = {
      credentials,
      sts: stsClient(target, credentials),
      sqs: sqsClient(target, credentials),
      s3: s3Client(target, credentials),
      secrets: secretsClient(target, credentials),
    };
    made.push(clients.sts, clients.sqs, clients.s3, clients.secrets);
    return clients;
  });
  for (const client of made) client.destroy();
  const ok = results.every((r) => r.ok);
  process.stdout.write(values.json ? `${JSON.stringify({ ok, checks: results }, null, 2)}\n` : `${formatChecks(results)}\n`);
  return ok ? 0 : 1;
}

async function main(argv: string[], env: Env): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        // `run` returns only when start-up failed: exit now, whatever requests it left hanging
        // (an endpoint that never answered keeps its socket open until the SDK gives up).
        process.exit(await run(env));
      case 'enqueue':
        return await enqueue(env, rest);
      case 'check':
        return await check(env, rest);
      case 'schema':
        process.stdout.write(`${JSON.stringify(jobJsonSchema(), null, 2)}\n`);
        return 0;
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
