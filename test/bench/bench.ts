// `npm run bench`: the built worker (`node dist/cli.js run`) against the hand-written baseline
// (test/bench/baseline.ts), each as its own process, in the same run, on two endpoints:
//   - fast: the in-process loopback endpoint (test/support/fast-aws.ts) with a modelled delay per
//     request (15 ms), swept over CONCURRENCY, so the worker's own ceiling shows;
//   - moto: the real protocol, ~20 ms of moto's CPU per message received, so only CPU per job of
//     the process under test says anything (and that nothing stalls).
// Prints a table and writes bench-results/bench-<timestamp>.json. Ratios and medians, never a
// single absolute time: these machines are shared and noisy.
//
// Flags (or env): --n (BENCH_N, 2000), --concurrency (BENCH_CONCURRENCY, 1,4,16,64,256),
// --repeats (BENCH_REPEATS, 3, for levels of at most 500 jobs), --repeats-large (BENCH_REPEATS_LARGE,
// 1, above that), --endpoints (BENCH_ENDPOINTS, fast,moto), --delay-ms
// (BENCH_DELAY_MS, 15), --moto-n (BENCH_MOTO_N, 200), --moto-concurrency (BENCH_MOTO_CONCURRENCY,
// 16), --moto-repeats (BENCH_MOTO_REPEATS, 1), --latency-seconds (BENCH_LATENCY_SECONDS, 15; 0 = no
// latency run), --latency-concurrency (BENCH_LATENCY_CONCURRENCY, 16), --staged-share (0.2).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startFastAws } from '../support/fast-aws.ts';
import { startMoto } from '../support/moto.ts';
import { photoPool } from './photos.ts';
import { median } from './proc.ts';
import { latencyRun, throughputRun, type Impl, type LatencyResult, type RunResult, type Target, type Workload } from './run.ts';

const root = resolve(import.meta.dirname, '..', '..');

