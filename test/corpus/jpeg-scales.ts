// Which reduced-scale JPEG decodes refuse everything a full decode refuses? Runs the corrupted-JPEG
// corpus (test/support/jpeg-corpus.ts) through the gate (checkImage), a full decode and decodes at
// 1/2, 1/4 and 1/8 scale, all with failOn 'warning', and counts per coding and per corruption:
//   escaped  — refused at full scale, accepted at the reduced one (what must be 0 at the scale used)
//   extra    — accepted at full scale, refused at the reduced one
// and how many corruptions a full decode reports at all. With --parallel 1 it also counts files a
// full decode accepted although libjpeg warned (libvips logs, but does not act on, the warnings of
// the last 8-row strip it decodes; sharp hands logged warnings to whichever call finishes next, so
// only one decode at a time tells whose they are).
//
//   npx node test/corpus/jpeg-scales.ts [--size 1600x1200]... [--per-base 100] [--seed 1]
//       [--coding progressive]... [--keep DIR] [--parallel 2]
//
// --keep writes the files that escape at some scale to DIR (named by coding, corruption and the
// scales they escape at), e.g. to pick a fixture for the unit test.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { validateByDecoding } from '../../src/enroll/decode.ts';
import { checkImage } from '../../src/enroll/images.ts';
import type { ImageLimits } from '../../src/enroll/normalise.ts';
import { baseImages, corpus, type Case } from '../support/jpeg-corpus.ts';

