// `npm run bench`: the built worker (`node dist/cli.js run`) against two hand-written baselines,
// each its own process, in the same run:
//   - the same-work baseline (test/bench/same-work-baseline.ts): the SDK loop plus the image work a
//     careful engineer writes with sharp for the same guarantees — the one to beat;
//   - the plain loop (test/bench/baseline.ts): the SDK loop storing bytes as received — the floor,
//     so the worker's ratio to it is what the framework itself costs.
// With `--processes=…,face`, F — the worker with FACE_CHECK=one — runs beside them, and every table
// gives its ratio to the worker (what the face check costs); with `--processes=…,traced`, T — the
// worker tracing every job to an OTLP/HTTP sink in this process — gives what tracing costs.
// Workloads (photo-like JPEGs of 30-700 KB, small inline selfies of at most 100 KB — neither shows a
// face — and, when asked, phone-like portraits with one real face each) on two endpoints:
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
import { startOtlpReceiver } from '../support/otlp-receiver.ts';
import { SKIMAGE_APT, SKIMAGE_DATA } from '../face/photos.ts';
import { imageFloor, imageFloorLine } from './image-floor.ts';
import { photoPool, portraitPool, selfiePool } from './photos.ts';
import {
  faceTable,
  fmt,
  goals,
  headlineTable,
  LETTER,
  loopDelayLines,
  PRICE_NOTE,
  processTable,
  recommendedConcurrency,
  requestsTable,
  scaling,
  summarise,
  type LoopDeadlines,
} from './report.ts';
import { describeOutcomes, expectedOutcome, latencyRun, throughputRun, type Impl, type LatencyResult, type RunOptions, type RunResult, type Target, type Workload } from './run.ts';
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

/** The portraits need scikit-image's sample photos (Debian's python3-skimage); without them they are skipped, loudly. */
const PORTRAIT_SOURCES = ['astronaut.png', 'camera.png'].map((file) => join(SKIMAGE_DATA, file));

async function makeWorkload(name: WorkloadName): Promise<Workload | string> {
  if (name === 'photos') {
    say('making the photo pool (photo-like JPEGs, 30-700 KB, no faces)…');
    return { name, images: await photoPool(24, 30_000, 700_000), stagedShare: settings.stagedShare, faces: 'none' };
  }
  if (name === 'selfies') {
    say('making the selfie pool (480×640 JPEGs, at most 100 KB, all inline, no faces)…');
    return { name, images: await selfiePool(24), stagedShare: 0, faces: 'none' };
  }
  const missing = PORTRAIT_SOURCES.filter((path) => !existsSync(path));
  if (missing.length > 0) return `SKIPPED the portraits workload: ${missing.join(', ')} missing: \`${SKIMAGE_APT}\` installs them (scikit-image's public-domain sample photos), then run again`;
  say('making the portrait pool (480×640…1200×1600 JPEGs with one real face each, every sixth sideways with EXIF orientation 6, all inline)…');
  const portraits = await portraitPool(24);
  const sideways = portraits.filter((p) => p.sideways).length;
  const sitters = [...new Set(portraits.map((p) => p.sitter))].map((file) => `${portraits.filter((p) => p.sitter === file).length} ${file}`);
  return {
    name,
    images: portraits.map((p) => p.jpeg),
    stagedShare: 0,
    faces: 'one',
    note: `${portraits[0]?.width}×${portraits[0]?.height} to ${portraits.at(-1)?.width}×${portraits.at(-1)?.height} upright, ${sideways} stored sideways with EXIF orientation 6, one face each (${sitters.join(', ')})`,
  };
}

const describe = (w: Workload) => {
  const sizes = w.images.map((b) => b.length);
  return (
    `${w.name}: ${sizes.length} JPEGs ${Math.min(...sizes)}-${Math.max(...sizes)} bytes (mean ${Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length)}), ${Math.round(w.stagedShare * 100)}% staged in S3` +
    (w.note ? `; ${w.note}` : w.faces === 'none' ? '; no faces (with FACE_CHECK=one every job is NO_FACE, dead-lettered)' : '')
  );
};

