// Runs → summaries (medians over repeats) → the tables printed on stdout. Every table carries the
// two ratios of the worker: against the same-work baseline (the goal) and against the plain loop
// (what the framework itself costs); and, when F (the worker with FACE_CHECK=one) ran, F's ratio to
// the worker (what the face check costs). Columns of processes that did not run are left out.
import { meanRequests, PRICES, type RequestsPerJob } from './costs.ts';
import { median } from './stats.ts';
import { describeOutcomes, IMPLS, type Impl, type Outcome, type RunResult } from './run.ts';

export const LETTER: Record<Impl, string> = { worker: 'W', 'same-work': 'S', plain: 'P', face: 'F', traced: 'T' };

export interface Side {
  jobsPerSecond: number;
  cpuMsPerJob: number;
  cpuUtilisation: number;
  peakRssMiB: number;
  rssAtReadyMiB: number;
  serviceP50: number;
  serviceP95: number;
  eventLoopUtilisation: number;
  /** Main-thread CPU per job, ms: measured in /proc, and as ELU × wall ÷ jobs. */
  mainThreadCpuMsPerJob: number;
  mainThreadEluMsPerJob: number;
  /** Cores the process would keep busy once its event loop is full: CPU util ÷ ELU, and CPU ÷ main-thread CPU. */
  coresByElu: number;
  coresByMainThread: number;
  delayMs: { p50: number; p99: number; max: number };
  processes: number;
  /** Its worker threads (F: the detector's) and their CPU per job, ms. */
  workerThreads: number;
  workerThreadCpuMsPerJob: number;
  /** The worker's time in a detector thread per succeeded job (median over repeats of p50 and p95), ms. */
  faceCheckMs: { p50: number; p95: number } | null;
  /** How the jobs of all its repeats ended, what they had to, and how many repeats did not. */
  outcomes: Record<string, number>;
  expectedOutcome: Outcome;
  wrongRuns: number;
  requests: RequestsPerJob | null;
}

interface Ratio {
  throughput: number;
  cpuPerJob: number;
}

export interface Summary {
  endpoint: string;
  workload: string;
  cpus: number | null;
  concurrency: number;
  jobs: number;
  repeats: number;
  sides: Partial<Record<Impl, Side>>;
  /** The worker against the same-work baseline (the goal) and against the plain loop (the framework's cost). */
  vsSameWork: Ratio | null;
  vsPlain: Ratio | null;
  /** F against W: what the face check costs. */
  faceVsWorker: Ratio | null;
  /** T against W: what tracing every job costs. */
  tracedVsWorker: Ratio | null;
  endpointUtilisation: number;
  producer: RequestsPerJob | null;
}

const keyOf = (r: Pick<RunResult, 'endpoint' | 'workload' | 'cpus' | 'concurrency'>) => `${r.endpoint}|${r.workload}|${r.cpus ?? 'all'}|${r.concurrency}`;

