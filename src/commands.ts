/**
 * The commands: arguments in, an exit code out. `run` is start-up (src/bootstrap.ts) and the daemon
 * (src/worker/daemon.ts) under the signal handlers (src/worker/lifecycle.ts); `check`, `enqueue` and
 * `schema` are small. Loaded by cli.ts once the process-wide settings are made.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { defaultCredentials, s3Client, secretsClient, sqsClient, stsClient } from './aws/clients.ts';
import { bootstrap } from './bootstrap.ts';
import { formatChecks, runChecks } from './check.ts';
import { jpegCodec } from './image/jpeg.ts';
import { checkEnvironment, ConfigError, EXIT_CONFIG, parseProducerConfig, type Env } from './config.ts';
import { describeError } from './job/errors.ts';
import { jobJsonSchema } from './job/json-schema.ts';
import { createLogger } from './log.ts';
import { enqueueJob, waitForOutcome } from './producer/enqueue.ts';
import { createDaemon } from './worker/daemon.ts';
import { installSignals } from './worker/lifecycle.ts';
import { createTracing } from './worker/tracing.ts';
import { silentNotifier, systemdNotifier, type Notifier } from './worker/notify.ts';
import { StartupError } from './worker/startup.ts';

export const USAGE = `usage: enrollment-worker <command>

commands:
  run                                   start the worker (configuration from the environment)
  check [--json]                        check configuration, credentials, queues, buckets and the
                                        secret, one line each with a fix for what fails
  enqueue --user ID [--job-id ID] [--message-group-id TENANT] [--traceparent TP]
          [--timeout SECONDS] [--no-wait] FILE...
                                        send an enrollment job with these images (signed when
                                        JOB_SIGNING_KEY is set); with RESULT_QUEUE_URL set, wait
                                        for its outcome and print it
  schema                                print the JSON Schema of the job message (contract v1)
`;

/** An installation that cannot rebuild JPEGs does not start: restarting would not help (exit 78). */
function requireJpegCodec(): void {
  try {
    jpegCodec();
  } catch (e: unknown) {
    throw new ConfigError([e instanceof Error ? e.message : String(e)]);
  }
}

async function run(env: Env): Promise<number> {
  let log = createLogger('info');
  let notifier: Notifier = silentNotifier;
  const lifecycle = installSignals({ log: () => log });
  try {
    // Fail on a bad environment before any network call.
    const boot = checkEnvironment(env);
    requireJpegCodec();
    log = createLogger(boot.logLevel);
    notifier = systemdNotifier(log);
    const ready = await bootstrap(env, boot, log, notifier);
    const tracing = await createTracing(ready.config.tracing, ready.config.queueUrl, log);
    const daemon = createDaemon(ready, { log, notifier, tracing });
    lifecycle.running({ stop: () => daemon.drain(), reload: () => daemon.reload(), guardMs: daemon.guardMs });
    await daemon.start();
    return await new Promise<number>(() => {}); // runs until a signal ends the process
  } catch (e: unknown) {
    const status = e instanceof ConfigError || e instanceof StartupError ? e.message : 'start-up failed';
    notifier.status(status);
    notifier.close();
    if (e instanceof ConfigError) {
      log.fatal({ problems: e.problems }, e.message);
      return EXIT_CONFIG;
    }
    log.fatal({ err: e instanceof StartupError ? describeError(e) : e }, status);
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
      'message-group-id': { type: 'string' },
      traceparent: { type: 'string' },
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
      {
        userId: values.user,
        images,
        ...(values['job-id'] ? { jobId: values['job-id'] } : {}),
        ...(values['message-group-id'] !== undefined ? { messageGroupId: values['message-group-id'] } : {}),
        ...(values.traceparent !== undefined ? { trace: { traceparent: values.traceparent } } : {}),
      },
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

async function main(argv: readonly string[], env: Env): Promise<number> {
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

export { main };
