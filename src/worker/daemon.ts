/**
 * The running worker: the consumer, the memory budgets, the counters and metrics, the systemd
 * notifier, the face check, reload and drain, built from a ready context (src/bootstrap.ts).
 * `start` begins receiving, `reload` re-reads the secret, `drain` stops. The wiring of one message —
 * decide (job-message.ts), then settle (settle.ts) — is here and nowhere else.
 */
import type { Server } from 'node:http';
import type { Message } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { ReadyContext } from '../bootstrap.ts';
import type { Batcher } from '../aws/batcher.ts';
import { traceCalls } from '../aws/call-spans.ts';
import { secretsClient } from '../aws/clients.ts';
import { s3ReferenceLister, s3ReferenceWriter, s3StagedObjectReader, s3StagedObjectRemover, s3StagedObjectSizer } from '../aws/s3.ts';
import { sendBatcher, type OutgoingMessage } from '../aws/sqs-batches.ts';
import { ConfigError, loadConfig, secretNameOf, type Config } from '../config.ts';
import { enroll, storedReferencesOf } from '../enroll/enroll.ts';
import { createMemoryBudget, type MemoryBudget } from '../enroll/memory.ts';
import { imageNormaliser, type ImageNormaliser } from '../image/normalise.ts';
import { oneWritePerKey, type ReferenceWriter } from '../enroll/references.ts';
import { discardStagedSources } from '../enroll/sources.ts';
import { describeError } from '../job/errors.ts';
import { fingerprintsOf } from '../job/signature.ts';
import { createConsumer, type Consumer, type JobsQueue, type RunningJob, type Settlement } from './consumer.ts';
import { startFaceChecking, type FaceChecking } from './face-check.ts';
import { judgeMessage, type Judgement } from './job-message.ts';
import { boundPort, createJobCounters, registerConsumerGauges, registerMemoryGauges, startMetricsServer, type JobCounters } from './metrics.ts';
import { describeStats, type Notifier } from './notify.ts';
import { outcomeMessage, type OutcomePublisher } from './outcomes.ts';
import { applyReload, reloadPlan, reloadRefusal } from './reload.ts';
import { settle, type SettleDeps } from './settle.ts';
import { secretFetcher, StartupError } from './startup.ts';
import { traceAttributes } from '../job/trace-context.ts';
import type { JobEnd, JobTrace, Tracing } from './tracing.ts';

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

/** What the running worker is made of; `live` is the configuration a reload replaces. */
interface Context {
  readonly ready: ReadyContext;
  readonly built: Config;
  live: Config;
  readonly log: Logger;
  readonly notifier: Notifier;
  readonly registry: Registry;
  readonly counters: JobCounters;
  /** The share of MAX_IN_FLIGHT_BYTES for image bytes held: received messages and staged objects. */
  readonly memory: MemoryBudget;
  /** The share for decoding. */
  readonly decodeMemory: MemoryBudget;
  readonly normalise: ImageNormaliser;
  readonly faces: FaceChecking | undefined;
  readonly deadLetters: Batcher<OutgoingMessage, string> | undefined;
  /** One batcher per result queue: a reload may point outcomes elsewhere. */
  readonly outcomeBatchers: Map<string, Batcher<OutgoingMessage, string>>;
  /** One reference writer per bucket, shared by all jobs: one write per key at a time. */
  readonly referenceWriters: Map<string, ReferenceWriter>;
  readonly tracing: Tracing;
  /** Each message's part in its trace, from the moment it is decided until it is settled. */
  readonly traces: WeakMap<Message, JobTrace>;
  metricsServer: Server | undefined;
  statusTimer: NodeJS.Timeout | undefined;
}

export interface DaemonOptions {
  readonly log: Logger;
  readonly notifier: Notifier;
  /** From createTracing (src/worker/tracing.ts), built before the daemon: it may load the SDK. */
  readonly tracing: Tracing;
}

