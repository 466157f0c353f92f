// The same-work baseline: the shared SDK loop (sdk-loop.ts) plus the image work a careful engineer
// writes with sharp to give the worker's guarantees — a full decode that fails on libvips warnings
// (a truncated or corrupt file is refused), EXIF orientation applied, every metadata block dropped
// (sharp keeps none unless asked), re-encoded as JPEG quality 92 or PNG. The encoder settings are the
// worker's (standard Huffman tables: sharp's default optimised ones cost twice the CPU for a few per
// cent of bytes), so the two compare the work around the codec, not a codec option. This is the
// baseline the worker must beat; against the plain loop it only shows what the framework costs.
//
// sharp set up for the machine: no operation cache (every image is new), and libvips threads per
// image = cores ÷ libuv's pool (at least 1), so the images in flight, one per pool thread, fill the
// cores without each one starting a thread per core on top.
import { availableParallelism } from 'node:os';
import sharp from 'sharp';
import { runSdkLoop } from './sdk-loop.ts';

const threadPool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
sharp.cache(false);
sharp.concurrency(Math.max(1, Math.floor(availableParallelism() / threadPool)));

const MAX_PIXELS = Number(process.env.MAX_IMAGE_PIXELS ?? 40_000_000);

await runSdkLoop(async (received) => {
  const png = received[0] === 0x89;
  let image = sharp(received, { failOn: 'warning', limitInputPixels: MAX_PIXELS }).rotate();
  image = png ? image.png({ compressionLevel: 6 }) : image.jpeg({ quality: 92, optimiseCoding: false });
  return { bytes: await image.toBuffer(), png };
});
