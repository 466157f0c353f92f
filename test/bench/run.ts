// One benchmark run: a fresh stack, N jobs enqueued, one process (the worker or a baseline)
// started against it, and what that process cost until the last job was done.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SendMessageBatchCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { DeletedMessage, FastAws } from '../support/fast-aws.ts';
import { createStack, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { baseEnv, CLI } from '../support/worker-process.ts';
import { countsSince, requestsPerJob, type RequestsPerJob } from './costs.ts';
import { cpusAllowedList, treeCpuSeconds, treePeakRssMiB, treeRssMiB } from '../support/proc.ts';
import { percentile } from './stats.ts';
import { sleep } from '../support/wait.ts';

/**
 * The worker, the same-work baseline (SDK loop + sharp), the plain SDK loop, the worker with
 * FACE_CHECK=one, and the worker tracing every job (OTEL_TRACES_EXPORTER=otlp, always_on, to a sink
 * in the benchmark process) — everything else as the worker's.
 */
export type Impl = 'worker' | 'same-work' | 'plain' | 'face' | 'traced';
export const IMPLS: readonly Impl[] = ['worker', 'same-work', 'plain', 'face', 'traced'];
/** What runs unless --processes says otherwise: the face check is opt-in, as in production. */
export const DEFAULT_IMPLS: readonly Impl[] = ['worker', 'same-work', 'plain'];
/** The worker's own binary runs (W, F and T): it publishes outcomes and logs a line per job. */
export const runsWorker = (impl: Impl) => impl === 'worker' || impl === 'face' || impl === 'traced';

/** How a process under test is run. */
export interface RunOptions {
  /** Pinned to CPUs 0..cpus-1 with `taskset` (all its threads and children); undefined: not pinned. */
  cpus?: number;
  /** Extra environment for the worker only (e.g. FACE_CHECK=one). */
  workerEnv: Readonly<Record<string, string>>;
  /** The OTLP/HTTP receiver T exports to (a sink that keeps nothing). */
  otlpSink?: string;
}

export interface Target {
  kind: 'fast' | 'moto';
  endpoint: string;
  imdsEndpoint: string;
  /** Set for the fast endpoint: its deletions are the exact completion times. */
  fast?: FastAws;
}

export interface Workload {
  name: string;
  /** The image of each job, by index into `images`; staged jobs read a copy from the staging bucket. */
  images: readonly Buffer[];
  /** Share of jobs whose image is staged in S3 instead of inline (0-1). */
  stagedShare: number;
  /** Whether each image shows one usable face (`one`) or none (`none`): what FACE_CHECK=one must answer. */
  faces: 'one' | 'none';
  /** What the printed description adds (sizes, orientation). */
  note?: string;
}

/**
 * What every job of a run must end as: `succeeded` (the worker's outcome), `NO_FACE` (the face check
 * on a workload without faces: dead-lettered, nothing stored), or `stored` (a baseline's `done`).
 */
export type Outcome = 'succeeded' | 'NO_FACE' | 'stored';

export function expectedOutcome(impl: Impl, workload: Workload, workerEnv: Readonly<Record<string, string>>): Outcome {
  if (!runsWorker(impl)) return 'stored';
  const faceChecked = impl === 'face' || workerEnv.FACE_CHECK === 'one';
  return faceChecked && workload.faces === 'none' ? 'NO_FACE' : 'succeeded';
}

export interface RunResult {
  endpoint: Target['kind'];
  workload: string;
  impl: Impl;
  /** CPUs the process was pinned to (taskset), or null; and the CPU list the kernel reported for it. */
  cpus: number | null;
  cpusAllowed: string;
  concurrency: number;
  jobs: number;
  seconds: number;
  jobsPerSecond: number;
  cpuSeconds: number;
  cpuMsPerJob: number;
  /** CPU seconds per wall second: 1.0 is one core's worth. */
  cpuUtilisation: number;
  peakRssMiB: number;
  /** Resident set size at its `ready` line, before any job (summed over the tree), MiB. */
  rssAtReadyMiB: number;
  /** Processes in the tree under test at the end (1 unless the process starts others). */
  processes: number;
  /**
   * Its `worker_threads` (F: the face detector's) at the end, and their CPU per job, ms, over the
   * window: the face check's own cost, measured apart from the main thread and libvips.
   */
  workerThreads: number;
  workerThreadCpuMsPerJob: number;
  /** How the jobs ended, counted from the process's lines (succeeded, a failure code, or a baseline's stored). */
  outcomes: Record<string, number>;
  expectedOutcome: Outcome;
  /** Each way the run's outcomes or its queues and bucket differ from what the workload must give: empty when right. */
  wrong: string[];
  /** The worker's `faceCheckMs` per succeeded job (time in a detector thread, wait excluded), ms. */
  faceCheckMs: { p50: number; p95: number; p99: number } | null;
  /**
   * Event-loop utilisation over the run (1.0 = never idle), from the probe's marks at ready and at
   * the last job: of the main process, and summed over every process that reported.
   */
  eventLoopUtilisation: number;
  eventLoopUtilisationAll: number;
  /** Event-loop delay over the run (main process), ms: p50, p99, max. */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  /** Main-thread CPU per job, ms: measured (/proc, main threads of the tree) and ELU × wall ÷ jobs. */
  mainThreadCpuMsPerJob: number;
  mainThreadEluMsPerJob: number;
  /** Receive → delete per job (fast endpoint only), ms. */
  serviceMs: { p50: number; p95: number; p99: number } | null;
  /** Enqueue → done per job, ms (includes the wait in the queue). */
  enqueueToDoneMs: { p50: number; p95: number; p99: number };
  /** The endpoint process's own CPU per job, ms (fast endpoint, in the benchmark process). */
  endpointCpuMsPerJob: number | null;
  /** Event-loop utilisation of the benchmark process (the fast endpoint runs in it) over the run. */
  endpointEventLoopUtilisation: number;
  /** SQS/S3 requests per job by action, billed SQS requests and cost (fast endpoint only). */
  requests: RequestsPerJob | null;
  /** The same for the producer's enqueue of these jobs (SendMessageBatch of 10), for reference. */
  producerRequests: RequestsPerJob | null;
  exit: { code: number | null; signal: string | null };
  warnings: string[];
}

const ENTRY: Record<Exclude<Impl, 'worker' | 'face' | 'traced'>, string> = {
  'same-work': resolve(import.meta.dirname, 'same-work-baseline.ts'),
  plain: resolve(import.meta.dirname, 'baseline.ts'),
};
const PROBE = resolve(import.meta.dirname, 'probe.ts');
/** Warnings the benchmark's own set-up causes (its jobs are unsigned): not worth reporting. */
const EXPECTED_WARNINGS = /"msg":"no JOB_SIGNING_KEY/;

/** The probe's line once a second. */
export interface ProbeSample {
  t: number;
  pid: number;
  elu: number;
}

/** The probe's line at a mark: the window since the previous mark. */
export interface ProbeMark {
  t: number;
  pid: number;
  since: number;
  elu: number;
  delayP50Ms: number;
  delayP99Ms: number;
  delayMaxMs: number;
  delaySamples: number;
}

const pct = (values: number[]) => ({ p50: percentile(values, 50), p95: percentile(values, 95), p99: percentile(values, 99) });

function countOutcomes(byJob: ReadonlyMap<string, string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of byJob.values()) counts[outcome] = (counts[outcome] ?? 0) + 1;
  return counts;
}