const { values: flags } = parseArgs({
  options: {
    n: { type: 'string' },
    concurrency: { type: 'string' },
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

function setting(flag: keyof typeof flags, env: string, fallback: string): string {
  const value = flags[flag] ?? process.env[env];
  return value === undefined || value === '' ? fallback : String(value);
}
const numberSetting = (flag: keyof typeof flags, env: string, fallback: number) => Number(setting(flag, env, String(fallback)));

const settings = {
  n: numberSetting('n', 'BENCH_N', 2000),
  concurrency: setting('concurrency', 'BENCH_CONCURRENCY', '1,4,16,64,256').split(',').map(Number),
  repeats: numberSetting('repeats', 'BENCH_REPEATS', 3),
  // Repeats where a run has more than `cheapJobs` jobs (a few tens of seconds each with the worker).
  repeatsLarge: numberSetting('repeats-large', 'BENCH_REPEATS_LARGE', 1),
  cheapJobs: 500,
  endpoints: setting('endpoints', 'BENCH_ENDPOINTS', 'fast,moto').split(','),
  delayMs: numberSetting('delay-ms', 'BENCH_DELAY_MS', 15),
  motoN: numberSetting('moto-n', 'BENCH_MOTO_N', 200),
  motoConcurrency: numberSetting('moto-concurrency', 'BENCH_MOTO_CONCURRENCY', 16),
  motoRepeats: numberSetting('moto-repeats', 'BENCH_MOTO_REPEATS', 1),
  latencySeconds: numberSetting('latency-seconds', 'BENCH_LATENCY_SECONDS', 15),
  latencyConcurrency: numberSetting('latency-concurrency', 'BENCH_LATENCY_CONCURRENCY', 16),
  stagedShare: numberSetting('staged-share', 'BENCH_STAGED_SHARE', 0.2),
  // Low concurrency is slow by nature (one job is ~4 round trips): fewer jobs there, so that
  // CONCURRENCY=1 does not take minutes. Ratios are per job and unaffected.
  minJobs: 150,
  jobsPerSlot: 100,
};
for (const c of settings.concurrency) if (!Number.isInteger(c) || c < 1 || c > 1024) throw new Error(`bad concurrency ${c}`);

const jobsAt = (c: number) => Math.min(settings.n, Math.max(settings.minJobs, settings.jobsPerSlot * c));
const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);

function gitState(): { commit: string; changed: string[] } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const changed = execFileSync('git', ['status', '--porcelain'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
    return { commit, changed };
  } catch {
    return { commit: 'unknown', changed: [] };
  }
}

function machine() {
  let os = 'unknown';
  try {
    os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch {
    // not Linux
  }
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), os, node: process.version };
}

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

interface Summary {
  endpoint: string;
  concurrency: number;
  jobs: number;
  repeats: number;
  worker: { jobsPerSecond: number; cpuMsPerJob: number; cpuUtilisation: number; peakRssMiB: number; serviceP50: number; serviceP95: number };
  baseline: { jobsPerSecond: number; cpuMsPerJob: number; cpuUtilisation: number; peakRssMiB: number; serviceP50: number; serviceP95: number };
  throughputRatio: number;
  cpuPerJobRatio: number;
  endpointUtilisation: number;
}

function summarise(runs: RunResult[]): Summary[] {
  const keys = [...new Set(runs.map((r) => `${r.endpoint}:${r.concurrency}`))];
  return keys.map((key) => {
    const group = runs.filter((r) => `${r.endpoint}:${r.concurrency}` === key);
    const side = (impl: Impl) => {
      const mine = group.filter((r) => r.impl === impl);
      return {
        jobsPerSecond: median(mine.map((r) => r.jobsPerSecond)),
        cpuMsPerJob: median(mine.map((r) => r.cpuMsPerJob)),
        cpuUtilisation: median(mine.map((r) => r.cpuUtilisation)),
        peakRssMiB: Math.max(...mine.map((r) => r.peakRssMiB)),
        serviceP50: median(mine.map((r) => r.serviceMs?.p50 ?? Number.NaN)),
        serviceP95: median(mine.map((r) => r.serviceMs?.p95 ?? Number.NaN)),
      };
    };
    const worker = side('worker');
    const baseline = side('baseline');
    const first = group[0];
    const workerRuns = group.filter((r) => r.impl === 'worker');
    return {
      endpoint: first?.endpoint ?? '',
      concurrency: first?.concurrency ?? 0,
      jobs: first?.jobs ?? 0,
      repeats: workerRuns.length,
      worker,
      baseline,
      throughputRatio: worker.jobsPerSecond / baseline.jobsPerSecond,
      cpuPerJobRatio: worker.cpuMsPerJob / baseline.cpuMsPerJob,
      endpointUtilisation: median(workerRuns.map((r) => ((r.endpointCpuMsPerJob ?? Number.NaN) * r.jobsPerSecond) / 1000)),
    };
  });
}

function table(summaries: Summary[]): string {
  const head = ['endpoint', 'conc', 'jobs', 'reps', 'jobs/s W', 'jobs/s B', 'W/B tput', 'CPU ms/job W', 'CPU ms/job B', 'W/B CPU', 'CPU util W', 'CPU util B', 'peak RSS W', 'peak RSS B', 'svc p50/p95 W ms', 'svc p50/p95 B ms', 'endpoint util'];
  const rows = summaries.map((s) => [
    s.endpoint,
    String(s.concurrency),
    String(s.jobs),
    String(s.repeats),
    fmt(s.worker.jobsPerSecond),
    fmt(s.baseline.jobsPerSecond),
    fmt(s.throughputRatio, 2),
    fmt(s.worker.cpuMsPerJob, 2),
    fmt(s.baseline.cpuMsPerJob, 2),
    fmt(s.cpuPerJobRatio, 2),
    fmt(s.worker.cpuUtilisation, 2),
    fmt(s.baseline.cpuUtilisation, 2),
    `${fmt(s.worker.peakRssMiB, 0)} MiB`,
    `${fmt(s.baseline.peakRssMiB, 0)} MiB`,
    `${fmt(s.worker.serviceP50, 0)}/${fmt(s.worker.serviceP95, 0)}`,
    `${fmt(s.baseline.serviceP50, 0)}/${fmt(s.baseline.serviceP95, 0)}`,
    fmt(s.endpointUtilisation, 2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The smallest concurrency whose worker throughput is within 10% of the best seen on the fast endpoint. */
function recommendedConcurrency(summaries: Summary[]): number | undefined {
  const fast = summaries.filter((s) => s.endpoint === 'fast').sort((a, b) => a.concurrency - b.concurrency);
  const best = Math.max(...fast.map((s) => s.worker.jobsPerSecond));
  return fast.find((s) => s.worker.jobsPerSecond >= 0.9 * best)?.concurrency;
}

async function main(): Promise<void> {
  const started = new Date();
  if (!existsSync(join(root, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` (npm run bench does)');
  say(`settings ${JSON.stringify(settings)}`);
  say('making the image pool (photo-like JPEGs, 30-700 KB)…');
  const images = await photoPool(24, 30_000, 700_000);
  const sizes = images.map((b) => b.length);
  say(`pool: ${images.length} JPEGs, ${Math.min(...sizes)}-${Math.max(...sizes)} bytes, mean ${Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length)}`);
  const workload: Workload = { images, stagedShare: settings.stagedShare };

  const runs: RunResult[] = [];
  const latency: LatencyResult[] = [];
  const record = (r: RunResult) => {
    runs.push(r);
    say(
      `${r.endpoint} c=${r.concurrency} ${r.impl.padEnd(8)} ${r.jobs} jobs in ${fmt(r.seconds)} s: ${fmt(r.jobsPerSecond)} jobs/s, ` +
        `${fmt(r.cpuMsPerJob, 2)} ms CPU/job (util ${fmt(r.cpuUtilisation, 2)}, event loop ${fmt(r.eventLoopUtilisation, 2)}, delay p99 ${fmt(r.eventLoopDelayP99Ms, 0)} ms), endpoint loop ${fmt(r.endpointEventLoopUtilisation, 2)}, peak RSS ${fmt(r.peakRssMiB, 0)} MiB` +
        (r.serviceMs ? `, service p50/p95 ${fmt(r.serviceMs.p50, 0)}/${fmt(r.serviceMs.p95, 0)} ms` : '') +
        (r.warnings.length > 0 ? `\n        warnings: ${r.warnings.join('\n                  ')}` : ''),
    );
  };
  // Alternate which side runs first, so drift on a shared machine does not favour one.
  const pair = async (target: Target, c: number, jobs: number, repeat: number) => {
    const order: Impl[] = repeat % 2 === 0 ? ['worker', 'baseline'] : ['baseline', 'worker'];
    for (const impl of order) record(await throughputRun(target, impl, c, jobs, workload));
  };

  if (settings.endpoints.includes('fast')) {
    const fast = await startFastAws({ delayMs: settings.delayMs });
    const target: Target = { kind: 'fast', endpoint: fast.endpoint, imdsEndpoint: fast.imdsEndpoint, fast };
    say(`fast endpoint at ${fast.endpoint}, ${settings.delayMs} ms per request`);
    try {
      for (const c of settings.concurrency) {
        const repeats = jobsAt(c) <= settings.cheapJobs ? settings.repeats : settings.repeatsLarge;
        for (let r = 0; r < repeats; r += 1) await pair(target, c, jobsAt(c), r);
      }
      if (settings.latencySeconds > 0) {
        const at = summarise(runs).find((s) => s.endpoint === 'fast' && s.concurrency === settings.latencyConcurrency);
        const capacity = at ? Math.min(at.worker.jobsPerSecond, at.baseline.jobsPerSecond) : 50;
        const rate = Math.max(1, Math.round(capacity * 0.5));
        for (const impl of ['worker', 'baseline'] as const) {
          const l = await latencyRun(target, impl, settings.latencyConcurrency, rate, settings.latencySeconds, workload);
          latency.push(l);
          say(`latency c=${l.concurrency} ${impl} at ${l.ratePerSecond}/s: enqueue→done p50/p95/p99 ${fmt(l.enqueueToDoneMs.p50, 0)}/${fmt(l.enqueueToDoneMs.p95, 0)}/${fmt(l.enqueueToDoneMs.p99, 0)} ms (in queue p50/p95 ${fmt(l.inQueueMs.p50, 0)}/${fmt(l.inQueueMs.p95, 0)}, service p50/p95 ${fmt(l.serviceMs.p50, 0)}/${fmt(l.serviceMs.p95, 0)})${l.warnings.length ? ` warnings: ${l.warnings.join(' | ')}` : ''}`);
        }
      }
    } finally {
      await fast.stop();
    }
  }

  if (settings.endpoints.includes('moto')) {
    const moto = await startMoto();
    const target: Target = { kind: 'moto', endpoint: moto.endpoint, imdsEndpoint: moto.endpoint };
    say(`moto_server ${moto.version} at ${moto.endpoint}`);
    try {
      for (let r = 0; r < settings.motoRepeats; r += 1) await pair(target, settings.motoConcurrency, settings.motoN, r);
    } finally {
      await moto.stop();
    }
  }

  const summaries = summarise(runs);
  const recommended = recommendedConcurrency(summaries);
  const git = gitState();
  const out = [
    `enrollment-worker benchmark — ${started.toISOString()}`,
    `machine: ${JSON.stringify(machine())}`,
    `git: ${git.commit}${git.changed.length > 0 ? ` + ${git.changed.length} uncommitted changes` : ''}`,
    `workload: ${images.length} photo-like JPEGs ${Math.min(...sizes)}-${Math.max(...sizes)} bytes (mean ${Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length)}), one per job, ${Math.round(settings.stagedShare * 100)}% staged in S3; fast endpoint ${settings.delayMs} ms per request`,
    'W = worker (node dist/cli.js run), B = baseline (test/bench/baseline.ts); medians over repeats; CPU util = CPU s per wall s of that process (1.0 = one core); svc = receive→delete per job at the endpoint; endpoint util = CPU of the in-process fast endpoint + driver',
    '',
    table(summaries),
    '',
    ...latency.map(
      (l) => `latency (fast, c=${l.concurrency}, open loop at ${l.ratePerSecond} jobs/s ≈ half of capacity): ${l.impl} enqueue→done p50 ${fmt(l.enqueueToDoneMs.p50, 0)} ms, p95 ${fmt(l.enqueueToDoneMs.p95, 0)} ms, p99 ${fmt(l.enqueueToDoneMs.p99, 0)} ms (in queue p50/p95 ${fmt(l.inQueueMs.p50, 0)}/${fmt(l.inQueueMs.p95, 0)} ms, receive→delete p50/p95 ${fmt(l.serviceMs.p50, 0)}/${fmt(l.serviceMs.p95, 0)} ms), CPU ${fmt(l.cpuMsPerJob, 2)} ms/job`,
    ),
    recommended !== undefined ? `recommended CONCURRENCY (smallest within 10% of the best worker throughput on the fast endpoint): ${recommended}` : '',
    `goal: throughput ratio ≥ 0.90 and CPU/job ratio ≤ 1.30`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  const dir = join(root, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ started: started.toISOString(), machine: machine(), git, settings, images: sizes, summaries, latency, recommendedConcurrency: recommended, runs }, null, 2));
  process.stdout.write(`results: ${file}\n`);
}

await main();
