// `npm run bench`: the built worker (`node dist/cli.js run`) against two hand-written baselines,
// each its own process, in the same run:
//   - the same-work baseline (test/bench/same-work-baseline.ts): the SDK loop plus the image work a
//     careful engineer writes with sharp for the same guarantees — the one to beat;
//   - the plain loop (test/bench/baseline.ts): the SDK loop storing bytes as received — the floor,
//     so the worker's ratio to it is what the framework itself costs.
// Two workloads (photo-like JPEGs of 30-700 KB, small inline selfies of at most 100 KB) on two
// endpoints:
//   - fast: the in-process loopback endpoint (test/support/fast-aws.ts) with a modelled delay per
//     request (15 ms), swept over CONCURRENCY, so the worker's own ceiling shows; it also counts
//     SQS and S3 requests per job, priced at list prices;
//   - moto: the real protocol, ~20 ms of moto's CPU per message received, so only CPU per job of
//     the process under test says anything (and that nothing stalls).
// Prints tables and the issue's goals, and writes bench-results/bench-<timestamp>.json. Ratios
// and medians, never a single absolute time: these machines are shared and noisy.
// Flags and environment: test/bench/settings.ts and BENCHMARKS.md.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { startFastAws } from '../support/fast-aws.ts';
import { startMoto } from '../support/moto.ts';
import { photoPool, selfiePool } from './photos.ts';
import { fmt, goals, headlineTable, LETTER, PRICE_NOTE, processTable, recommendedConcurrency, requestsTable, scaling, summarise } from './report.ts';
import { latencyRun, throughputRun, type Impl, type LatencyResult, type RunOptions, type RunResult, type Target, type Workload } from './run.ts';
import { jobsAt, settings, type WorkloadName } from './settings.ts';

const root = resolve(import.meta.dirname, '..', '..');
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

async function makeWorkload(name: WorkloadName): Promise<Workload> {
  if (name === 'photos') {
    say('making the photo pool (photo-like JPEGs, 30-700 KB)…');
    return { name, images: await photoPool(24, 30_000, 700_000), stagedShare: settings.stagedShare };
  }
  say('making the selfie pool (480×640 JPEGs, at most 100 KB, all inline)…');
  return { name, images: await selfiePool(24), stagedShare: 0 };
}

const describe = (w: Workload) => {
  const sizes = w.images.map((b) => b.length);
  return `${w.name}: ${sizes.length} JPEGs ${Math.min(...sizes)}-${Math.max(...sizes)} bytes (mean ${Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length)}), ${Math.round(w.stagedShare * 100)}% staged in S3`;
};

function progress(r: RunResult): string {
  const calls = r.requests ? `, SQS ${fmt(r.requests.sqsCalls, 2)} calls (${fmt(r.requests.sqsBilled, 2)} billed) + S3 ${fmt(r.requests.s3Calls, 2)} per job` : '';
  return (
    `${r.endpoint} ${r.workload} c=${r.concurrency} on CPUs ${r.cpusAllowed} ${LETTER[r.impl]} ${r.jobs} jobs in ${fmt(r.seconds)} s: ${fmt(r.jobsPerSecond)} jobs/s, ` +
    `${fmt(r.cpuMsPerJob, 2)} ms CPU/job (util ${fmt(r.cpuUtilisation, 2)}; main thread ${fmt(r.mainThreadCpuMsPerJob, 2)} ms/job, ELU ${fmt(r.eventLoopUtilisation, 2)}, ` +
    `loop delay p99 ${fmt(r.eventLoopDelayMs.p99, 1)} ms), peak RSS ${fmt(r.peakRssMiB, 0)} MiB` +
    (r.serviceMs ? `, service p50/p95 ${fmt(r.serviceMs.p50, 0)}/${fmt(r.serviceMs.p95, 0)} ms` : '') +
    calls +
    (r.warnings.length > 0 ? `\n        warnings: ${r.warnings.join('\n                  ')}` : '')
  );
}