function side(runs: RunResult[]): Side | undefined {
  if (runs.length === 0) return undefined;
  const m = (pick: (r: RunResult) => number) => median(runs.map(pick));
  const cpuUtilisation = m((r) => r.cpuUtilisation);
  const eventLoopUtilisation = m((r) => r.eventLoopUtilisation);
  const cpuMsPerJob = m((r) => r.cpuMsPerJob);
  const mainThreadCpuMsPerJob = m((r) => r.mainThreadCpuMsPerJob);
  return {
    jobsPerSecond: m((r) => r.jobsPerSecond),
    cpuMsPerJob,
    cpuUtilisation,
    peakRssMiB: Math.max(...runs.map((r) => r.peakRssMiB)),
    rssAtReadyMiB: m((r) => r.rssAtReadyMiB),
    serviceP50: m((r) => r.serviceMs?.p50 ?? Number.NaN),
    serviceP95: m((r) => r.serviceMs?.p95 ?? Number.NaN),
    eventLoopUtilisation,
    mainThreadCpuMsPerJob,
    mainThreadEluMsPerJob: m((r) => r.mainThreadEluMsPerJob),
    coresByElu: cpuUtilisation / eventLoopUtilisation,
    coresByMainThread: cpuMsPerJob / mainThreadCpuMsPerJob,
    delayMs: { p50: m((r) => r.eventLoopDelayMs.p50), p99: m((r) => r.eventLoopDelayMs.p99), max: Math.max(...runs.map((r) => r.eventLoopDelayMs.max)) },
    processes: Math.max(...runs.map((r) => r.processes)),
    workerThreads: Math.max(...runs.map((r) => r.workerThreads)),
    workerThreadCpuMsPerJob: m((r) => r.workerThreadCpuMsPerJob),
    faceCheckMs: runs.some((r) => r.faceCheckMs) ? { p50: m((r) => r.faceCheckMs?.p50 ?? Number.NaN), p95: m((r) => r.faceCheckMs?.p95 ?? Number.NaN) } : null,
    outcomes: runs.reduce<Record<string, number>>((sum, r) => {
      for (const [outcome, n] of Object.entries(r.outcomes)) sum[outcome] = (sum[outcome] ?? 0) + n;
      return sum;
    }, {}),
    expectedOutcome: runs[0]?.expectedOutcome ?? 'succeeded',
    wrongRuns: runs.filter((r) => r.wrong.length > 0).length,
    requests: meanRequests(runs.flatMap((r) => (r.requests ? [r.requests] : []))),
  };
}

const ratio = (worker: Side | undefined, other: Side | undefined): Ratio | null =>
  worker && other ? { throughput: worker.jobsPerSecond / other.jobsPerSecond, cpuPerJob: worker.cpuMsPerJob / other.cpuMsPerJob } : null;

export function summarise(runs: RunResult[]): Summary[] {
  const keys = [...new Set(runs.map(keyOf))];
  return keys.map((key) => {
    const group = runs.filter((r) => keyOf(r) === key);
    const first = group[0];
    const sides: Partial<Record<Impl, Side>> = {};
    for (const impl of IMPLS) {
      const s = side(group.filter((r) => r.impl === impl));
      if (s) sides[impl] = s;
    }
    const repeats = Math.max(...IMPLS.map((impl) => group.filter((r) => r.impl === impl).length));
    return {
      endpoint: first?.endpoint ?? '',
      workload: first?.workload ?? '',
      cpus: first?.cpus ?? null,
      concurrency: first?.concurrency ?? 0,
      jobs: first?.jobs ?? 0,
      repeats,
      sides,
      vsSameWork: ratio(sides.worker, sides['same-work']),
      vsPlain: ratio(sides.worker, sides.plain),
      faceVsWorker: ratio(sides.face, sides.worker),
      tracedVsWorker: ratio(sides.traced, sides.worker),
      endpointUtilisation: median(group.map((r) => ((r.endpointCpuMsPerJob ?? Number.NaN) * r.jobsPerSecond) / 1000)),
      producer: meanRequests(group.flatMap((r) => (r.producerRequests ? [r.producerRequests] : []))),
    };
  });
}

export const fmt = (n: number | undefined, digits = 1) => (n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '-');

/** A cell with nothing in it: empty, `-`, `-/-`… */
const blank = (cell: string | undefined) => /^[-/]*$/.test(cell ?? '');

