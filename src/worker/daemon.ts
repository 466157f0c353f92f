/**
 * The running worker: the consumer, the memory budget, the counters and metrics, the systemd
 * notifier, reload and drain, built from a ready context (src/bootstrap.ts). `start` begins receiving,
 * `reload` re-reads the secret, `drain` stops; the wiring of one message — decide, then settle — is
 * here, and nowhere else.
 */
import type { Server } from 'node:http';
import type { Message } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { ReadyContext } from '../bootstrap.ts';
import { secretsClient } from '../aws/clients.ts';
import { s3ReferenceLister, s3ReferenceWriter, s3StagedObjectReader, s3StagedObjectRemover, s3StagedObjectSizer } from '../aws/s3.ts';
import { sendBatcher, type OutgoingMessage } from '../aws/sqs-batches.ts';
import type { Batcher } from '../aws/batcher.ts';
import { ConfigError, loadConfig, secretNameOf, type Config } from '../config.ts';
import { enroll, storedReferencesOf, type FaceCheck } from '../enroll/enroll.ts';
import { createFaceDetector } from '../face/detector.ts';
import { createMemoryBudget } from '../enroll/memory.ts';
import { imageNormaliser } from '../enroll/normalise.ts';
import { discardStagedSources } from '../enroll/sources.ts';
import { describeError } from '../job/errors.ts';
import { fingerprintsOf } from '../job/signature.ts';
import { createConsumer, type RunningJob } from './consumer.ts';
import { judgeMessage, type Judgement } from './job-message.ts';
import { boundPort, createJobCounters, registerConsumerGauges, startMetricsServer } from './metrics.ts';
import { describeStats, type Notifier } from './notify.ts';
import { outcomeMessage, type OutcomePublisher } from './outcomes.ts';
import { applyReload, reloadPlan, reloadRefusal } from './reload.ts';
import { settle } from './settle.ts';
import { secretFetcher, StartupError } from './startup.ts';

/** How long the first entry of a batched call waits for company: a few milliseconds. */
export const BATCH_FLUSH_MS = 10;

export interface Daemon {
  start(): Promise<void>;
  reload(): Promise<void>;
  /** Stops receiving, drains, releases everything; resolves to the exit code. */
  drain(): Promise<number>;
  /** Upper bound of a drain, for the guard that forces the exit. */
  readonly guardMs: number;
}

