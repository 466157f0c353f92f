// Peak memory of one decode by the worker's normaliser, for README "Memory": a 40-megapixel JPEG and
// PNG, upright and turned 90° by EXIF orientation 6. Each case runs in a fresh process (VmHWM is a
// high-water mark); the figure is the peak above the process's RSS before the decode (the input
// bytes already held), next to the estimate the normaliser admits the decode by.
//
//   npm run build && node test/bench/decode-memory.ts            # ~1 min on 2 cores
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';

const WIDTH = 7300;
const HEIGHT = 5475; // 40.0 megapixels: MAX_IMAGE_PIXELS by default

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
  await write('jpeg-upright.jpg', base.clone().jpeg({ quality: 85 }));
  await write('jpeg-turned.jpg', base.clone().withMetadata({ orientation: 6 }).jpeg({ quality: 85 }));
  await write('png-upright.png', base.clone().png({ compressionLevel: 6 }));
  await write('png-turned.png', base.clone().withMetadata({ orientation: 6 }).png({ compressionLevel: 6 }));
  return files;
}

/** One decode in this process (run as a child): prints its peak above the RSS before it. */
async function child(file: string): Promise<void> {
  const { imageNormaliser, decodeMemoryEstimate } = await import('../../dist/enroll/normalise.js');
  const { sniffImage } = await import('../../dist/enroll/images.js');
  const bytes = readFileSync(file);
  const info = sniffImage(bytes);
  if (!info) throw new Error(`${file} is not an image`);
  const status = () => readFileSync('/proc/self/status', 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status())?.[1] ?? 0);
  const before = kib('VmRSS');
  const limits = { maxImagePixels: 40_000_000, minImageDimension: 64, maxReferenceDimension: undefined };
  const started = process.cpuUsage();
  const out = await imageNormaliser({ parallel: 1 })(bytes, info, 'image', limits);
  const cpu = process.cpuUsage(started);
  const turned = (await sharp(bytes).metadata()).orientation === 6;
  const estimate = decodeMemoryEstimate(bytes, info, { path: out.path, orientation: turned ? 6 : 1, preview: false });
  process.stdout.write(
    JSON.stringify({ inputMiB: bytes.length / 2 ** 20, path: out.path, peakAboveMiB: (kib('VmHWM') - before) / 1024, estimateMiB: estimate / 2 ** 20, cpuSeconds: (cpu.user + cpu.system) / 1e6 }),
  );
}

async function main(): Promise<void> {
  const dir = join(tmpdir(), 'enrollment-worker-decode-memory');
  mkdirSync(dir, { recursive: true });
  const files = await makeInputs(dir);
  const rows: string[] = ['| image (40 MP) | input | path | peak above RSS before | admitted as | CPU |', '|---|---|---|---|---|---|'];
  for (const [name, file] of Object.entries(files)) {
    const out = execFileSync(process.execPath, [import.meta.filename, '--child', file], { encoding: 'utf8' });
    const r = JSON.parse(out) as { inputMiB: number; path: string; peakAboveMiB: number; estimateMiB: number; cpuSeconds: number };
    rows.push(`| ${name} | ${r.inputMiB.toFixed(1)} MiB | ${r.path} | ${r.peakAboveMiB.toFixed(0)} MiB | ${r.estimateMiB.toFixed(0)} MiB | ${r.cpuSeconds.toFixed(2)} s |`);
  }
  process.stdout.write(`${rows.join('\n')}\n`);
}

if (process.argv[2] === '--child') await child(process.argv[3] ?? '');
else await main();