function progress(r: RunResult): string {
  const calls = r.requests ? `, SQS ${fmt(r.requests.sqsCalls, 2)} calls (${fmt(r.requests.sqsBilled, 2)} billed) + S3 ${fmt(r.requests.s3Calls, 2)} per job` : '';
  return (
    `${r.endpoint} ${r.workload} c=${r.concurrency} on CPUs ${r.cpusAllowed} ${LETTER[r.impl]} ${r.jobs} jobs in ${fmt(r.seconds)} s: ${fmt(r.jobsPerSecond)} jobs/s, ` +
    `${fmt(r.cpuMsPerJob, 2)} ms CPU/job (util ${fmt(r.cpuUtilisation, 2)}; main thread ${fmt(r.mainThreadCpuMsPerJob, 2)} ms/job, ELU ${fmt(r.eventLoopUtilisation, 2)}, ` +
    `loop delay p99 ${fmt(r.eventLoopDelayMs.p99, 1)} ms), peak RSS ${fmt(r.peakRssMiB, 0)} MiB` +
    (r.workerThreads > 0 ? `, ${r.workerThreads} worker threads at ${fmt(r.workerThreadCpuMsPerJob, 1)} ms CPU/job` : '') +
    (r.faceCheckMs ? `, faceCheckMs p50/p95 ${fmt(r.faceCheckMs.p50, 0)}/${fmt(r.faceCheckMs.p95, 0)}` : '') +
    `, outcomes ${describeOutcomes(r.outcomes)}${r.wrong.length > 0 ? ' (WRONG)' : ''}` +
    (r.serviceMs ? `, service p50/p95 ${fmt(r.serviceMs.p50, 0)}/${fmt(r.serviceMs.p95, 0)} ms` : '') +
    calls +
    (r.warnings.length > 0 ? `\n        warnings: ${r.warnings.join('\n                  ')}` : '')
  );
}

/**
 * The timers the event loop must keep: the heartbeat at its default (a third of the default 60 s
 * visibility timeout, src/config.ts) and the systemd watchdog, pinged at half of WatchdogSec (read
 * from the unit).
 */
function loopDeadlines(): LoopDeadlines {
  const unit = readFileSync(join(root, 'systemd', 'enrollment-worker.service'), 'utf8');
  const watchdogSeconds = Number(/^WatchdogSec=(\d+)\s*$/m.exec(unit)?.[1] ?? Number.NaN);
  return { heartbeatMs: 20_000, visibilityMs: 60_000, watchdogPingMs: (watchdogSeconds * 1000) / 2, watchdogMs: watchdogSeconds * 1000 };
}

