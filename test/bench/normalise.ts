// CPU per image of the normaliser (rebuilt, turned, written anew), against a full decode with the
// EXIF orientation applied and re-encoded (JPEG q92 standard Huffman / PNG level 6), on photo-like
// images; and the PNG compression level, CPU against bytes.
// One process, one image at a time, every variant in turn in each round (so load on the machine
// hits them alike); the figure is the median over rounds of process CPU (all threads) per image.
//
//   npx node test/bench/normalise.ts [--rounds 15] [--only NAME]
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { checkImage } from '../../src/image/images.ts';
import { imageNormaliser, JPEG_QUALITY, PNG_COMPRESSION_LEVEL, type ImageLimits } from '../../src/image/normalise.ts';
import { photoJpeg } from './photos.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, only: { type: 'string' } } });
const ROUNDS = Number(values.rounds);
const LIMITS: ImageLimits = { maxImagePixels: 100_000_000, minImageDimension: 16, maxReferenceDimension: undefined };
const normalise = imageNormaliser({ parallel: 1 });

/** What the normaliser did before issue 13, for every image. */
function before(bytes: Buffer, png: boolean, level = 6): Promise<Buffer> {
  const pipeline = sharp(bytes, { limitInputPixels: LIMITS.maxImagePixels, failOn: 'warning' }).rotate();
  return (png ? pipeline.png({ compressionLevel: level }) : pipeline.jpeg({ quality: JPEG_QUALITY, optimiseCoding: false })).toBuffer();
}

const now = (bytes: Buffer, options = {}) => normalise(bytes, checkImage(bytes, 'bench', 1e9), 'bench', LIMITS, options);

type Variant = readonly [string, () => Promise<unknown>];

async function medians(variants: readonly Variant[], rounds: number): Promise<Map<string, number>> {
  const samples = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  for (const [, run] of variants) await run(); // warm up
  for (let r = 0; r < rounds; r += 1) {
    for (const [name, run] of variants) {
      const start = process.cpuUsage();
      await run();
      const used = process.cpuUsage(start);
      samples.get(name)?.push((used.user + used.system) / 1000);
    }
  }
  const out = new Map<string, number>();
  for (const [name, list] of samples) out.set(name, [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? Number.NaN);
  return out;
}

const ms = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? '-' : `${(a / b).toFixed(2)}×`);

interface Workload {
  readonly name: string;
  readonly make: () => Promise<Buffer>;
  readonly png?: boolean;
  readonly rounds?: number;
}

const withExif = (jpeg: Promise<Buffer>) => jpeg.then((b) => sharp(b).withExif({ IFD0: { Make: 'AcmeCam', Model: 'Spy 3000' } }).withIccProfile('srgb').jpeg({ quality: 85 }).toBuffer());
const progressive = (jpeg: Promise<Buffer>) => jpeg.then((b) => sharp(b).jpeg({ quality: 85, progressive: true }).toBuffer());
const asPng = (jpeg: Promise<Buffer>) => jpeg.then((b) => sharp(b).png().toBuffer());

const WORKLOADS: Workload[] = [
  { name: 'selfie JPEG ~80 KB', make: () => photoJpeg(80_000, 1) },
  { name: 'photo JPEG ~0.8 MP', make: () => photoJpeg(240_000, 2) },
  { name: 'photo JPEG ~0.8 MP, EXIF + sRGB ICC', make: () => withExif(photoJpeg(240_000, 2)) },
  { name: 'photo JPEG ~12 MP', make: () => photoJpeg(3_600_000, 3), rounds: Math.max(5, Math.floor(ROUNDS / 3)) },
  { name: 'progressive JPEG ~0.8 MP', make: () => progressive(photoJpeg(240_000, 4)) },
  { name: 'progressive JPEG ~12 MP', make: () => progressive(photoJpeg(3_600_000, 5)), rounds: Math.max(5, Math.floor(ROUNDS / 3)) },
  { name: 'selfie PNG ~0.2 MP', make: () => asPng(photoJpeg(60_000, 6)), png: true },
  { name: 'photo PNG ~0.8 MP', make: () => asPng(photoJpeg(240_000, 7)), png: true },
];

console.log(`CPU per image, median of ${ROUNDS} rounds (ms); node ${process.version}, sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}\n`);
console.log('| image | size | decode + re-encode | the worker | path | ratio | + preview 1024 | orientation-6 copy: decode + re-encode | the worker | path | ratio |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const w of WORKLOADS.filter((x) => !values.only || x.name.includes(values.only))) {
  const bytes = await w.make();
  const info = checkImage(bytes, 'bench', 1e9);
  const sideways = await sharp(bytes).withMetadata({ orientation: 6 }).toFormat(w.png ? 'png' : 'jpeg').toBuffer();
  const [upright, turned] = [(await now(bytes)).path, (await now(sideways)).path];
  const m = await medians(
    [
      ['before', () => before(bytes, w.png === true)],
      ['now', () => now(bytes)],
      ['now+preview', () => now(bytes, { preview: { maxDimension: 1024 } })],
      ['before sideways', () => before(sideways, w.png === true)],
      ['now sideways', () => now(sideways)],
    ],
    w.rounds ?? ROUNDS,
  );
  console.log(
    `| ${w.name} | ${info.width}×${info.height}, ${Math.round(bytes.length / 1024)} KB | ${ms(m.get('before'))} | ${ms(m.get('now'))} | ${upright} | ${ratio(m.get('now'), m.get('before'))} | ${ms(m.get('now+preview'))} | ${ms(m.get('before sideways'))} | ${ms(m.get('now sideways'))} | ${turned} | ${ratio(m.get('now sideways'), m.get('before sideways'))} |`,
  );
}

// The PNG level the worker writes at (PNG_COMPRESSION_LEVEL): CPU against bytes, on photographs.
if (!values.only) {
  console.log(`\nPNG written anew: zlib level, CPU per image (ms) and bytes (the worker writes level ${PNG_COMPRESSION_LEVEL})`);
  console.log('| image | level 1 | level 3 | level 6 | level 9 | bytes 1 / 3 / 6 / 9 |');
  console.log('|---|---|---|---|---|---|');
  for (const w of WORKLOADS.filter((x) => x.png)) {
    const bytes = await w.make();
    const levels = [1, 3, 6, 9] as const;
    const m = await medians(levels.map((l) => [`${l}`, () => before(bytes, true, l)] as const), ROUNDS);
    const sizes = await Promise.all(levels.map(async (l) => Math.round((await before(bytes, true, l)).length / 1024)));
    console.log(`| ${w.name} | ${levels.map((l) => ms(m.get(`${l}`))).join(' | ')} | ${sizes.join(' / ')} KB |`);
  }
}