async function main(): Promise<void> {
  const started = new Date();
  if (!existsSync(join(root, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` (npm run bench does)');
  say(`settings ${JSON.stringify(settings)}`);
  const workloads = new Map<WorkloadName, Workload>();
  for (const name of settings.workloads) workloads.set(name, await makeWorkload(name));
  for (const w of workloads.values()) say(describe(w));

  const runs: RunResult[] = [];
  const latency: LatencyResult[] = [];
  const record = (r: RunResult) => {
    runs.push(r);
    say(progress(r));
  };
  // Rotate which process runs first, so drift on a shared machine does not favour one.
  const level = async (target: Target, workload: Workload, c: number, jobs: number, repeat: number, cpus: number | undefined) => {
    const order: Impl[] = settings.processes.map((_, i, all) => all[(i + repeat) % all.length] as Impl);
    const options: RunOptions = { cpus, workerEnv: settings.workerEnv };
    for (const impl of order) record(await throughputRun(target, impl, c, jobs, workload, options));
  };
  const levelsOf = (name: WorkloadName) => (name === 'photos' ? settings.concurrency : settings.selfieConcurrency);

  if (settings.endpoints.includes('fast')) {
    const fast = await startFastAws({ delayMs: settings.delayMs });
    const target: Target = { kind: 'fast', endpoint: fast.endpoint, imdsEndpoint: fast.imdsEndpoint, fast };
    say(`fast endpoint at ${fast.endpoint}, ${settings.delayMs} ms per request`);
    try {
      for (const workload of workloads.values()) {
        for (const cpus of settings.cpuSets) {
          for (const c of levelsOf(workload.name as WorkloadName)) {
            const repeats = jobsAt(c) <= settings.cheapJobs ? settings.repeats : settings.repeatsLarge;
            for (let r = 0; r < repeats; r += 1) await level(target, workload, c, jobsAt(c), r, cpus);
          }
        }
      }
      const photos = workloads.get('photos');
      if (settings.latencySeconds > 0 && photos) {
        const at = summarise(runs).find((s) => s.endpoint === 'fast' && s.workload === 'photos' && s.cpus === null && s.concurrency === settings.latencyConcurrency);
        const capacities = Object.values(at?.sides ?? {}).map((s) => s.jobsPerSecond);
        const capacity = capacities.length > 0 ? Math.min(...capacities) : 50;
        const rate = Math.max(1, Math.round(capacity * 0.5));
        for (const impl of settings.processes) {
          const l = await latencyRun(target, impl, settings.latencyConcurrency, rate, settings.latencySeconds, photos, { workerEnv: settings.workerEnv });
          latency.push(l);
          say(`latency c=${l.concurrency} ${LETTER[impl]} at ${l.ratePerSecond}/s: enqueue→done p50/p95/p99 ${fmt(l.enqueueToDoneMs.p50, 0)}/${fmt(l.enqueueToDoneMs.p95, 0)}/${fmt(l.enqueueToDoneMs.p99, 0)} ms${l.warnings.length ? ` warnings: ${l.warnings.join(' | ')}` : ''}`);
        }
      }
    } finally {
      await fast.stop();
    }
  }

  const photos = workloads.get('photos') ?? [...workloads.values()][0];
  if (settings.endpoints.includes('moto') && photos) {
    const moto = await startMoto();
    const target: Target = { kind: 'moto', endpoint: moto.endpoint, imdsEndpoint: moto.endpoint };
    say(`moto_server ${moto.version} at ${moto.endpoint}`);
    try {
      for (let r = 0; r < settings.motoRepeats; r += 1) await level(target, photos, settings.motoConcurrency, settings.motoN, r, undefined);
    } finally {
      await moto.stop();
    }
  }

  const summaries = summarise(runs);
  const recommended = recommendedConcurrency(summaries);
  const git = gitState();
  const workerEnv = Object.entries(settings.workerEnv).map(([k, v]) => `${k}=${v}`);
  const out = [
    `enrollment-worker benchmark — ${started.toISOString()}${settings.quick ? ' (quick)' : ''}`,
    `machine: ${JSON.stringify(machine())}`,
    `git: ${git.commit}${git.changed.length > 0 ? ` + ${git.changed.length} uncommitted changes` : ''}`,
    ...[...workloads.values()].map((w) => `workload ${describe(w)}; one image per job, every job a new user`),
    `fast endpoint: ${settings.delayMs} ms per request${workerEnv.length > 0 ? `; worker environment: ${workerEnv.join(' ')}` : ''}`,
    'W = worker (node dist/cli.js run), S = same-work baseline (SDK loop + sharp decode/rotate/strip/re-encode), P = plain SDK loop; medians over repeats',
    'W/S = worker ÷ same-work baseline (the goal), W/P = worker ÷ plain loop (the framework’s cost); tput = jobs/s ratio, CPU = CPU-per-job ratio',
    '',
    headlineTable(summaries),
    '',
    'Per process — CPU util = CPU s per wall s (1.0 = one core); main ms/job = main thread(s) CPU from /proc; ELU = event-loop utilisation of the main thread over the run;',
    'cores≈ = cores one process keeps busy when its event loop is full (estimates); loop delay = monitorEventLoopDelay over the run, less its 10 ms resolution; svc = receive→delete',
    '',
    processTable(summaries),
    '',
  ];
  if (summaries.some((s) => s.endpoint === 'fast')) {
    out.push(`Requests per job at the fast endpoint (from the process's ready line to its last job; ${PRICE_NOTE})`, '', requestsTable(summaries), '');
    for (const s of summaries.filter((x) => x.endpoint === 'fast' && x.producer && x.cpus === null)) {
      out.push(`producer's enqueue (not in the figures above), ${s.workload} c=${s.concurrency}: ${fmt(s.producer?.sqsCalls, 2)} SQS calls, ${fmt(s.producer?.sqsBilled, 2)} billed, $${fmt(s.producer?.dollarsPerMillionJobs.total, 2)} per million jobs`);
    }
    out.push('');
  }
  out.push(
    ...latency.map(
      (l) =>
        `latency (fast, ${l.workload}, c=${l.concurrency}, open loop at ${l.ratePerSecond} jobs/s ≈ half of the lowest capacity): ${LETTER[l.impl]} enqueue→done p50 ${fmt(l.enqueueToDoneMs.p50, 0)} ms, p95 ${fmt(l.enqueueToDoneMs.p95, 0)} ms, p99 ${fmt(l.enqueueToDoneMs.p99, 0)} ms (in queue p50/p95 ${fmt(l.inQueueMs.p50, 0)}/${fmt(l.inQueueMs.p95, 0)} ms, receive→delete p50/p95 ${fmt(l.serviceMs.p50, 0)}/${fmt(l.serviceMs.p95, 0)} ms), CPU ${fmt(l.cpuMsPerJob, 2)} ms/job`,
    ),
    ...scaling(summaries),
    recommended !== undefined ? `recommended CONCURRENCY (smallest within 10% of the best worker throughput, fast endpoint, photos): ${recommended}` : '',
    ...goals(summaries, settings.headlineConcurrency),
  );
  process.stdout.write(`${out.join('\n')}\n`);
  const dir = join(root, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const images = Object.fromEntries([...workloads.values()].map((w) => [w.name, w.images.map((b) => b.length)]));
  writeFileSync(file, JSON.stringify({ started: started.toISOString(), machine: machine(), git, settings, images, summaries, latency, recommendedConcurrency: recommended, runs }, null, 2));
  process.stdout.write(`results: ${file}\n`);
}

await main();
