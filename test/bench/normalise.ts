// CPU per image of the normaliser's two paths, against what it did before (a full decode, EXIF
// orientation applied, re-encoded: JPEG q92 standard Huffman / PNG level 6), on photo-like images.
// One process, one image at a time, every variant in turn in each round (so load on the machine
// hits them alike); the figure is the median over rounds of process CPU (all threads) per image.
//
//   npx node test/bench/normalise.ts [--rounds 15] [--only NAME]
//
// Also the measurements behind two thresholds in src/enroll/decode.ts (RAW_SINK_MAX_PIXELS,
// REDUCED_SCALE_MIN_PIXELS) and the choice of one decode for the re-encode and the preview.
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { fitWithin, validateByDecoding } from '../../src/enroll/decode.ts';
import { checkImage } from '../../src/enroll/images.ts';
import { imageNormaliser, JPEG_QUALITY, PNG_COMPRESSION_LEVEL, type ImageLimits } from '../../src/enroll/normalise.ts';
import { photoJpeg } from './photos.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, only: { type: 'string' } } });
const ROUNDS = Number(values.rounds);
const LIMITS: ImageLimits = { maxImagePixels: 100_000_000, minImageDimension: 16, maxReferenceDimension: undefined };
const normalise = imageNormaliser({ parallel: 1 });

/** What the normaliser did before issue 13, for every image. */
function before(bytes: Buffer, png: boolean): Promise<Buffer> {
  const pipeline = sharp(bytes, { limitInputPixels: LIMITS.maxImagePixels, failOn: 'warning' }).rotate();
  return (png ? pipeline.png({ compressionLevel: PNG_COMPRESSION_LEVEL }) : pipeline.jpeg({ quality: JPEG_QUALITY, optimiseCoding: false })).toBuffer();
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
console.log('| image | size | before: decode + re-encode | lossless path | ratio | lossless + preview 1024 | before, orientation-6 copy | re-encode path, same copy | ratio | re-encode + preview 1024 |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const w of WORKLOADS.filter((x) => !values.only || x.name.includes(values.only))) {
  const bytes = await w.make();
  const info = checkImage(bytes, 'bench', 1e9);
  const sideways = await sharp(bytes).withMetadata({ orientation: 6 }).toFormat(w.png ? 'png' : 'jpeg').toBuffer();
  const path = (await now(bytes)).path;
  if (path !== 'lossless') throw new Error(`${w.name}: expected the lossless path, got ${path}`);
  const m = await medians(
    [
      ['before', () => before(bytes, w.png === true)],
      ['lossless', () => now(bytes)],
      ['lossless+preview', () => now(bytes, { preview: { maxDimension: 1024 } })],
      ['before sideways', () => before(sideways, w.png === true)],
      ['reencode', () => now(sideways)],
      ['reencode+preview', () => now(sideways, { preview: { maxDimension: 1024 } })],
    ],
    w.rounds ?? ROUNDS,
  );
  console.log(
    `| ${w.name} | ${info.width}×${info.height}, ${Math.round(bytes.length / 1024)} KB | ${ms(m.get('before'))} | ${ms(m.get('lossless'))} | ${ratio(m.get('lossless'), m.get('before'))} | ${ms(m.get('lossless+preview'))} | ${ms(m.get('before sideways'))} | ${ms(m.get('reencode'))} | ${ratio(m.get('reencode'), m.get('before sideways'))} | ${ms(m.get('reencode+preview'))} |`,
  );
}

// The thresholds: at which size does the cheaper sink / scale change? And the preview on the
// re-encode path: one decode to raw for both, against the encode alone plus a separate small decode.
if (!values.only) {
  console.log('\nValidating decode of a baseline JPEG (no preview): raw pixels vs streamed into an image shrunk 3.5 times (ms)');
  console.log('| pixels | raw | streamed /3.5 |');
  console.log('|---|---|---|');
  for (const target of [150_000, 600_000, 1_200_000, 2_400_000]) {
    const jpeg = await photoJpeg(target, 8);
    const info = checkImage(jpeg, 'bench', 1e9);
    const shrunk = { width: Math.ceil(info.width / 3.5), height: Math.ceil(info.height / 3.5), fit: 'fill' as const, fastShrinkOnLoad: false, kernel: 'linear' as const };
    const m = await medians(
      [
        ['raw', () => sharp(jpeg, { failOn: 'warning' }).raw().toBuffer()],
        ['shrunk', () => sharp(jpeg, { failOn: 'warning' }).resize(shrunk).raw().toBuffer()],
      ],
      ROUNDS,
    );
    console.log(`| ${((info.width * info.height) / 1e6).toFixed(2)} MP | ${ms(m.get('raw'))} | ${ms(m.get('shrunk'))} |`);
  }

  console.log('\nValidating decode of a JPEG: full scale (raw) vs 1/8 (ms)');
  console.log('| pixels | baseline, full | baseline, 1/8 | progressive, full | progressive, 1/8 |');
  console.log('|---|---|---|---|---|');
  for (const target of [40_000, 80_000, 150_000, 300_000]) {
    const baseline = await photoJpeg(target, 9);
    const interlaced = await progressive(Promise.resolve(baseline));
    const info = checkImage(baseline, 'bench', 1e9);
    const m = await medians(
      [
        ['baseline full', () => validateByDecoding(baseline, info, 'bench', LIMITS, 1, undefined)],
        ['baseline eighth', () => validateByDecoding(baseline, info, 'bench', LIMITS, 8, undefined)],
        ['progressive full', () => validateByDecoding(interlaced, info, 'bench', LIMITS, 1, undefined)],
        ['progressive eighth', () => validateByDecoding(interlaced, info, 'bench', LIMITS, 8, undefined)],
      ],
      ROUNDS,
    );
    const cells = ['baseline full', 'baseline eighth', 'progressive full', 'progressive eighth'].map((k) => ms(m.get(k))).join(' | ');
    console.log(`| ${((info.width * info.height) / 1e6).toFixed(2)} MP | ${cells} |`);
  }

  console.log('\nRe-encode path with a preview (ms): one decode to raw for both (what it does), against the encode alone and the encode plus a second, 1/8-scale decode for the preview');
  console.log('| image | encode alone | one decode, both | encode + second decode |');
  console.log('|---|---|---|---|');
  for (const [name, target] of [
    ['~0.8 MP', 240_000],
    ['~12 MP', 3_600_000],
  ] as const) {
    const sideways = await sharp(await photoJpeg(target, 10)).withMetadata({ orientation: 6 }).jpeg({ quality: 85 }).toBuffer();
    const info = checkImage(sideways, 'bench', 1e9);
    const fitted = fitWithin({ width: info.height, height: info.width }, 1024);
    const m = await medians(
      [
        ['alone', () => now(sideways)],
        ['both', () => now(sideways, { preview: { maxDimension: 1024 } })],
        ['second', async () => {
          await now(sideways);
          await sharp(sideways, { failOn: 'warning' }).rotate().resize({ ...fitted, fit: 'fill' }).raw().toBuffer();
        }],
      ],
      target > 1e6 ? Math.max(5, Math.floor(ROUNDS / 3)) : ROUNDS,
    );
    console.log(`| ${name} | ${ms(m.get('alone'))} | ${ms(m.get('both'))} | ${ms(m.get('second'))} |`);
  }
}
