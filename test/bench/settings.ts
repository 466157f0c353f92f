// The benchmark's settings: flags, else environment variables, else defaults; `--quick` changes
// the defaults (not explicit flags) to one level per workload on the fast endpoint (~2-3 min).
// BENCHMARKS.md lists them.
import { parseArgs } from 'node:util';
import { DEFAULT_IMPLS, IMPLS, type Impl } from './run.ts';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    n: { type: 'string' },
    workloads: { type: 'string' },
    concurrency: { type: 'string' },
    'selfie-concurrency': { type: 'string' },
    'portrait-concurrency': { type: 'string' },
    processes: { type: 'string' },
    cpus: { type: 'string' },
    'worker-env': { type: 'string', multiple: true },
    repeats: { type: 'string' },
    endpoints: { type: 'string' },
    'delay-ms': { type: 'string' },
    'repeats-large': { type: 'string' },
    'moto-n': { type: 'string' },
    'moto-concurrency': { type: 'string' },
    'moto-repeats': { type: 'string' },
    'latency-seconds': { type: 'string' },
    'latency-concurrency': { type: 'string' },
    'staged-share': { type: 'string' },
  },
});

type Flag = Exclude<keyof typeof flags, 'quick' | 'worker-env'>;
const quick = flags.quick === true || process.env.BENCH_QUICK === '1';

function setting(flag: Flag, env: string, fallback: string, quickFallback = fallback): string {
  const value = flags[flag] ?? process.env[env];
  return value === undefined || value === '' ? (quick ? quickFallback : fallback) : String(value);
}
const numberSetting = (flag: Flag, env: string, fallback: number, quickFallback = fallback) => Number(setting(flag, env, String(fallback), String(quickFallback)));
const listSetting = (flag: Flag, env: string, fallback: string, quickFallback = fallback) =>
  setting(flag, env, fallback, quickFallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export const WORKLOADS = ['photos', 'selfies', 'portraits'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];
/** What runs unless --workloads says otherwise: portraits (real faces, for F) are asked for by name. */
const DEFAULT_WORKLOADS: readonly WorkloadName[] = ['photos', 'selfies'];

/** `K=V` pairs for the worker's environment: repeated --worker-env flags, or BENCH_WORKER_ENV (space-separated). */
function workerEnv(): Record<string, string> {
  const pairs = flags['worker-env'] ?? (process.env.BENCH_WORKER_ENV ?? '').split(/\s+/).filter(Boolean);
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--worker-env takes NAME=value, not ${pair}`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

function levels(list: string[], what: string): number[] {
  const out = list.map(Number);
  for (const c of out) if (!Number.isInteger(c) || c < 1 || c > 1024) throw new Error(`bad ${what} ${c}`);
  return out;
}

const workloads = listSetting('workloads', 'BENCH_WORKLOADS', DEFAULT_WORKLOADS.join(','));
for (const w of workloads) if (!(WORKLOADS as readonly string[]).includes(w)) throw new Error(`unknown workload ${w} (${WORKLOADS.join(', ')})`);
const processes = listSetting('processes', 'BENCH_PROCESSES', DEFAULT_IMPLS.join(','));
for (const p of processes) if (!(IMPLS as readonly string[]).includes(p)) throw new Error(`unknown process ${p} (${IMPLS.join(', ')})`);
const cpuSets = listSetting('cpus', 'BENCH_CPUS', 'all').map((c) => (c === 'all' ? undefined : Number(c)));
for (const c of cpuSets) if (c !== undefined && (!Number.isInteger(c) || c < 1)) throw new Error(`--cpus takes counts of CPUs (1,2,…) or "all", not ${c}`);

export const settings = {
  quick,
  // Quick: three short runs per process rather than one long one, so the median rides out the
  // bursts of other work on a shared machine.
  n: numberSetting('n', 'BENCH_N', 2000, 200),
  workloads: workloads as WorkloadName[],
  /** The sweep of the photo workload. */
  concurrency: levels(listSetting('concurrency', 'BENCH_CONCURRENCY', '1,4,16,64,256', '16'), 'concurrency'),
  /** The small selfies run at the headline level only, unless asked. */
  selfieConcurrency: levels(listSetting('selfie-concurrency', 'BENCH_SELFIE_CONCURRENCY', '16'), 'selfie concurrency'),
  /** The portraits too. */
  portraitConcurrency: levels(listSetting('portrait-concurrency', 'BENCH_PORTRAIT_CONCURRENCY', '16'), 'portrait concurrency'),
  processes: processes as Impl[],
  /** CPU counts to pin the processes under test to with taskset; undefined = not pinned. */
  cpuSets,
  workerEnv: workerEnv(),
  repeats: numberSetting('repeats', 'BENCH_REPEATS', 3),
  // Repeats where a run has more than `cheapJobs` jobs (a few tens of seconds each with the worker).
  repeatsLarge: numberSetting('repeats-large', 'BENCH_REPEATS_LARGE', 1),
  cheapJobs: 500,
  endpoints: listSetting('endpoints', 'BENCH_ENDPOINTS', 'fast,moto', 'fast'),
  delayMs: numberSetting('delay-ms', 'BENCH_DELAY_MS', 15),
  motoN: numberSetting('moto-n', 'BENCH_MOTO_N', 200),
  motoConcurrency: numberSetting('moto-concurrency', 'BENCH_MOTO_CONCURRENCY', 16),
  motoRepeats: numberSetting('moto-repeats', 'BENCH_MOTO_REPEATS', 1),
  latencySeconds: numberSetting('latency-seconds', 'BENCH_LATENCY_SECONDS', 15, 0),
  latencyConcurrency: numberSetting('latency-concurrency', 'BENCH_LATENCY_CONCURRENCY', 16),
  stagedShare: numberSetting('staged-share', 'BENCH_STAGED_SHARE', 0.2),
  /** The level the goals are read at: fast endpoint, this CONCURRENCY, not pinned. */
  headlineConcurrency: 16,
  // Low concurrency is slow by nature (one job is ~4 round trips): fewer jobs there, so that
  // CONCURRENCY=1 does not take minutes. Ratios are per job and unaffected.
  minJobs: 150,
  jobsPerSlot: 100,
};

export const jobsAt = (c: number) => Math.min(settings.n, Math.max(settings.minJobs, settings.jobsPerSlot * c));