async function main(): Promise<void> {
  const started = new Date();
  if (!existsSync(join(root, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` (npm run bench does)');
  say(`settings ${JSON.stringify(settings)}`);
  const workloads = new Map<WorkloadName, Workload>();
  const skipped: string[] = [];
  for (const name of settings.workloads) {
    const made = await makeWorkload(name);
    if (typeof made === 'string') {
      skipped.push(made);
      say(`*** ${made} ***`);
    } else workloads.set(name, made);
  }
  for (const w of workloads.values()) say(describe(w));
  for (const w of workloads.values()) {
    for (const impl of settings.processes) say(`${w.name}: every ${LETTER[impl]} job must end as ${expectedOutcome(impl, w, settings.workerEnv)}`);
  }

  // T exports to a sink here that answers and keeps nothing: its cost is the worker's side only.
  const sink = settings.processes.includes('traced') ? await startOtlpReceiver({ keep: false }) : undefined;
  const runs: RunResult[] = [];
  const latency: LatencyResult[] = [];
  const record = (r: RunResult) => {
    runs.push(r);
    say(progress(r));
  };
  // Rotate which process runs first, so drift on a shared machine does not favour one.
  const level = async (target: Target, workload: Workload, c: number, jobs: number, repeat: number, cpus: number | undefined) => {
    const order: Impl[] = settings.processes.map((_, i, all) => all[(i + repeat) % all.length] as Impl);
    const options: RunOptions = { cpus, workerEnv: settings.workerEnv, ...(sink ? { otlpSink: sink.endpoint } : {}) };
    for (const impl of order) record(await throughputRun(target, impl, c, jobs, workload, options));
  };
  const levelsOf = (name: WorkloadName) => ({ photos: settings.concurrency, selfies: settings.selfieConcurrency, portraits: settings.portraitConcurrency })[name];

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
        // Not F: on photos its every job is NO_FACE, a latency no producer waits for.
        const timed = settings.processes.filter((impl) => impl !== 'face');
        if (timed.length < settings.processes.length) say('latency run: F left out (on photos every F job is NO_FACE)');
        const capacities = timed.flatMap((impl) => (at?.sides[impl] ? [at.sides[impl].jobsPerSecond] : []));
        const capacity = capacities.length > 0 ? Math.min(...capacities) : 50;
        const rate = Math.max(1, Math.round(capacity * 0.5));
        for (const impl of timed) {
          const l = await latencyRun(target, impl, settings.latencyConcurrency, rate, settings.latencySeconds, photos, { workerEnv: settings.workerEnv, ...(sink ? { otlpSink: sink.endpoint } : {}) });
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

  await sink?.close();
  // The per-image floor, in this process, once the runs are over (so it does not load them).
  const floors = [...workloads.values()].filter((w) => w.faces === 'none').map((w) => ({ name: w.name, images: w.images }));
  const floorLines: string[] = [];
  for (const w of floors) floorLines.push(imageFloorLine(w.name, await imageFloor(w.images, settings.quick ? 5 : 9)));

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
    ...skipped.map((line) => `*** ${line} ***`),
    'W = worker (node dist/cli.js run), S = same-work baseline (SDK loop + sharp decode/rotate/strip/re-encode), P = plain SDK loop, F = the worker with FACE_CHECK=one, T = the worker tracing every job (OTLP/HTTP protobuf to a sink, always_on); medians over repeats',
    'W/S = worker ÷ same-work baseline (the goal), W/P = worker ÷ plain loop (the framework’s cost), F/W = face-checking worker ÷ worker (the face check’s cost), T/W = tracing worker ÷ worker (tracing’s cost); tput = jobs/s ratio, CPU = CPU-per-job ratio',
    '',
    headlineTable(summaries),
    '',
    'Per process — CPU util = CPU s per wall s (1.0 = one core); main ms/job = main thread(s) CPU from /proc; ELU = event-loop utilisation of the main thread over the run;',
    'cores≈ = cores one process keeps busy when its event loop is full (estimates); loop delay = monitorEventLoopDelay over the run, less its 10 ms resolution; svc = receive→delete',
    '',
    processTable(summaries),
    '',
    ...floorLines,
    '',
  ];
  const face = faceTable(summaries);
  if (face) {
    out.push(
      'The face check (F beside W; one image per job, so per job = per image) — face CPU = F’s CPU/job − W’s (on a workload without faces F stores nothing, so this leaves out',
      'the re-encode and PUT it skips: read the detector threads’ own CPU there); detector threads = F’s worker_threads from /proc; in a thread = the worker’s faceCheckMs (wall, wait excluded)',
      '',
      face,
      '',
      ...loopDelayLines(summaries, loopDeadlines()),
      '',
    );
  }
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
    ...summaries
      .filter((s) => s.sides.traced && s.sides.worker)
      .map((s) => {
        const [t, w] = [s.sides.traced?.cpuMsPerJob ?? Number.NaN, s.sides.worker?.cpuMsPerJob ?? Number.NaN];
        return `tracing (${s.endpoint} ${s.workload} cpus=${s.cpus ?? 'all'} c=${s.concurrency}): T ${fmt(t, 2)} vs W ${fmt(w, 2)} ms CPU/job — ${fmt(t - w, 2)} ms (${fmt((t / w - 1) * 100, 1)} %) more per job with every job traced`;
      }),
    ...scaling(summaries),
    recommended !== undefined ? `recommended CONCURRENCY (smallest within 10% of the best worker throughput, fast endpoint, photos): ${recommended}` : '',
    ...goals(summaries, settings.headlineConcurrency),
  );
  // A workload that did not give what it must (a face not found, a job not done) measured something else: say so, and fail.
  const wrong = runs.filter((r) => r.wrong.length > 0);
  for (const r of wrong) {
    out.push(`*** WRONG OUTCOMES: ${r.endpoint} ${r.workload} c=${r.concurrency} ${LETTER[r.impl]} (${describeOutcomes(r.outcomes)}): ${r.wrong.join('; ')} — its figures are not what they say ***`);
  }
  if (wrong.length > 0) process.exitCode = 1;
  if (skipped.length > 0) out.push(...skipped.map((line) => `*** ${line} ***`));
  process.stdout.write(`${out.join('\n')}\n`);
  const dir = join(root, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const images = Object.fromEntries([...workloads.values()].map((w) => [w.name, w.images.map((b) => b.length)]));
  writeFileSync(file, JSON.stringify({ started: started.toISOString(), machine: machine(), git, settings, images, summaries, latency, recommendedConcurrency: recommended, runs }, null, 2));
  process.stdout.write(`results: ${file}\n`);
}

await main();
