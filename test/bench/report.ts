// Runs → summaries (medians over repeats) → the tables printed on stdout. Every table carries the
// two ratios of the worker: against the same-work baseline (the goal) and against the plain loop
// (what the framework itself costs).
import { meanRequests, PRICES, type RequestsPerJob } from './costs.ts';
import { median } from './stats.ts';
import type { Impl, RunResult } from './run.ts';

export const LETTER: Record<Impl, string> = { worker: 'W', 'same-work': 'S', plain: 'P' };

export interface Side {
  jobsPerSecond: number;
  cpuMsPerJob: number;
  cpuUtilisation: number;
  peakRssMiB: number;
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
    serviceP50: m((r) => r.serviceMs?.p50 ?? Number.NaN),
    serviceP95: m((r) => r.serviceMs?.p95 ?? Number.NaN),
    eventLoopUtilisation,
    mainThreadCpuMsPerJob,
    mainThreadEluMsPerJob: m((r) => r.mainThreadEluMsPerJob),
    coresByElu: cpuUtilisation / eventLoopUtilisation,
    coresByMainThread: cpuMsPerJob / mainThreadCpuMsPerJob,
    delayMs: { p50: m((r) => r.eventLoopDelayMs.p50), p99: m((r) => r.eventLoopDelayMs.p99), max: Math.max(...runs.map((r) => r.eventLoopDelayMs.max)) },
    processes: Math.max(...runs.map((r) => r.processes)),
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
    for (const impl of ['worker', 'same-work', 'plain'] as const) {
      const s = side(group.filter((r) => r.impl === impl));
      if (s) sides[impl] = s;
    }
    const repeats = Math.max(...(['worker', 'same-work', 'plain'] as const).map((impl) => group.filter((r) => r.impl === impl).length));
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
      endpointUtilisation: median(group.map((r) => ((r.endpointCpuMsPerJob ?? Number.NaN) * r.jobsPerSecond) / 1000)),
      producer: meanRequests(group.flatMap((r) => (r.producerRequests ? [r.producerRequests] : []))),
    };
  });
}

export const fmt = (n: number | undefined, digits = 1) => (n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '-');

function markdown(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const levelCells = (s: Summary) => [s.endpoint, s.workload, s.cpus === null ? 'all' : String(s.cpus), String(s.concurrency)];
const LEVEL_HEAD = ['endpoint', 'workload', 'cpus', 'conc'];
const RATIO_HEAD = ['W/S tput', 'W/S CPU', 'W/P tput', 'W/P CPU'];
const ratioCells = (s: Summary) => [fmt(s.vsSameWork?.throughput, 2), fmt(s.vsSameWork?.cpuPerJob, 2), fmt(s.vsPlain?.throughput, 2), fmt(s.vsPlain?.cpuPerJob, 2)];
const present = (s: Summary): Impl[] => (['worker', 'same-work', 'plain'] as const).filter((impl) => s.sides[impl] !== undefined);

/** Throughput and CPU per job of each process, and the worker's two ratios. */
export function headlineTable(summaries: Summary[]): string {
  const head = [...LEVEL_HEAD, 'jobs', 'reps', 'jobs/s W', 'jobs/s S', 'jobs/s P', ...RATIO_HEAD, 'CPU ms/job W', 'CPU ms/job S', 'CPU ms/job P', 'endpoint util'];
  const rows = summaries.map((s) => [
    ...levelCells(s),
    String(s.jobs),
    String(s.repeats),
    fmt(s.sides.worker?.jobsPerSecond),
    fmt(s.sides['same-work']?.jobsPerSecond),
    fmt(s.sides.plain?.jobsPerSecond),
    ...ratioCells(s),
    fmt(s.sides.worker?.cpuMsPerJob, 2),
    fmt(s.sides['same-work']?.cpuMsPerJob, 2),
    fmt(s.sides.plain?.cpuMsPerJob, 2),
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
        ...(impl === 'worker' ? ratioCells(s) : RATIO_HEAD.map(() => '')),
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
          ...(impl === 'worker' ? ratioCells(s) : RATIO_HEAD.map(() => '')),
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
      const parts = (['worker', 'same-work', 'plain'] as const)
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