/** A markdown table, without the columns that are blank in every row (processes that did not run). */
function markdown(allHead: string[], allRows: string[][]): string {
  const keep = allHead.map((_, i) => allRows.length === 0 || allRows.some((r) => !blank(r[i])));
  const head = allHead.filter((_, i) => keep[i]);
  const rows = allRows.map((r) => r.filter((_, i) => keep[i]));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const levelCells = (s: Summary) => [s.endpoint, s.workload, s.cpus === null ? 'all' : String(s.cpus), String(s.concurrency)];
const LEVEL_HEAD = ['endpoint', 'workload', 'cpus', 'conc'];
const RATIO_HEAD = ['W/S tput', 'W/S CPU', 'W/P tput', 'W/P CPU', 'F/W tput', 'F/W CPU', 'T/W tput', 'T/W CPU'];
const ratioCells = (s: Summary) => [
  fmt(s.vsSameWork?.throughput, 2),
  fmt(s.vsSameWork?.cpuPerJob, 2),
  fmt(s.vsPlain?.throughput, 2),
  fmt(s.vsPlain?.cpuPerJob, 2),
  fmt(s.faceVsWorker?.throughput, 2),
  fmt(s.faceVsWorker?.cpuPerJob, 2),
  fmt(s.tracedVsWorker?.throughput, 2),
  fmt(s.tracedVsWorker?.cpuPerJob, 2),
];
/** On a process's row, the ratios that are its own: W's to S and P on W's row, F's to W on F's. */
const ownRatioCells = (s: Summary, impl: Impl) => {
  const all = ratioCells(s);
  if (impl === 'worker') return [...all.slice(0, 4), '', '', '', ''];
  if (impl === 'face') return ['', '', '', '', ...all.slice(4, 6), '', ''];
  if (impl === 'traced') return ['', '', '', '', '', '', ...all.slice(6)];
  return all.map(() => '');
};
const present = (s: Summary): Impl[] => IMPLS.filter((impl) => s.sides[impl] !== undefined);
/** `200 succeeded`, or the wrong counts shouted. */
const outcomeCell = (p: Side) => (p.wrongRuns > 0 ? `WRONG (${p.wrongRuns} run${p.wrongRuns === 1 ? '' : 's'}): ${describeOutcomes(p.outcomes)}` : describeOutcomes(p.outcomes));

/** Throughput and CPU per job of each process, and the worker's two ratios. */
export function headlineTable(summaries: Summary[]): string {
  const head = [...LEVEL_HEAD, 'jobs', 'reps', ...IMPLS.map((i) => `jobs/s ${LETTER[i]}`), ...RATIO_HEAD, ...IMPLS.map((i) => `CPU ms/job ${LETTER[i]}`), 'endpoint util'];
  const rows = summaries.map((s) => [
    ...levelCells(s),
    String(s.jobs),
    String(s.repeats),
    ...IMPLS.map((i) => fmt(s.sides[i]?.jobsPerSecond)),
    ...ratioCells(s),
    ...IMPLS.map((i) => fmt(s.sides[i]?.cpuMsPerJob, 2)),
    fmt(s.endpointUtilisation, 2),
  ]);
  return markdown(head, rows);
}

/** Per process: CPU, the main thread, the event loop, memory, service time. The ratios on the worker's rows. */
export function processTable(summaries: Summary[]): string {
  const head = [
    ...LEVEL_HEAD,
    'process',
    'jobs/s',
    'CPU ms/job',
    'CPU util',
    'main ms/job',
    'ELU×wall ms/job',
    'ELU',
    'cores≈util/ELU',
    'cores≈CPU/main',
    'loop delay p50/p99/max ms',
    'peak RSS',
    'svc p50/p95 ms',
    'outcomes',
    ...RATIO_HEAD,
  ];
  const rows = summaries.flatMap((s) =>
    present(s).map((impl) => {
      const p = s.sides[impl];
      return [
        ...levelCells(s),
        LETTER[impl] + (p && p.processes > 1 ? ` (${p.processes} procs)` : ''),
        fmt(p?.jobsPerSecond),
        fmt(p?.cpuMsPerJob, 2),
        fmt(p?.cpuUtilisation, 2),
        fmt(p?.mainThreadCpuMsPerJob, 2),
        fmt(p?.mainThreadEluMsPerJob, 2),
        fmt(p?.eventLoopUtilisation, 2),
        fmt(p?.coresByElu, 2),
        fmt(p?.coresByMainThread, 2),
        `${fmt(p?.delayMs.p50, 1)}/${fmt(p?.delayMs.p99, 1)}/${fmt(p?.delayMs.max, 0)}`,
        `${fmt(p?.peakRssMiB, 0)} MiB`,
        `${fmt(p?.serviceP50, 0)}/${fmt(p?.serviceP95, 0)}`,
        p ? outcomeCell(p) : '-',
        ...ownRatioCells(s, impl),
      ];
    }),
  );
  return markdown(head, rows);
}

const SHORT: Record<string, string> = {
  'sqs:ReceiveMessage': 'Receive',
  'sqs:DeleteMessage': 'Delete',
  'sqs:DeleteMessageBatch': 'DeleteBatch',
  'sqs:SendMessage': 'Send',
  'sqs:SendMessageBatch': 'SendBatch',
  'sqs:ChangeMessageVisibility': 'ChangeVis',
  'sqs:ChangeMessageVisibilityBatch': 'ChangeVisBatch',
  'sqs:GetQueueAttributes': 'GetQueueAttrs',
  's3:GetObject': 'GET',
  's3:PutObject': 'PUT',
  's3:HeadObject': 'HEAD',
  's3:DeleteObject': 'DELETE',
};

function breakdown(counts: Record<string, number>): string {
  return Object.entries(counts)
    .filter(([, n]) => n >= 0.005)
    .map(([action, n]) => `${SHORT[action] ?? action} ${n.toFixed(2)}`)
    .join(', ');
}

/** SQS and S3 requests per job and their cost, per process (fast endpoint). */
export function requestsTable(summaries: Summary[]): string {
  const head = [...LEVEL_HEAD, 'process', 'SQS calls/job', 'SQS billed/job', 'S3 calls/job', 'calls per job by action', '$/M jobs SQS', '$/M jobs S3', '$/M jobs', ...RATIO_HEAD];
  const rows = summaries
    .filter((s) => s.endpoint === 'fast')
    .flatMap((s) =>
      present(s).map((impl) => {
        const r = s.sides[impl]?.requests;
        return [
          ...levelCells(s),
          LETTER[impl],
          fmt(r?.sqsCalls, 2),
          fmt(r?.sqsBilled, 2),
          fmt(r?.s3Calls, 2),
          r ? breakdown(r.calls) : '-',
          fmt(r?.dollarsPerMillionJobs.sqs, 2),
          fmt(r?.dollarsPerMillionJobs.s3, 2),
          fmt(r?.dollarsPerMillionJobs.total, 2),
          ...ownRatioCells(s, impl),
        ];
      }),
    );
  return markdown(head, rows);
}

export const PRICE_NOTE = `prices: SQS standard $${(PRICES.sqsPerRequest * 1e6).toFixed(2)}/million requests, each 64 KiB of message payload in a call one more request; S3 Standard PUT/COPY/POST/LIST $${(PRICES.s3PutClassPerRequest * 1e3).toFixed(4)}/1,000, GET and others $${(PRICES.s3GetClassPerRequest * 1e3).toFixed(4)}/1,000, DELETE free (us-east-1 list prices; BENCHMARKS.md)`;

/** The goals, read at the headline level (fast endpoint, CONCURRENCY 16, not pinned). */
export function goals(summaries: Summary[], headline: number): string[] {
  const lines: string[] = [];
  const check = (label: string, value: number | undefined, op: '<=' | '>=', bound: number) => {
    if (value === undefined || !Number.isFinite(value)) return lines.push(`  ${label}: not measured`);
    const met = op === '<=' ? value <= bound : value >= bound;
    lines.push(`  ${label}: ${value.toFixed(2)} (goal ${op === '<=' ? '≤' : '≥'} ${bound}) ${met ? 'MET' : 'NOT MET'}`);
  };
  for (const s of summaries.filter((x) => x.endpoint === 'fast' && x.concurrency === headline && x.cpus === null)) {
    const cpuBound = s.workload === 'selfies' ? 0.9 : 0.6;
    lines.push(
      `goals, ${s.workload} (fast endpoint, CONCURRENCY ${headline}, same run, median of ${s.repeats} run${s.repeats === 1 ? '' : 's'} per process${s.repeats < 3 ? ': noisy on a shared machine, ±30%' : ''}):`,
    );
    check('CPU/job vs same-work baseline', s.vsSameWork?.cpuPerJob, '<=', cpuBound);
    check('jobs/s vs same-work baseline', s.vsSameWork?.throughput, '>=', 1.2);
    check('CPU/job vs plain loop', s.vsPlain?.cpuPerJob, '<=', 1.5);
    check('SQS requests per job (worker)', s.sides.worker?.requests?.sqsCalls, '<=', 1.5);
    const w = s.sides.worker;
    if (w) {
      lines.push(
        `  worker main thread: ${fmt(w.mainThreadCpuMsPerJob, 2)} ms CPU/job measured (${fmt(w.mainThreadEluMsPerJob, 2)} ms as ELU × wall ÷ jobs, ELU ${fmt(w.eventLoopUtilisation, 2)}); ` +
          `one process could keep ≈${fmt(w.coresByMainThread, 1)} cores busy before its main thread is full (CPU ÷ main-thread CPU; ${fmt(w.coresByElu, 1)} by CPU util ÷ ELU)`,
      );
    }
  }
  return lines;
}

/** Jobs/s of each process pinned to more CPUs against fewer, where the run had several CPU sets. */
export function scaling(summaries: Summary[]): string[] {
  const lines: string[] = [];
  const pinned = summaries.filter((s) => s.cpus !== null);
  const levels = [...new Set(pinned.map((s) => `${s.endpoint}|${s.workload}|${s.concurrency}`))];
  for (const level of levels) {
    const rows = pinned.filter((s) => `${s.endpoint}|${s.workload}|${s.concurrency}` === level).sort((a, b) => (a.cpus ?? 0) - (b.cpus ?? 0));
    const low = rows[0];
    if (!low || rows.length < 2) continue;
    for (const high of rows.slice(1)) {
      const parts = IMPLS
        .filter((impl) => low.sides[impl] && high.sides[impl])
        .map((impl) => `${LETTER[impl]} ×${fmt((high.sides[impl]?.jobsPerSecond ?? 0) / (low.sides[impl]?.jobsPerSecond ?? 0), 2)}`);
      lines.push(`scaling ${low.cpus}→${high.cpus} CPUs (taskset), ${low.endpoint} ${low.workload} c=${low.concurrency}: jobs/s ${parts.join(', ')}`);
    }
  }
  return lines;
}

/** The smallest concurrency whose worker throughput is within 10% of the best seen (fast endpoint, photos, not pinned). */
export function recommendedConcurrency(summaries: Summary[]): number | undefined {
  const fast = summaries.filter((s) => s.endpoint === 'fast' && s.workload === 'photos' && s.cpus === null && s.sides.worker).sort((a, b) => a.concurrency - b.concurrency);
  if (fast.length < 2) return undefined;
  const best = Math.max(...fast.map((s) => s.sides.worker?.jobsPerSecond ?? 0));
  return fast.find((s) => (s.sides.worker?.jobsPerSecond ?? 0) >= 0.9 * best)?.concurrency;
}

/**
 * What the face check costs, where F ran beside W: per job and (one image per job) per image, in
 * throughput, in the detector threads, in memory. Null when F did not run.
 */
export function faceTable(summaries: Summary[]): string | null {
  const both = summaries.filter((s) => s.sides.face && s.sides.worker);
  if (both.length === 0) return null;
  const head = [
    ...LEVEL_HEAD,
    'F outcomes',
    'F detector threads',
    'jobs/s W',
    'jobs/s F',
    'F/W tput',
    'CPU ms/job W',
    'CPU ms/job F',
    'F/W CPU',
    'face CPU ms/image (F−W)',
    'detector threads CPU ms/job',
    'in a thread ms p50/p95',
    'main ms/job W/F',
    'RSS at ready W/F',
    'peak RSS W/F',
    'F−W at ready/peak',
  ];
  const rows = both.map((s) => {
    const w = s.sides.worker as Side;
    const f = s.sides.face as Side;
    return [
      ...levelCells(s),
      outcomeCell(f),
      String(f.workerThreads),
      fmt(w.jobsPerSecond),
      fmt(f.jobsPerSecond),
      fmt(s.faceVsWorker?.throughput, 2),
      fmt(w.cpuMsPerJob, 2),
      fmt(f.cpuMsPerJob, 2),
      fmt(s.faceVsWorker?.cpuPerJob, 2),
      fmt(f.cpuMsPerJob - w.cpuMsPerJob, 1),
      fmt(f.workerThreadCpuMsPerJob, 1),
      f.faceCheckMs ? `${fmt(f.faceCheckMs.p50, 0)}/${fmt(f.faceCheckMs.p95, 0)}` : '-',
      `${fmt(w.mainThreadCpuMsPerJob, 2)}/${fmt(f.mainThreadCpuMsPerJob, 2)}`,
      `${fmt(w.rssAtReadyMiB, 0)}/${fmt(f.rssAtReadyMiB, 0)} MiB`,
      `${fmt(w.peakRssMiB, 0)}/${fmt(f.peakRssMiB, 0)} MiB`,
      `+${fmt(f.rssAtReadyMiB - w.rssAtReadyMiB, 0)}/+${fmt(f.peakRssMiB - w.peakRssMiB, 0)} MiB`,
    ];
  });
  return markdown(head, rows);
}

/** The intervals the event loop must keep, ms: the visibility heartbeat and systemd's watchdog ping. */
export interface LoopDeadlines {
  heartbeatMs: number;
  visibilityMs: number;
  watchdogPingMs: number;
  watchdogMs: number;
}

/**
 * F's event-loop delay against the timers that must fire on time: a timer due now runs at most
 * `max` late, so a heartbeat lands by interval + max (the message stays hidden until the visibility
 * timeout) and a watchdog ping by WatchdogSec/2 + max (systemd kills at WatchdogSec).
 */
export function loopDelayLines(summaries: Summary[], deadlines: LoopDeadlines): string[] {
  const s = (ms: number) => `${fmt(ms / 1000, ms < 10_000 ? 3 : 1)} s`;
  return summaries.flatMap((x) => {
    const f = x.sides.face;
    if (!f) return [];
    const w = x.sides.worker;
    const worst = f.delayMs.max;
    const held = worst + deadlines.heartbeatMs < deadlines.visibilityMs && worst + deadlines.watchdogPingMs < deadlines.watchdogMs;
    return [
      `event loop with the face check, ${x.endpoint} ${x.workload} cpus=${x.cpus ?? 'all'} c=${x.concurrency}: delay p50/p99/max F ${fmt(f.delayMs.p50, 1)}/${fmt(f.delayMs.p99, 1)}/${fmt(worst, 0)} ms` +
        (w ? ` (W ${fmt(w.delayMs.p50, 1)}/${fmt(w.delayMs.p99, 1)}/${fmt(w.delayMs.max, 0)} ms)` : '') +
        `; a heartbeat due every ${s(deadlines.heartbeatMs)} lands by ${s(deadlines.heartbeatMs + worst)} (visibility ${s(deadlines.visibilityMs)}), a watchdog ping due every ${s(deadlines.watchdogPingMs)} by ${s(deadlines.watchdogPingMs + worst)} (killed at ${s(deadlines.watchdogMs)}): ${held ? 'held' : 'NOT HELD'}`,
    ];
  });
}