function contextOf(ready: ReadyContext, options: DaemonOptions): Context {
  const built = ready.config;
  const registry = new Registry();
  // A third of the budget for image bytes held (messages, staged objects), two thirds for decoding:
  // two budgets, so a job holding its bytes never waits for memory that only decodes can free.
  const held = Math.floor(built.maxInFlightBytes / 3);
  const decodeMemory = createMemoryBudget(built.maxInFlightBytes - held);
  const deadLetterQueue = ready.queue.deadLetterQueueUrl;
  if (options.tracing.calls) traceCalls(ready, options.tracing.calls);
  return {
    ready,
    built,
    live: built,
    ...options,
    registry,
    counters: createJobCounters(registry),
    memory: createMemoryBudget(held),
    decodeMemory,
    normalise: imageNormaliser({ memory: decodeMemory }),
    faces: startFaceChecking(built),
    deadLetters: deadLetterQueue ? sendBatcher(ready.sqs, deadLetterQueue, { flushAfterMs: BATCH_FLUSH_MS }) : undefined,
    outcomeBatchers: new Map(),
    referenceWriters: new Map(),
    traces: new WeakMap(),
    metricsServer: undefined,
    statusTimer: undefined,
  };
}

/** Publishes outcomes; each carries its job's trace context on. */
function publisherOf(ctx: Context): (jobTrace: JobTrace) => OutcomePublisher {
  return (jobTrace) => async (outcome) => {
    const url = ctx.live.resultQueueUrl;
    if (url === undefined) return;
    let batcher = ctx.outcomeBatchers.get(url);
    if (!batcher) ctx.outcomeBatchers.set(url, (batcher = sendBatcher(ctx.ready.sqs, url, { flushAfterMs: BATCH_FLUSH_MS })));
    await batcher.add(outcomeMessage(outcome, traceAttributes(jobTrace.outgoing)));
  };
}

/** What every log line of a job carries besides its ids: its trace, its tenant (message group). */
function jobLog(ctx: Context, message: Message, jobTrace: JobTrace): Logger {
  const group = message.Attributes?.MessageGroupId;
  const fields = { ...jobTrace.logFields, ...(group !== undefined ? { messageGroupId: group } : {}) };
  return Object.keys(fields).length > 0 ? ctx.log.child(fields) : ctx.log;
}

/** How a message ended, for its span. */
function jobEnd(settlement: Settlement<Judgement>): JobEnd {
  switch (settlement.kind) {
    case 'released':
      return { verdict: 'released' };
    case 'timed-out':
      return { verdict: 'retry', code: 'timeout', error: `timed out in its ${settlement.phase} phase` };
    case 'crashed':
      return { verdict: 'retry', error: describeError(settlement.error).message };
    case 'verdict':
      break;
  }
  const { ids, verdict } = settlement.verdict;
  switch (verdict.kind) {
    case 'succeeded':
      return { verdict: 'succeeded', jobId: ids.jobId, references: verdict.enrollment.references.length };
    case 'failed':
      return { verdict: 'failed', jobId: ids.jobId, code: verdict.error.code, error: verdict.error.message };
    case 'retry':
      return { verdict: 'retry', jobId: ids.jobId, error: describeError(verdict.error).message };
  }
}

function referenceWriterFor(ctx: Context, bucket: string): ReferenceWriter {
  let writer = ctx.referenceWriters.get(bucket);
  if (writer === undefined) {
    writer = oneWritePerKey(s3ReferenceWriter(ctx.ready.s3, bucket));
    ctx.referenceWriters.set(bucket, writer);
  }
  return writer;
}

/** One message → its judgement, with the settings in force when it was received. */
function deciderOf(ctx: Context): (message: Message, running: RunningJob) => Promise<Judgement> {
  const { s3 } = ctx.ready;
  const io = { readStaged: s3StagedObjectReader(s3), sizeOfStaged: s3StagedObjectSizer(s3), normalise: ctx.normalise, memory: ctx.memory };
  return (message, running) => {
    ctx.counters.received();
    const jobTrace = ctx.tracing.forMessage(message);
    ctx.traces.set(message, jobTrace);
    jobTrace.phase(running.phase);
    const rules = ctx.live;
    const enrollJob: Parameters<typeof judgeMessage>[1]['enroll'] = (job, context) =>
      enroll(job, {
        ...io,
        rules,
        writeReference: referenceWriterFor(ctx, rules.bucket),
        ...context,
        ...(ctx.faces ? { faceCheck: ctx.faces.forJob(rules, context.waitFor) } : {}),
      });
    const deps = {
      limits: { maxImagesPerJob: rules.maxImagesPerJob, maxJobAgeSeconds: rules.signedJobMaxAgeSeconds },
      signingKeys: () => rules.signingKeys,
      enroll: enrollJob,
      log: jobLog(ctx, message, jobTrace),
    };
    return jobTrace.run(() =>
      judgeMessage(message, deps, {
        signal: running.signal,
        onPhase: (phase) => {
          running.phase = phase;
          jobTrace.phase(phase);
        },
        waitFor: (wait) => running.waitFor(wait),
        onRead: (ids, signature) => {
          running.identity = { ...ids, signature };
        },
      }),
    );
  };
}

