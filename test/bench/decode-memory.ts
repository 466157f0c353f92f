// Peak memory of making one reference, for docs/images.md "Memory": 40-megapixel JPEGs (baseline and
// progressive, 4:2:0 and 4:4:4, upright and with EXIF orientation 6: turned in the coefficient
// domain) and PNGs (upright, and orientation 6: decoded and turned). Each case runs in a fresh
// process (VmHWM is a high-water mark); the figure is the peak above the process's RSS before the
// work (the input bytes already held), next to the estimate the normaliser admits the work by.
//
//   npm run build && node test/bench/decode-memory.ts            # ~2 min on 2 cores
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';

const WIDTH = 7296; // whole MCUs of 4:2:0 (16 px) both ways, so orientation 6 turns losslessly
const HEIGHT = 5472; // 39.9 megapixels: MAX_IMAGE_PIXELS (40 M) by default

async function makeInputs(dir: string): Promise<Record<string, string>> {
  // A smooth scene with grain, like a photo (noise alone would be unlike any camera's file).
  const grain = await sharp({ create: { width: WIDTH, height: HEIGHT, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 20 } } })
    .blur(1.2)
    .raw()
    .toBuffer();
  const base = sharp(grain, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } });
  const files: Record<string, string> = {};
  const write = async (name: string, image: sharp.Sharp) => {
    files[name] = join(dir, name);
    writeFileSync(files[name] ?? '', await image.toBuffer());
  };
  for (const progressive of [false, true]) {
    for (const chroma of ['4:2:0', '4:4:4'] as const) {
      const coding = `${progressive ? 'progressive' : 'baseline'} ${chroma}`;
      await write(`JPEG ${coding}, upright`, base.clone().jpeg({ quality: 85, progressive, chromaSubsampling: chroma }));
      await write(`JPEG ${coding}, orientation 6`, base.clone().withMetadata({ orientation: 6 }).jpeg({ quality: 85, progressive, chromaSubsampling: chroma }));
    }
  }
  await write('PNG, upright', base.clone().png({ compressionLevel: 6 }));
  await write('PNG, orientation 6', base.clone().withMetadata({ orientation: 6 }).png({ compressionLevel: 6 }));
  return files;
}

/** One reference made in this process (run as a child): prints its peak above the RSS before it. */
async function child(file: string, preview: boolean): Promise<void> {
  const { imageNormaliser, decodeMemoryEstimate, planReference } = await import('../../dist/image/normalise.js');
  const { checkImage } = await import('../../dist/image/images.js');
  const bytes = readFileSync(file);
  const info = checkImage(bytes, 'image', 1e9);
  const limits = { maxImagePixels: 40_000_000, minImageDimension: 64, maxReferenceDimension: undefined };
  const plan = await planReference(bytes, info, 'image', limits);
  const status = () => readFileSync('/proc/self/status', 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status())?.[1] ?? 0);
  const before = kib('VmRSS');
  const started = process.cpuUsage();
  const out = await imageNormaliser({ parallel: 1 })(bytes, info, 'image', limits, preview ? { preview: { maxDimension: 1024 } } : {});
  const cpu = process.cpuUsage(started);
  const estimate = decodeMemoryEstimate(bytes.length, plan, preview);
  process.stdout.write(
    JSON.stringify({ inputMiB: bytes.length / 2 ** 20, path: out.path, peakAboveMiB: (kib('VmHWM') - before) / 1024, estimateMiB: estimate / 2 ** 20, cpuSeconds: (cpu.user + cpu.system) / 1e6 }),
  );
}

async function main(): Promise<void> {
  const dir = join(tmpdir(), 'enrollment-worker-decode-memory');
  mkdirSync(dir, { recursive: true });
  const files = await makeInputs(dir);
  const rows: string[] = ['| image (40 MP) | input | path | preview | peak above RSS before | admitted as | CPU |', '|---|---|---|---|---|---|---|'];
  let under = true;
  for (const [name, file] of Object.entries(files)) {
    for (const preview of [false, true]) {
      const out = execFileSync(process.execPath, [import.meta.filename, '--child', file, preview ? 'preview' : ''], { encoding: 'utf8' });
      const r = JSON.parse(out) as { inputMiB: number; path: string; peakAboveMiB: number; estimateMiB: number; cpuSeconds: number };
      if (r.peakAboveMiB > r.estimateMiB) under = false;
      rows.push(`| ${name} | ${r.inputMiB.toFixed(1)} MiB | ${r.path} | ${preview ? '1024' : '-'} | ${r.peakAboveMiB.toFixed(0)} MiB | ${r.estimateMiB.toFixed(0)} MiB | ${r.cpuSeconds.toFixed(2)} s |`);
    }
  }
  process.stdout.write(`${rows.join('\n')}\n${under ? 'every estimate is above its measured peak' : '*** AN ESTIMATE IS BELOW ITS MEASURED PEAK ***'}\n`);
  if (!under) process.exitCode = 1;
}

if (process.argv[2] === '--child') await child(process.argv[3] ?? '', process.argv[4] === 'preview');
else await main();