/** `200 succeeded`, `150 NO_FACE + 50 succeeded`, `none`. */
export function describeOutcomes(counts: Readonly<Record<string, number>>): string {
  const parts = Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([outcome, n]) => `${n} ${outcome}`);
  return parts.length > 0 ? parts.join(' + ') : 'none';
}

interface PreparedJob {
  body: string;
  /** The object to stage first, for a staged job: one per job, as producers do (the worker may delete it). */
  staged?: { key: string; bytes: Buffer };
}

function prepareJob(index: number, workload: Workload, stack: Stack): PreparedJob {
  const bytes = workload.images[index % workload.images.length] ?? Buffer.alloc(0);
  // Every job a new user: every reference is a new object (created, not "already there").
  const userId = `bench-user-${index}@example.com`;
  const jobId = `bench-${index}`;
  const staged = stack.stagingBucket !== undefined && workload.stagedShare > 0 && index % Math.round(1 / workload.stagedShare) === 0;
  // issuedAt and the staged object's sha256 as a producer sends them (the job contract).
  const issuedAt = Math.floor(Date.now() / 1000);
  if (!staged) return { body: JSON.stringify({ version: 1, jobId, userId, issuedAt, images: [{ data: bytes.toString('base64') }] }) };
  const key = `uploads/${jobId}/0`;
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { body: JSON.stringify({ version: 1, jobId, userId, issuedAt, images: [{ s3: { bucket: stack.stagingBucket, key, sha256 } }] }), staged: { key, bytes } };
}