export function createDaemon(ready: ReadyContext, options: { log: Logger; notifier: Notifier }): Daemon {
  const { log, notifier } = options;
  const { sqs, s3, queue: facts } = ready;
  const built = ready.config;
  // Settings read per job come from `live`, which a reload replaces.
  let live = built;

  const registry = new Registry();
  const counters = createJobCounters(registry);
  // A third of the budget for image bytes held (messages, staged objects), two thirds for decoding:
  // two budgets, so a job holding its bytes never waits for memory that only decodes can free.
  const held = Math.floor(built.maxInFlightBytes / 3);
  const memory = createMemoryBudget(held);
  const normalise = imageNormaliser({ memory: createMemoryBudget(built.maxInFlightBytes - held) });
  const timing = { flushAfterMs: BATCH_FLUSH_MS };
  const deadLetters = facts.deadLetterQueueUrl ? sendBatcher(sqs, facts.deadLetterQueueUrl, timing) : undefined;
  // One batcher per result queue: a reload may point outcomes elsewhere.
  const outcomeBatchers = new Map<string, Batcher<OutgoingMessage, string>>();
  const publish: OutcomePublisher = async (outcome) => {
    const url = live.resultQueueUrl;
    if (url === undefined) return;
    let batcher = outcomeBatchers.get(url);
    if (!batcher) outcomeBatchers.set(url, (batcher = sendBatcher(sqs, url, timing)));
    await batcher.add(outcomeMessage(outcome));
  };
  // FACE_CHECK=one: the detector's threads start now (each loads the model once, ~175 MB); a job
  // waits its turn for one (a bounded line, outside its deadline) so no unbounded queue builds up.
  const faces = built.faceCheck === 'one' ? createFaceDetector(built.faceThreads === undefined ? {} : { threads: built.faceThreads }) : undefined;
  const detectors = faces ? createMemoryBudget(faces.threads) : undefined;
  const faceCheckFor = (rules: Config, waitFor: RunningJob['waitFor']): FaceCheck | undefined =>
    faces && detectors
      ? {
          minScore: rules.faceMinScore,
          minSize: rules.faceMinSize,
          detect: async (pixels, { signal, ...options }) => {
            const turn = await waitFor(detectors.acquire(1, { signal }));
            try {
              return await faces.detect(pixels, { ...options, signal });
            } finally {
              turn.release();
            }
          },
        }
      : undefined;
  const readStaged = s3StagedObjectReader(s3);
  const sizeOfStaged = s3StagedObjectSizer(s3);
  const removeStaged = s3StagedObjectRemover(s3);

  const decide = (message: Message, running: RunningJob): Promise<Judgement> => {
    counters.received();
    const rules = live;
    return judgeMessage(
      message,
      {
        limits: { maxImagesPerJob: rules.maxImagesPerJob, maxJobAgeSeconds: rules.signedJobMaxAgeSeconds },
        signingKeys: () => rules.signingKeys,
        enroll: (job, context) => {
          const faceCheck = faceCheckFor(rules, context.waitFor);
          return enroll(job, {
            rules,
            readStaged,
            sizeOfStaged,
            normalise,
            writeReference: s3ReferenceWriter(s3, rules.bucket),
            memory,
            ...context,
            ...(faceCheck ? { faceCheck } : {}),
          });
        },
        log,
      },
      {
        signal: running.signal,
        onPhase: (phase) => {
          running.phase = phase;
        },
        waitFor: (wait) => running.waitFor(wait),
        onRead: (ids, signature) => {
          running.identity = { ...ids, signature };
        },
      },
    );
  };

  const consumer = createConsumer<Judgement>({
    sqs,
    queueUrl: built.queueUrl,
    concurrency: built.concurrency,
    visibilityTimeoutSeconds: built.visibilityTimeoutSeconds,
    heartbeatIntervalSeconds: built.heartbeatIntervalSeconds,
    pollWaitSeconds: built.pollWaitSeconds,
    jobTimeoutMs: built.jobTimeoutSeconds * 1000,
    memory,
    flushAfterMs: BATCH_FLUSH_MS,
    decide,
    settle: (message, settlement, running, queue) =>
      settle(message, settlement, running, queue, {
        deadLetter: deadLetters ? async (entry) => void (await deadLetters.add({ body: entry.body, attributes: entry.attributes })) : undefined,
        publish,
        ...(live.deleteStagedSources ? { discardSources: (job) => discardStagedSources(job, live, removeStaged) } : {}),
        findStored: (job) => storedReferencesOf(job, s3ReferenceLister(s3, live.bucket)),
        retryPolicy: () => ({ baseSeconds: live.retryBaseSeconds, maxSeconds: live.retryMaxSeconds }),
        maxReceiveCount: facts.maxReceiveCount,
        counters,
        log,
      }),
    log,
  });
  registerConsumerGauges(registry, () => consumer.health);
  const status = () => describeStats({ ...counters.stats, inFlight: consumer.health.inFlight });

  let metricsServer: Server | undefined;
  let statusTimer: NodeJS.Timeout | undefined;

  return {
    // The drain also waits for the long poll in flight (up to POLL_WAIT_SECONDS).
    guardMs: Math.max(built.drainTimeoutSeconds, built.pollWaitSeconds) * 1000 + 10_000,

    async start() {
      if (faces) {
        // A model that cannot load would fail every job later: fail the start instead.
        const probe = await faces.probe();
        if (!probe.ok) throw new StartupError(`FACE_CHECK=one, but the face detector does not work: ${probe.message}`);
        log.info({ faceCheck: probe.message, ms: Math.round(probe.ms) }, 'face detector ready');
      }
      if (facts.deadLetterQueueUrl === undefined) {
        log.warn('no dead-letter queue (DEAD_LETTER_QUEUE_URL unset, and the jobs queue has no redrive policy): failed jobs will only be logged');
      }
      if (built.signingKeys.current === undefined) {
        log.warn(
          { allowUnsignedJobs: true },
          'no JOB_SIGNING_KEY and ALLOW_UNSIGNED_JOBS=true: jobs are not authenticated (anyone who can send to the jobs queue can enroll a face)',
        );
      }
      if (built.metricsPort !== undefined) {
        metricsServer = await startMetricsServer({
          host: built.metricsHost,
          port: built.metricsPort,
          registry,
          health: () => consumer.health,
          // A long poll answers at least every POLL_WAIT_SECONDS; a receive outage backs off to 30 s.
          staleAfterMs: (built.pollWaitSeconds + 45) * 1000,
          timeoutWindowMs: built.jobTimeoutSeconds * 1000,
        });
      }
      consumer.start();
      statusTimer = setInterval(() => notifier.status(status()), 5_000);
      statusTimer.unref();
      notifier.ready(status());
      notifier.startWatchdog();
      log.info(
        {
          queue: built.queueUrl,
          bucket: built.bucket,
          concurrency: built.concurrency,
          deadLetterQueue: facts.deadLetterQueueUrl ?? null,
          deadLetterSource: facts.deadLetterSource,
          maxReceiveCount: facts.maxReceiveCount ?? null,
          resultQueue: built.resultQueueUrl ?? null,
          stagingBucket: built.stagingBucket ?? null,
          // Which keys are in force, by fingerprint (never the key): how a rotation is followed.
          signingKeys: fingerprintsOf(built.signingKeys),
          maxInFlightBytes: built.maxInFlightBytes,
          jobTimeoutSeconds: built.jobTimeoutSeconds,
          faceCheck: faces ? { threads: faces.threads, minScore: built.faceMinScore, minSize: built.faceMinSize } : 'off',
          endpoint: ready.target.endpoint ?? null,
          metrics: metricsServer ? `http://${built.metricsHost}:${boundPort(metricsServer)}` : null,
          notify: notifier.enabled,
        },
        'ready: receiving jobs',
      );
    },

    async reload() {
      const secretName = secretNameOf(ready.env);
      if (secretName === undefined) {
        log.info('reload: no secret is configured; nothing to re-read');
        return;
      }
      notifier.reloading();
      try {
        const secrets = secretsClient(ready.target, ready.credentials);
        const { config: next } = await loadConfig(ready.env, secretFetcher(secrets, ready.env)).finally(() => secrets.destroy());
        const refusal = reloadRefusal(live, next);
        if (refusal !== undefined) throw new ConfigError([refusal]);
        const plan = reloadPlan(live, next);
        live = applyReload(live, next) satisfies Config;
        log.info({ secret: secretName, applied: plan.live, needRestart: plan.restart, signingKeys: fingerprintsOf(live.signingKeys) }, 'reload: secret re-read');
        if (plan.restart.length > 0) log.warn({ settings: plan.restart }, 'reload: these settings take effect only at the next start');
      } catch (e: unknown) {
        const problems = e instanceof ConfigError ? e.problems : [describeError(e).message];
        log.error({ problems }, 'reload failed: the worker keeps its current settings');
      } finally {
        notifier.ready(status());
      }
    },

    async drain() {
      notifier.stopping();
      clearInterval(statusTimer);
      let lastExtension = 0;
      const { unfinished } = await consumer.drain(Date.now() + built.drainTimeoutSeconds * 1000, () => {
        // Still draining: ask systemd for a little more time, never more than the drain needs.
        if (Date.now() - lastExtension < 5_000) return;
        lastExtension = Date.now();
        notifier.extendTimeout(15);
        notifier.status(`stopping: ${status()}`);
      });
      await Promise.all([deadLetters?.flush(), ...[...outcomeBatchers.values()].map((b) => b.flush()), faces?.close()]);
      if (unfinished > 0) log.warn({ unfinished }, 'drain timeout: unfinished jobs were cancelled and handed back to the queue');
      log.info({ ...counters.stats, inFlight: consumer.health.inFlight }, 'stopped');
      metricsServer?.close();
      sqs.destroy();
      s3.destroy();
      notifier.close();
      return 0;
    },
  };
}