const { values } = parseArgs({
  options: {
    size: { type: 'string', multiple: true },
    'per-base': { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    keep: { type: 'string' },
    coding: { type: 'string', multiple: true },
    parallel: { type: 'string', default: '2' },
  },
});
const sizes = (values.size ?? ['1600x1200']).map((s) => {
  const [w, h] = s.split('x').map(Number);
  if (!w || !h) throw new Error(`--size ${s}: expected WxH`);
  return [w, h] as const;
});
const perBase = Number(values['per-base']);
const seed = Number(values.seed);
const LIMITS: ImageLimits = { maxImagePixels: 100_000_000, minImageDimension: 1, maxReferenceDimension: undefined };

sharp.concurrency(1);
sharp.cache(false);

const accepted = (p: Promise<unknown>) =>
  p.then(
    () => true,
    () => false,
  );

const SCALES = [2, 4, 8] as const;
type Verdicts = { full: boolean; warnedButAccepted: boolean } & Record<(typeof SCALES)[number], boolean>;

async function judge(c: Case): Promise<Verdicts | 'structure'> {
  let info;
  try {
    info = checkImage(c.bytes, 'corpus', 100 * 1024 * 1024);
  } catch {
    return 'structure';
  }
  const scaled = (scale: 2 | 4) => {
    // As decode.ts's plan: fastShrinkOnLoad false loads at 1/s when the smaller shrink is in [2s, 4s).
    const target = { width: Math.max(1, Math.floor(info.width / (2 * scale))), height: Math.max(1, Math.floor(info.height / (2 * scale))) };
    return sharp(c.bytes, { failOn: 'warning' }).resize({ ...target, fit: 'fill', fastShrinkOnLoad: false, kernel: 'linear' }).raw().toBuffer();
  };
  const fullDecode = sharp(c.bytes, { failOn: 'warning' });
  let warned = false;
  fullDecode.on('warning', () => {
    warned = true;
  });
  const full = await accepted(fullDecode.raw().toBuffer());
  return {
    full,
    warnedButAccepted: full && warned,
    2: await accepted(scaled(2)),
    4: await accepted(scaled(4)),
    // 1/8 is what the worker uses for progressive JPEGs: its own code.
    8: await accepted(validateByDecoding(c.bytes, info, 'corpus', LIMITS, 8, undefined)),
  };
}

interface Tally {
  cases: number;
  structure: number;
  refusedFull: number;
  warnedButAccepted: number;
  escaped: Record<number, number>;
  extra: Record<number, number>;
}
const tally = (): Tally => ({ cases: 0, structure: 0, refusedFull: 0, warnedButAccepted: 0, escaped: { 2: 0, 4: 0, 8: 0 }, extra: { 2: 0, 4: 0, 8: 0 } });
const byCoding = new Map<string, Tally>();
const byCorruption = new Map<string, Tally>();
const total = tally();

function count(t: Tally, v: Verdicts | 'structure') {
  t.cases += 1;
  if (v === 'structure') {
    t.structure += 1;
    return;
  }
  if (!v.full) t.refusedFull += 1;
  if (v.warnedButAccepted) t.warnedButAccepted += 1;
  for (const s of SCALES) {
    if (!v.full && v[s]) t.escaped[s] = (t.escaped[s] ?? 0) + 1;
    if (v.full && !v[s]) t.extra[s] = (t.extra[s] ?? 0) + 1;
  }
}

if (values.keep) mkdirSync(values.keep, { recursive: true });
const started = performance.now();
const bases = baseImages({ sizes, seed }).filter((b) => !values.coding || values.coding.includes(b.coding));
const inFlight = new Set<Promise<void>>();
let index = 0;
for await (const c of corpus(bases, perBase, seed)) {
  const n = index++;
  const job = judge(c).then((v) => {
    const coding = `${c.base.coding} ${c.base.chroma}`;
    const group = c.base.coding === 'progressive' ? '**progressive**' : '**single scan** (baseline, optimised, restart)';
    for (const t of [total, byCoding.get(group) ?? byCoding.set(group, tally()).get(group), byCoding.get(coding) ?? byCoding.set(coding, tally()).get(coding), byCorruption.get(c.corruption) ?? byCorruption.set(c.corruption, tally()).get(c.corruption)]) {
      if (t) count(t, v);
    }
    if (values.keep && v !== 'structure' && !v.full && SCALES.some((s) => v[s])) {
      const at = SCALES.filter((s) => v[s]).join('-');
      writeFileSync(join(values.keep, `${n}-${c.base.coding}-${c.base.chroma.replace(/:/g, '')}-${c.corruption.replace(/ /g, '_')}-escapes-at-${at}.jpg`), c.bytes);
    }
  });
  inFlight.add(job);
  void job.finally(() => inFlight.delete(job));
  if (inFlight.size >= Number(values.parallel)) await Promise.race(inFlight);
}
await Promise.all(inFlight);

// Decode CPU at each scale on the undamaged 4:2:0 base images, per coding: evidence that the
// scales really differ, and what 1/8 saves.
const { baseJpeg } = await import('../support/jpeg-corpus.ts');
const times = new Map<string, { full: number; 2: number; 4: number; 8: number; n: number }>();
for (const base of bases.filter((b) => b.chroma === '4:2:0')) {
  const jpeg = await baseJpeg(base);
  const info = checkImage(jpeg, 'base', 1e9);
  const t = times.get(base.coding) ?? { full: 0, 2: 0, 4: 0, 8: 0, n: 0 };
  times.set(base.coding, t);
  t.n += 1;
  const measure = async (key: 'full' | 2 | 4 | 8, run: () => Promise<unknown>) => {
    await run();
    const before = process.cpuUsage();
    for (let i = 0; i < 5; i += 1) await run();
    const used = process.cpuUsage(before);
    t[key] += (used.user + used.system) / 1000 / 5;
  };
  await measure('full', () => sharp(jpeg, { failOn: 'warning' }).raw().toBuffer());
  await measure(8, () => validateByDecoding(jpeg, info, 'base', LIMITS, 8, undefined));
  for (const s of [2, 4] as const) {
    const target = { width: Math.floor(info.width / (2 * s)), height: Math.floor(info.height / (2 * s)) };
    await measure(s, () => sharp(jpeg, { failOn: 'warning' }).resize({ ...target, fit: 'fill', fastShrinkOnLoad: false, kernel: 'linear' }).raw().toBuffer());
  }
}

const single = Number(values.parallel) === 1;
const row = (name: string, t: Tally) => {
  const decoded = t.cases - t.structure;
  const pct = decoded === 0 ? '-' : `${((100 * t.refusedFull) / decoded).toFixed(1)}%`;
  return `| ${name} | ${t.cases} | ${t.structure} | ${t.refusedFull} (${pct}) | ${single ? t.warnedButAccepted : '-'} | ${SCALES.map((s) => `${t.escaped[s]} / ${t.extra[s]}`).join(' | ')} |`;
};
const header = ['| | cases | refused by the structure walk | refused by a full decode (of those decoded) | accepted in full although libjpeg warned | 1/2 escaped / extra | 1/4 escaped / extra | 1/8 escaped / extra |', '|---|---|---|---|---|---|---|---|'];
console.log(`corpus: sizes ${sizes.map(([w, h]) => `${w}x${h}`).join(', ')}, ${bases.length} base images, ${perBase} corruptions each, seed ${seed}, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
console.log([...header, ...[...byCoding].map(([k, t]) => row(k, t)), row('**all**', total)].join('\n'));
console.log();
console.log([...header, ...[...byCorruption].map(([k, t]) => row(k, t))].join('\n'));
console.log('\nCPU per decode of an undamaged 4:2:0 base image (ms, mean):');
for (const [coding, t] of times) {
  console.log(`  ${coding}: full ${(t.full / t.n).toFixed(1)}, 1/2 ${(t[2] / t.n).toFixed(1)}, 1/4 ${(t[4] / t.n).toFixed(1)}, 1/8 ${(t[8] / t.n).toFixed(1)}`);
}