async function stage(stack: Stack, jobs: readonly PreparedJob[]): Promise<void> {
  await Promise.all(
    jobs.map((job) => (job.staged ? stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: job.staged.key, Body: job.staged.bytes })) : undefined)),
  );
}

/** Stages and sends jobs [from, to) in SendMessageBatch calls of at most 10 messages and 1 MiB, a few at a time. */
async function enqueue(stack: Stack, job: (i: number) => PreparedJob, from: number, to: number): Promise<void> {
  const batches: PreparedJob[][] = [];
  let batch: PreparedJob[] = [];
  let bytes = 0;
  for (let i = from; i < to; i += 1) {
    const prepared = job(i);
    if (batch.length === 10 || (batch.length > 0 && bytes + prepared.body.length > 1_000_000)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(prepared);
    bytes += prepared.body.length;
  }
  if (batch.length > 0) batches.push(batch);
  let next = 0;
  const sender = async () => {
    while (next < batches.length) {
      const entries = batches[next++] ?? [];
      await stage(stack, entries);
      const sent = await stack.sqs.send(
        new SendMessageBatchCommand({ QueueUrl: stack.jobsQueueUrl, Entries: entries.map((e, Id) => ({ Id: String(Id), MessageBody: e.body })) }),
      );
      if ((sent.Failed ?? []).length > 0) throw new Error(`enqueue failed: ${JSON.stringify(sent.Failed)}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, sender));
}

export function processEnv(impl: Impl, target: Target, stack: Stack, concurrency: number, options: RunOptions): NodeJS.ProcessEnv {
  const worker = runsWorker(impl);
  return {
    ...baseEnv(target.imdsEndpoint),
    AWS_REGION: stack.region,
    AWS_ENDPOINT_URL: target.endpoint,
    SQS_QUEUE_URL: stack.jobsQueueUrl,
    S3_BUCKET: stack.bucket,
    STAGING_BUCKET: stack.stagingBucket ?? '',
    // The baselines publish no outcome: that is part of the worker's contract, not of theirs.
    RESULT_QUEUE_URL: worker ? (stack.resultQueueUrl ?? '') : '',
    // The benchmark's jobs are not signed (a signature check is a few µs of HMAC per job).
    ALLOW_UNSIGNED_JOBS: 'true',
    CONCURRENCY: String(concurrency),
    LOG_LEVEL: 'info',
    // moto serves long polls slowly and a stop waits for them; the fast endpoint releases them.
    POLL_WAIT_SECONDS: target.kind === 'moto' ? '5' : '20',
    ...(worker ? options.workerEnv : {}),
    // F: the worker with the face check, its threads at their default (one per CPU it may use).
    ...(impl === 'face' ? { FACE_CHECK: 'one' } : {}),
    // T: every job traced (sampling 1.0) and exported over OTLP/HTTP (protobuf, the default).
    ...(impl === 'traced' ? { OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: 'always_on', OTEL_EXPORTER_OTLP_ENDPOINT: options.otlpSink ?? '' } : {}),
  };
}

export interface Child {
  child: ChildProcess;
  ready: Promise<number>;
  /** jobId → epoch ms when the process said it was done (its log line / `done` line). */
  done: Map<string, number>;
  /** jobId → how it ended: `succeeded`, the failure's code, or `stored` (a baseline's `done`). */
  outcomes: Map<string, string>;
  /** The worker's `faceCheckMs` of each succeeded job that has one. */
  faceCheckMs: number[];
  probes: ProbeSample[];
  marks: ProbeMark[];
  /** Called on each probe-mark line. */
  onMark: (() => void) | undefined;
  onDone: (() => void) | undefined;
  warnings: string[];
  exited: Promise<{ code: number | null; signal: string | null }>;
}

/** Starts the worker (`node dist/cli.js run`) or a baseline, pinned with taskset if asked, and follows its output. */
export function startProcess(impl: Impl, env: NodeJS.ProcessEnv, cpus?: number): Child {
  // BENCH_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", to profile every process.
  const extra = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const args = [...extra, '--import', PROBE, ...(impl === 'worker' || impl === 'face' || impl === 'traced' ? [CLI, 'run'] : [ENTRY[impl]])];
  // taskset execs node in place: the pid is node's, and threads and children inherit the CPU set.
  const child =
    cpus === undefined
      ? spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('taskset', ['-c', cpus === 1 ? '0' : `0-${cpus - 1}`, process.execPath, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const done = new Map<string, number>();
  const outcomes = new Map<string, string>();
  const faceCheckMs: number[] = [];
  const warnings: string[] = [];
  let markReady: (t: number) => void = () => {};
  let failStart: (e: Error) => void = () => {};
  const ready = new Promise<number>((res, rej) => {
    markReady = res;
    failStart = rej;
  });
  const probes: ProbeSample[] = [];
  const marks: ProbeMark[] = [];
  const state: Child = { child, ready, done, outcomes, faceCheckMs, probes, marks, onMark: undefined, onDone: undefined, warnings, exited: Promise.resolve({ code: null, signal: null }) };
  let pending = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    const now = Date.now();
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('done ')) {
        const [, jobId = ''] = line.split(' ');
        done.set(jobId, now);
        outcomes.set(jobId, 'stored');
        state.onDone?.();
      } else if (line === 'ready') {
        markReady(now);
      } else if (line.startsWith('{')) {
        // Cheap checks first: most lines are "job succeeded".
        const succeeded = line.includes('"msg":"job succeeded"');
        if (succeeded || line.includes('"msg":"job failed"')) {
          // A failed job is done too: dead-lettered and deleted from the jobs queue.
          const jobId = /"jobId":"([^"]+)"/.exec(line)?.[1];
          const outcome = succeeded ? 'succeeded' : (/"code":"([A-Z_]+)"/.exec(line)?.[1] ?? 'failed');
          if (jobId) {
            done.set(jobId, now);
            outcomes.set(jobId, outcome);
          }
          const ms = /"faceCheckMs":(\d+)/.exec(line)?.[1];
          if (ms !== undefined) faceCheckMs.push(Number(ms));
          // One failed line is worth a warning, unless failing is what this run is for (the bench judges the count).
          if (!succeeded && warnings.length < 5 && !warnings.some((w) => w.includes(`"code":"${outcome}"`))) warnings.push(line.slice(0, 400));
          state.onDone?.();
        } else if (line.includes('"msg":"ready: receiving jobs"')) {
          markReady(now);
        } else if (/"level":"(warn|error|fatal)"/.test(line) && !EXPECTED_WARNINGS.test(line) && warnings.length < 5) {
          warnings.push(line.slice(0, 400));
        }
      }
    }
  });
  child.stderr?.setEncoding('utf8');
  let pendingErr = '';
  child.stderr?.on('data', (chunk: string) => {
    pendingErr += chunk;
    const lines = pendingErr.split('\n');
    pendingErr = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('probe ')) probes.push(JSON.parse(line.slice('probe '.length)) as ProbeSample);
      else if (line.startsWith('probe-mark ')) {
        marks.push(JSON.parse(line.slice('probe-mark '.length)) as ProbeMark);
        state.onMark?.();
      } else if (warnings.length < 5 && line.trim() !== '' && !line.startsWith('stopped;')) warnings.push(`stderr: ${line.trim().slice(0, 400)}`);
    }
  });
  state.exited = new Promise((res) => {
    child.on('exit', (code, signal) => {
      failStart(new Error(`${impl} exited before it was ready (${code ?? signal}): ${warnings.join(' | ')}`));
      res({ code, signal });
    });
  });
  return state;
}

export async function stopProcess(proc: Child, target: Target): Promise<{ code: number | null; signal: string | null }> {
  proc.child.kill('SIGTERM');
  // The fast endpoint answers the idle long polls at once, so the drain need not wait them out.
  const release = setInterval(() => target.fast?.releaseWaits(), 200);
  const force = setTimeout(() => proc.child.kill('SIGKILL'), 45_000);
  try {
    return await proc.exited;
  } finally {
    clearInterval(release);
    clearTimeout(force);
  }
}

async function depth(stack: Stack, queueUrl: string | undefined): Promise<number> {
  if (!queueUrl) return 0;
  const { Attributes = {} } = await stack.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return Number(Attributes.ApproximateNumberOfMessages ?? 0) + Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0);
}

export async function newStack(target: Target, label: string): Promise<{ stack: Stack; name: string }> {
  const name = uniqueName(label);
  return { stack: await createStack(target.endpoint, name), name };
}

/** Queue-fed throughput run: the queue holds all `jobs` before the process starts. */
/**
 * Marks the probe's window in every process that has a probe (the main one, and any child that
 * has reported) and waits up to a second for their `probe-mark` lines.
 */
async function mark(proc: Child): Promise<ProbeMark[]> {
  const pids = new Set([proc.child.pid ?? 0, ...proc.probes.map((p) => p.pid)]);
  const before = proc.marks.length;
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGUSR2');
    } catch {
      pids.delete(pid); // exited
    }
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    proc.onMark = () => {
      if (proc.marks.length - before >= pids.size) {
        clearTimeout(timer);
        resolve();
      }
    };
  });
  proc.onMark = undefined;
  return proc.marks.slice(before);
}

/** Queue-fed throughput run: the queue holds all `jobs` before the process starts. */
export async function throughputRun(target: Target, impl: Impl, concurrency: number, jobs: number, workload: Workload, options: RunOptions): Promise<RunResult> {
  const { stack, name } = await newStack(target, `b${impl[0]}c${concurrency}`);
  const beforeEnqueue = { calls: { ...(target.fast?.requests ?? {}) }, billed: { ...(target.fast?.billedRequests ?? {}) } };
  await enqueue(stack, (i) => prepareJob(i, workload, stack), 0, jobs);
  const producerRequests = target.fast
    ? requestsPerJob(countsSince(target.fast.requests, beforeEnqueue.calls), countsSince(target.fast.billedRequests, beforeEnqueue.billed), jobs)
    : null;

  const deleted: DeletedMessage[] = [];
  let complete: () => void = () => {};
  const allDone = new Promise<void>((r) => (complete = r));
  const count = () => (target.fast ? deleted.length : proc.done.size);
  const check = () => {
    if (count() >= jobs) complete();
  };
  const onDeleted = (d: DeletedMessage) => {
    if (d.queue !== `${name}-jobs`) return;
    deleted.push(d);
    check();
  };
  target.fast?.events.on('deleted', onDeleted);

  const proc = startProcess(impl, processEnv(impl, target, stack, concurrency, options), options.cpus);
  const pid = proc.child.pid ?? 0;
  proc.onDone = check;
  let exit: { code: number | null; signal: string | null } = { code: null, signal: null };
  try {
    const started = await proc.ready;
    const cpusAllowed = cpusAllowedList(pid);
    // Before the first job: what the process holds to be ready (F: the detector threads with their model).
    const rssAtReady = treeRssMiB(pid);
    const cpuAtStart = treeCpuSeconds(pid);
    const countsAtStart = { calls: { ...(target.fast?.requests ?? {}) }, billed: { ...(target.fast?.billedRequests ?? {}) } };
    const endpointCpuAtStart = process.cpuUsage();
    const endpointEluAtStart = performance.eventLoopUtilization();
    // Not awaited: the window starts now, whenever the marks come back.
    const startMarks = mark(proc);
    check();
    // A face check is ~0.2 s of a core per image: give F's runs room on a busy machine.
    const timeout = setTimeout(() => complete(), Math.max(120_000, jobs * (impl === 'face' ? 1_000 : 200)));
    await allDone;
    clearTimeout(timeout);
    const finished = target.fast ? Math.max(...deleted.map((d) => d.deletedAt)) : Math.max(...proc.done.values());
    const cpu = treeCpuSeconds(pid);
    const cpuTotal = cpu.all - cpuAtStart.all;
    const cpuMain = cpu.mainThreads - cpuAtStart.mainThreads;
    const cpuWorkerThreads = cpu.workerThreads - cpuAtStart.workerThreads;
    const endpointCpu = process.cpuUsage(endpointCpuAtStart);
    const endpointElu = performance.eventLoopUtilization(performance.eventLoopUtilization(), endpointEluAtStart).utilization;
    const calls = target.fast ? countsSince(target.fast.requests, countsAtStart.calls) : {};
    const billed = target.fast ? countsSince(target.fast.billedRequests, countsAtStart.billed) : {};
    const peak = treePeakRssMiB(pid);
    await startMarks;
    const endMarks = await mark(proc);
    const finishedJobs = count();
    exit = await stopProcess(proc, target);
    target.fast?.events.off('deleted', onDeleted);

    // What the workload must give: every job ends as expected, and the bucket and queues agree.
    const expected = expectedOutcome(impl, workload, options.workerEnv);
    const outcomes = countOutcomes(proc.outcomes);
    // A failure the run is for (NO_FACE on a workload without faces) is no warning.
    const warnings = proc.warnings.filter((w) => !(expected !== 'succeeded' && w.includes(`"code":"${expected}"`)));
    const wrong: string[] = [];
    if (finishedJobs < jobs) wrong.push(`only ${finishedJobs} of ${jobs} jobs finished before the timeout`);
    if ((outcomes[expected] ?? 0) !== jobs) wrong.push(`outcomes ${describeOutcomes(outcomes)} where all ${jobs} must be ${expected}`);
    const stored = (await listKeys(stack.s3, stack.bucket)).length;
    const mustStore = expected === 'NO_FACE' ? 0 : jobs;
    if (stored !== mustStore) wrong.push(`${stored} references stored for ${jobs} jobs (${mustStore} expected)`);
    const left = await depth(stack, stack.jobsQueueUrl);
    if (left !== 0) wrong.push(`${left} messages left in the jobs queue`);
    const dead = await depth(stack, stack.deadLetterQueueUrl);
    const mustDeadLetter = expected === 'NO_FACE' ? jobs : 0;
    if (dead !== mustDeadLetter) wrong.push(`${dead} messages dead-lettered (${mustDeadLetter} expected)`);
    if (runsWorker(impl)) {
      const published = await depth(stack, stack.resultQueueUrl);
      if (published !== jobs) wrong.push(`${published} outcomes published for ${jobs} jobs`);
    }
    warnings.push(...wrong);
    if (exit.code !== 0) warnings.push(`exit ${exit.code ?? exit.signal}`);
    const main = endMarks.find((m) => m.pid === pid);
    if (!main) warnings.push('no probe mark from the process: event-loop figures missing');

    const seconds = (finished - started) / 1000;
    const elu = main?.elu ?? Number.NaN;
    const inQueueAndService = target.fast ? deleted.map((d) => d.deletedAt - d.sentAt) : [];
    return {
      endpoint: target.kind,
      workload: workload.name,
      impl,
      cpus: options.cpus ?? null,
      cpusAllowed,
      concurrency,
      jobs: finishedJobs,
      seconds,
      jobsPerSecond: finishedJobs / seconds,
      cpuSeconds: cpuTotal,
      cpuMsPerJob: (cpuTotal * 1000) / finishedJobs,
      cpuUtilisation: cpuTotal / seconds,
      peakRssMiB: peak,
      rssAtReadyMiB: rssAtReady,
      processes: cpu.processes,
      workerThreads: cpu.workerThreadCount,
      workerThreadCpuMsPerJob: (cpuWorkerThreads * 1000) / finishedJobs,
      outcomes,
      expectedOutcome: expected,
      wrong,
      faceCheckMs: proc.faceCheckMs.length > 0 ? pct(proc.faceCheckMs) : null,
      eventLoopUtilisation: elu,
      eventLoopUtilisationAll: endMarks.reduce((sum, m) => sum + m.elu, 0),
      eventLoopDelayMs: { p50: main?.delayP50Ms ?? Number.NaN, p99: main?.delayP99Ms ?? Number.NaN, max: main?.delayMaxMs ?? Number.NaN },
      mainThreadCpuMsPerJob: (cpuMain * 1000) / finishedJobs,
      mainThreadEluMsPerJob: (endMarks.reduce((sum, m) => sum + m.elu, 0) * seconds * 1000) / finishedJobs,
      serviceMs: target.fast ? pct(deleted.map((d) => d.deletedAt - (d.firstReceivedAt ?? d.sentAt))) : null,
      enqueueToDoneMs: target.fast ? pct(inQueueAndService) : pct([...proc.done.values()].map((t) => t - started)),
      endpointCpuMsPerJob: target.fast ? (endpointCpu.user + endpointCpu.system) / 1000 / finishedJobs : null,
      endpointEventLoopUtilisation: endpointElu,
      requests: target.fast ? requestsPerJob(calls, billed, finishedJobs) : null,
      producerRequests,
      exit,
      warnings,
    };
  } finally {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
    target.fast?.events.off('deleted', onDeleted);
    target.fast?.forget(name);
  }
}

export interface LatencyResult {
  impl: Impl;
  workload: string;
  concurrency: number;
  ratePerSecond: number;
  jobs: number;
  enqueueToDoneMs: { p50: number; p95: number; p99: number };
  /** Enqueue → first received, and first received → deleted, ms. */
  inQueueMs: { p50: number; p95: number; p99: number };
  serviceMs: { p50: number; p95: number; p99: number };
  cpuMsPerJob: number;
  warnings: string[];
}

/**
 * Open-loop latency on the fast endpoint: jobs arrive at a fixed rate (below capacity) while the
 * process runs, and each is timed from its SendMessage to its delete, at the endpoint.
 */
export async function latencyRun(target: Target, impl: Impl, concurrency: number, ratePerSecond: number, seconds: number, workload: Workload, options: RunOptions): Promise<LatencyResult> {
  const fast = target.fast;
  if (!fast) throw new Error('the latency run needs the fast endpoint');
  const { stack, name } = await newStack(target, `l${impl[0]}c${concurrency}`);
  const jobs = Math.max(1, Math.round(ratePerSecond * seconds));
  const prepared = Array.from({ length: jobs }, (_, i) => prepareJob(i, workload, stack));
  // Staged in advance: the producer's upload is not part of the latency measured.
  await stage(stack, prepared);
  const latencies: number[] = [];
  const inQueue: number[] = [];
  const service: number[] = [];
  let complete: () => void = () => {};
  const allDone = new Promise<void>((r) => (complete = r));
  const onDeleted = (d: DeletedMessage) => {
    if (d.queue !== `${name}-jobs`) return;
    latencies.push(d.deletedAt - d.sentAt);
    inQueue.push((d.firstReceivedAt ?? d.sentAt) - d.sentAt);
    service.push(d.deletedAt - (d.firstReceivedAt ?? d.sentAt));
    if (latencies.length >= jobs) complete();
  };
  fast.events.on('deleted', onDeleted);
  const proc = startProcess(impl, processEnv(impl, target, stack, concurrency, options), options.cpus);
  try {
    await proc.ready;
    const pid = proc.child.pid ?? 0;
    const cpuAtStart = treeCpuSeconds(pid).all;
    const start = Date.now();
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < jobs; i += 1) {
      const due = start + (i * 1000) / ratePerSecond;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      sends.push(stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.jobsQueueUrl, MessageBody: prepared[i]?.body })));
    }
    await Promise.all(sends);
    const timeout = setTimeout(() => complete(), 60_000);
    await allDone;
    clearTimeout(timeout);
    const cpu = treeCpuSeconds(pid).all - cpuAtStart;
    const exit = await stopProcess(proc, target);
    const warnings = [...proc.warnings];
    if (latencies.length < jobs) warnings.push(`only ${latencies.length} of ${jobs} jobs finished`);
    if (exit.code !== 0) warnings.push(`exit ${exit.code ?? exit.signal}`);
    return { impl, workload: workload.name, concurrency, ratePerSecond, jobs: latencies.length, enqueueToDoneMs: pct(latencies), inQueueMs: pct(inQueue), serviceMs: pct(service), cpuMsPerJob: (cpu * 1000) / Math.max(1, latencies.length), warnings };
  } finally {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
    fast.events.off('deleted', onDeleted);
    fast.forget(name);
  }
}