function settlerOf(ctx: Context): (message: Message, settlement: Settlement<Judgement>, running: RunningJob, queue: JobsQueue) => Promise<void> {
  const { s3, queue: facts } = ctx.ready;
  const publish = publisherOf(ctx);
  const removeStaged = s3StagedObjectRemover(s3);
  const deadLetters = ctx.deadLetters;
  return (message, settlement, running, queue) => {
    const live = ctx.live;
    // A message handed back as the stop began was never decided: it has no trace of its own yet.
    const jobTrace = ctx.traces.get(message) ?? ctx.tracing.forMessage(message);
    ctx.traces.delete(message);
    jobTrace.phase('outcome');
    const deps: SettleDeps = {
      deadLetter: deadLetters ? async (entry) => void (await deadLetters.add({ body: entry.body, attributes: entry.attributes })) : undefined,
      traceAttributes: traceAttributes(jobTrace.outgoing),
      publish: publish(jobTrace),
      ...(live.deleteStagedSources ? { discardSources: (job) => discardStagedSources(job, live, removeStaged) } : {}),
      findStored: (job) => storedReferencesOf(job, s3ReferenceLister(s3, live.bucket)),
      retryPolicy: () => ({ baseSeconds: live.retryBaseSeconds, maxSeconds: live.retryMaxSeconds }),
      maxReceiveCount: facts.maxReceiveCount,
      counters: ctx.counters,
      log: jobLog(ctx, message, jobTrace),
    };
    return jobTrace.run(() => settle(message, settlement, running, queue, deps)).finally(() => jobTrace.end(jobEnd(settlement)));
  };
}

function consumerOf(ctx: Context): Consumer {
  const { built } = ctx;
  return createConsumer<Judgement>({
    sqs: ctx.ready.sqs,
    queueUrl: built.queueUrl,
    concurrency: built.concurrency,
    visibilityTimeoutSeconds: built.visibilityTimeoutSeconds,
    heartbeatIntervalSeconds: built.heartbeatIntervalSeconds,
    pollWaitSeconds: built.pollWaitSeconds,
    jobTimeoutMs: built.jobTimeoutSeconds * 1000,
    memory: ctx.memory,
    flushAfterMs: BATCH_FLUSH_MS,
    decide: deciderOf(ctx),
    settle: settlerOf(ctx),
    log: ctx.log,
  });
}

/** What is wrong but allowed, said once at start; a face model that cannot load stops the start. */
async function startWarnings(ctx: Context): Promise<void> {
  const { log, built, faces } = ctx;
  if (faces) {
    // A model that cannot load would fail every job later: fail the start instead.
    const probe = await faces.probe();
    if (!probe.ok) throw new StartupError(`FACE_CHECK=one, but the face detector does not work: ${probe.message}`);
    log.info({ faceCheck: probe.message, ms: Math.round(probe.ms) }, 'face detector ready');
  }
  if (ctx.ready.queue.deadLetterQueueUrl === undefined) {
    log.warn('no dead-letter queue (DEAD_LETTER_QUEUE_URL unset, and the jobs queue has no redrive policy): failed jobs will only be logged');
  }
  if (built.signingKeys.current === undefined) {
    log.warn({ allowUnsignedJobs: true }, 'no JOB_SIGNING_KEY and ALLOW_UNSIGNED_JOBS=true: jobs are not authenticated (anyone who can send to the jobs queue can enroll a face)');
  }
}

/** The line that says the worker works, and with what. */
function readyLine(ctx: Context): Record<string, unknown> {
  const { built, ready, faces, metricsServer } = ctx;
  const facts = ready.queue;
  return {
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
    notify: ctx.notifier.enabled,
    tracing: ctx.tracing.exporting ? { exporter: built.tracing.protocol, url: built.tracing.url, sampler: built.tracing.sampler } : 'off',
  };
}

