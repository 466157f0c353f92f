// At which scale does a JPEG validation refuse everything a full decode refuses? Runs the
// corrupted-JPEG corpus (test/support/jpeg-corpus.ts) through the gate (checkImage) and decodes at
// full, 1/2, 1/4 and 1/8 scale, each judged two ways:
//   failOn      — refused when libvips fails the decode (failOn 'warning': libjpeg's warnings seen
//                 before a strip); what the worker did before, blind to the last strip's warnings
//   heeding     — refused also when libjpeg warned at all (src/enroll/decode-warnings.ts: the
//                 warnings libvips only logs, told apart from other decodes' by the ledger)
// and counts, per coding and per corruption, against the full decode judged the same way:
//   escaped — refused at full scale, accepted at the reduced one (what must be 0 at the scale used)
//   extra   — accepted at full scale, refused at the reduced one
// Full and 1/8 are the worker's own validation (validateByDecoding); 1/2 and 1/4 the same decode
// resized so that libjpeg loads at that scale; "reduced" is the worker's reduced scale for the
// file (reducedScale: 1/8, or for a single-scan JPEG whose height makes libvips skip its last row
// of blocks at 1/8, the coarsest scale that reads it), whatever its size. Decodes run `--parallel` at a time through the
// ledger, so the counts also test it: `--verdicts FILE` writes every case's verdicts, and a run
// with --parallel 1 must write the same file.
//
//   npx node test/corpus/jpeg-scales.ts [--size 1600x1200]... [--per-base 100] [--seed 1]
//       [--coding progressive]... [--keep DIR] [--parallel 2] [--verdicts FILE]
//
// --keep writes the files that escape at some scale (judged by failOn) to DIR (named by coding,
// corruption and the scales they escape at), e.g. to pick a fixture for the unit test.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { reducedScale, validateByDecoding } from '../../src/enroll/decode.ts';
import { decodeHeedingWarnings, DecoderWarning, sharpWarnings } from '../../src/enroll/decode-warnings.ts';
import { checkImage, type ImageInfo } from '../../src/enroll/images.ts';
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
    verdicts: { type: 'string' },
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

/** accepted; refused by libvips (failOn); or decoded, but libjpeg warned. */
type Outcome = 'accepted' | 'failed' | 'warned';
const outcomeOf = (p: Promise<unknown>): Promise<Outcome> =>
  p.then(
    () => 'accepted',
    (e: unknown) => (e instanceof DecoderWarning || (e instanceof Error && e.cause instanceof DecoderWarning) ? 'warned' : 'failed'),
  );

const SCALES = [2, 4, 8, 'reduced'] as const;
type Scale = 1 | (typeof SCALES)[number];
type Verdicts = Record<Scale, Outcome>;

/** As decode.ts's plan: fastShrinkOnLoad false loads at 1/s when the smaller shrink is in [2s, 4s). */
function atScale(bytes: Buffer, info: ImageInfo, scale: 2 | 4): Promise<unknown> {
  const target = { width: Math.max(1, Math.floor(info.width / (2 * scale))), height: Math.max(1, Math.floor(info.height / (2 * scale))) };
  return decodeHeedingWarnings((listen) =>
    listen(sharp(bytes, { failOn: 'warning' }))
      .resize({ ...target, fit: 'fill', fastShrinkOnLoad: false, kernel: 'linear' })
      .raw()
      .toBuffer(),
  );
}

async function judge(c: Case): Promise<Verdicts | 'structure'> {
  let info: ImageInfo;
  try {
    info = checkImage(c.bytes, 'corpus', 100 * 1024 * 1024);
  } catch {
    return 'structure';
  }
  return {
    // Full and 1/8 are the worker's own validation.
    1: await outcomeOf(validateByDecoding(c.bytes, info, 'corpus', LIMITS, 1, undefined)),
    2: await outcomeOf(atScale(c.bytes, info, 2)),
    4: await outcomeOf(atScale(c.bytes, info, 4)),
    8: await outcomeOf(validateByDecoding(c.bytes, info, 'corpus', LIMITS, 8, undefined)),
    reduced: await outcomeOf(validateByDecoding(c.bytes, info, 'corpus', LIMITS, reducedScale(info.height, c.base.coding === 'progressive'), undefined)),
  };
}

type Rule = 'failOn' | 'heeding';
const refused = (o: Outcome, rule: Rule) => o === 'failed' || (rule === 'heeding' && o === 'warned');

type Reduced = (typeof SCALES)[number];
interface Tally {
  cases: number;
  structure: number;
  refusedFull: Record<Rule, number>;
  escaped: Record<Rule, Record<Reduced, number>>;
  extra: Record<Rule, Record<Reduced, number>>;
}
const perScale = () => ({ 2: 0, 4: 0, 8: 0, reduced: 0 });
const tally = (): Tally => ({
  cases: 0,
  structure: 0,
  refusedFull: { failOn: 0, heeding: 0 },
  escaped: { failOn: perScale(), heeding: perScale() },
  extra: { failOn: perScale(), heeding: perScale() },
});
const byCoding = new Map<string, Tally>();
const byCorruption = new Map<string, Tally>();
const total = tally();

