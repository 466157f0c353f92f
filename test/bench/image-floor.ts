// The per-image floor of `npm run bench`: libjpeg-turbo reading the same file's coefficients and
// nothing else (the least any reader that validates every block does), beside the worker's image
// CPU per upright JPEG (the normaliser: the header read, the rebuild from the coefficients), in the
// same process, one image at a time, alternating, median of rounds. Goal: worker ÷ floor ≤ 1.5×.
import { checkImage, MAX_JPEG_SCANS } from '../../src/image/images.ts';
import { jpegCodec } from '../../src/image/jpeg.ts';
import { imageNormaliser, type ImageLimits } from '../../src/image/normalise.ts';

const LIMITS: ImageLimits = { maxImagePixels: 100_000_000, minImageDimension: 16, maxReferenceDimension: undefined };

/** CPU (all threads of this process) of `run`, in ms. */
async function cpuOf(run: () => Promise<unknown>): Promise<number> {
  const start = process.cpuUsage();
  await run();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? Number.NaN;

export interface ImageFloor {
  readonly images: number;
  /** Median over rounds of the summed CPU over all images, per image (ms). */
  readonly floorMsPerImage: number;
  readonly workerMsPerImage: number;
  readonly ratio: number;
}

export async function imageFloor(images: readonly Buffer[], rounds = 9): Promise<ImageFloor> {
  const codec = jpegCodec();
  const normalise = imageNormaliser({ parallel: 1 });
  const checked = images.map((bytes) => ({ bytes, info: checkImage(bytes, 'bench', 1e9) }));
  const workerAll = async () => {
    for (const { bytes, info } of checked) {
      const made = await normalise(bytes, info, 'bench', LIMITS);
      if (made.path !== 'rebuilt') throw new Error(`image floor: expected an upright JPEG to be rebuilt, got ${made.path}`);
    }
  };
  const floorAllSerial = async () => {
    for (const { bytes } of checked) await codec.readCoefficients(bytes, MAX_JPEG_SCANS);
  };
  await floorAllSerial();
  await workerAll(); // warm up
  const floor: number[] = [];
  const worker: number[] = [];
  for (let r = 0; r < rounds; r += 1) {
    floor.push(await cpuOf(floorAllSerial));
    worker.push(await cpuOf(workerAll));
  }
  const floorMsPerImage = median(floor) / images.length;
  const workerMsPerImage = median(worker) / images.length;
  return { images: images.length, floorMsPerImage, workerMsPerImage, ratio: workerMsPerImage / floorMsPerImage };
}

export const imageFloorLine = (name: string, f: ImageFloor) =>
  `image CPU per upright JPEG (${name}, ${f.images} images, in-process, median of rounds): floor (libjpeg-turbo reads the coefficients) ${f.floorMsPerImage.toFixed(2)} ms, worker (header read + rebuild) ${f.workerMsPerImage.toFixed(2)} ms — ${f.ratio.toFixed(2)}× the floor (goal ≤ 1.5×)`;