async function start(ctx: Context, consumer: Consumer, status: () => string): Promise<void> {
  const { built, notifier } = ctx;
  await startWarnings(ctx);
  if (built.metricsPort !== undefined) {
    ctx.metricsServer = await startMetricsServer({
      host: built.metricsHost,
      port: built.metricsPort,
      registry: ctx.registry,
      health: () => consumer.health,
      // A long poll answers at least every POLL_WAIT_SECONDS; a receive outage backs off to 30 s.
      staleAfterMs: (built.pollWaitSeconds + 45) * 1000,
      timeoutWindowMs: built.jobTimeoutSeconds * 1000,
    });
  }
  consumer.start();
  ctx.statusTimer = setInterval(() => notifier.status(status()), 5_000);
  ctx.statusTimer.unref();
  notifier.ready(status());
  notifier.startWatchdog();
  ctx.log.info(readyLine(ctx), 'ready: receiving jobs');
}

async function reload(ctx: Context, status: () => string): Promise<void> {
  const { ready, log, notifier } = ctx;
  const secretName = secretNameOf(ready.env);
  if (secretName === undefined) {
    log.info('reload: no secret is configured; nothing to re-read');
    return;
  }
  notifier.reloading();
  try {
    const secrets = secretsClient(ready.target, ready.credentials);
    const { config: next } = await loadConfig(ready.env, secretFetcher(secrets, ready.env)).finally(() => secrets.destroy());
    const refusal = reloadRefusal(ctx.live, next);
    if (refusal !== undefined) throw new ConfigError([refusal]);
    const plan = reloadPlan(ctx.live, next);
    ctx.live = applyReload(ctx.live, next);
    log.info({ secret: secretName, applied: plan.live, needRestart: plan.restart, signingKeys: fingerprintsOf(ctx.live.signingKeys) }, 'reload: secret re-read');
    if (plan.restart.length > 0) log.warn({ settings: plan.restart }, 'reload: these settings take effect only at the next start');
  } catch (e: unknown) {
    const problems = e instanceof ConfigError ? e.problems : [describeError(e).message];
    log.error({ problems }, 'reload failed: the worker keeps its current settings');
  } finally {
    notifier.ready(status());
  }
}

async function drain(ctx: Context, consumer: Consumer, status: () => string): Promise<number> {
  const { notifier, log, ready } = ctx;
  notifier.stopping();
  clearInterval(ctx.statusTimer);
  let lastExtension = 0;
  const deadline = Date.now() + ctx.built.drainTimeoutSeconds * 1000;
  const { unfinished } = await consumer.drain(deadline, () => {
    // Still draining: ask systemd for a little more time, never more than the drain needs.
    if (Date.now() - lastExtension < 5_000) return;
    lastExtension = Date.now();
    notifier.extendTimeout(15);
    notifier.status(`stopping: ${status()}`);
  });
  await Promise.all([ctx.deadLetters?.flush(), ...[...ctx.outcomeBatchers.values()].map((b) => b.flush()), ctx.faces?.close()]);
  // The last spans go out within what is left of the drain's time, or are dropped.
  await ctx.tracing.shutdown(deadline);
  if (unfinished > 0) log.warn({ unfinished }, 'drain timeout: unfinished jobs were cancelled and handed back to the queue');
  log.info({ ...ctx.counters.stats, inFlight: consumer.health.inFlight }, 'stopped');
  ctx.metricsServer?.close();
  ready.sqs.destroy();
  ready.s3.destroy();
  notifier.close();
  return 0;
}

export function createDaemon(ready: ReadyContext, options: DaemonOptions): Daemon {
  const ctx = contextOf(ready, options);
  const consumer = consumerOf(ctx);
  registerConsumerGauges(ctx.registry, () => consumer.health);
  registerMemoryGauges(ctx.registry, { held: ctx.memory, decode: ctx.decodeMemory });
  const status = () => describeStats({ ...ctx.counters.stats, inFlight: consumer.health.inFlight });
  return {
    // The drain also waits for the long poll in flight (up to POLL_WAIT_SECONDS).
    guardMs: Math.max(ready.config.drainTimeoutSeconds, ready.config.pollWaitSeconds) * 1000 + 10_000,
    start: () => start(ctx, consumer, status),
    reload: () => reload(ctx, status),
    drain: () => drain(ctx, consumer, status),
  };
}