function count(t: Tally, v: Verdicts | 'structure') {
  t.cases += 1;
  if (v === 'structure') {
    t.structure += 1;
    return;
  }
  for (const rule of ['failOn', 'heeding'] as const) {
    const full = refused(v[1], rule);
    if (full) t.refusedFull[rule] += 1;
    for (const s of SCALES) {
      if (full && !refused(v[s], rule)) t.escaped[rule][s] += 1;
      if (!full && refused(v[s], rule)) t.extra[rule][s] += 1;
    }
  }
}
const group = <K>(map: Map<K, Tally>, key: K) => map.get(key) ?? map.set(key, tally()).get(key) ?? tally();

if (values.keep) mkdirSync(values.keep, { recursive: true });
const lines: string[] = [];
const started = performance.now();
const bases = baseImages({ sizes, seed }).filter((b) => !values.coding || values.coding.includes(b.coding));
const inFlight = new Set<Promise<void>>();
let index = 0;
for await (const c of corpus(bases, perBase, seed)) {
  const n = index++;
  const job = judge(c).then((v) => {
    const coding = `${c.base.coding} ${c.base.chroma}`;
    const kind = c.base.coding === 'progressive' ? '**progressive**' : '**single scan** (baseline, optimised, restart)';
    for (const t of [total, group(byCoding, kind), group(byCoding, coding), group(byCorruption, c.corruption)]) count(t, v);
    lines[n] = `${n} ${c.base.width}x${c.base.height} ${coding} ${c.corruption}: ${v === 'structure' ? v : ([1, ...SCALES] as const).map((s) => v[s]).join(' ')}`;
    if (values.keep && v !== 'structure' && v[1] === 'failed' && SCALES.some((s) => v[s] !== 'failed')) {
      const at = SCALES.filter((s) => v[s] !== 'failed').join('-');
      writeFileSync(join(values.keep, `${n}-${c.base.coding}-${c.base.chroma.replace(/:/g, '')}-${c.corruption.replace(/ /g, '_')}-escapes-at-${at}.jpg`), c.bytes);
    }
  });
  inFlight.add(job);
  void job.finally(() => inFlight.delete(job));
  if (inFlight.size >= Number(values.parallel)) await Promise.race(inFlight);
}
await Promise.all(inFlight);
if (values.verdicts) writeFileSync(values.verdicts, `${lines.join('\n')}\n`);
const seconds = (performance.now() - started) / 1000;

// Decode CPU at each scale on the undamaged 4:2:0 base images, per coding: what 1/8 saves.
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
  await measure('full', () => validateByDecoding(jpeg, info, 'base', LIMITS, 1, undefined));
  await measure(8, () => validateByDecoding(jpeg, info, 'base', LIMITS, 8, undefined));
  for (const s of [2, 4] as const) await measure(s, () => atScale(jpeg, info, s));
}

const row = (name: string, t: Tally) => {
  const decoded = t.cases - t.structure;
  const pct = (n: number) => (decoded === 0 ? '-' : `${((100 * n) / decoded).toFixed(1)}%`);
  const cells = (rule: Rule) => SCALES.map((s) => `${t.escaped[rule][s]} / ${t.extra[rule][s]}`).join(' | ');
  return `| ${name} | ${t.cases} | ${t.structure} | ${t.refusedFull.failOn} (${pct(t.refusedFull.failOn)}) | ${t.refusedFull.heeding} (${pct(t.refusedFull.heeding)}) | ${cells('failOn')} | ${cells('heeding')} |`;
};
const header = [
  '| | cases | refused by the structure walk | refused by a full decode, failOn (of those decoded) | refused by a full decode, heeding warnings | failOn: 1/2 escaped / extra | 1/4 | 1/8 | reduced | heeding: 1/2 escaped / extra | 1/4 | 1/8 | reduced |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
];
console.log(`corpus: sizes ${sizes.map(([w, h]) => `${w}x${h}`).join(', ')}, ${bases.length} base images, ${perBase} corruptions each, seed ${seed}, parallel ${values.parallel}, ${seconds.toFixed(0)} s`);
console.log(`ledger: ${sharpWarnings.counts.suspects} decodes suspect, ${sharpWarnings.counts.turns} decoded again alone, ${sharpWarnings.counts.drains} drains\n`);
console.log([...header, ...[...byCoding].map(([k, t]) => row(k, t)), row('**all**', total)].join('\n'));
console.log();
console.log([...header, ...[...byCorruption].map(([k, t]) => row(k, t))].join('\n'));
console.log('\nCPU per validating decode of an undamaged 4:2:0 base image (ms, mean):');
for (const [coding, t] of times) {
  console.log(`  ${coding}: full ${(t.full / t.n).toFixed(1)}, 1/2 ${(t[2] / t.n).toFixed(1)}, 1/4 ${(t[4] / t.n).toFixed(1)}, 1/8 ${(t[8] / t.n).toFixed(1)}`);
}
