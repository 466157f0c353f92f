/**
 * A checked image → the reference that is stored. Every image is decoded in full (a real image
 * library, libvips through sharp), so a truncated or corrupt file fails here, and re-encoded, so
 * what is stored is only pixels: the EXIF orientation is applied (a sideways reference breaks face
 * matching), and all metadata — EXIF, GPS, XMP, IPTC, ICC, comments, trailing data — is left out.
 * JPEG stays JPEG and PNG stays PNG.
 *
 * This is the worker's main CPU cost, so it is bounded: at most `availableParallelism()` images
 * are decoded at once, each on one libvips thread, leaving the rest of libuv's thread pool (DNS,
 * files) free for the SDK; libvips' operation cache is off (every image is new).
 */
import { availableParallelism } from 'node:os';
import sharp from 'sharp';
import { JobError } from '../job/errors.ts';
import { JPEG, type ImageInfo } from './images.ts';

export interface ImageLimits {
  /** Width × height above which an image is refused before it is decoded (IMAGE_TOO_LARGE). */
  readonly maxImagePixels: number;
  /** The shorter side below which an image cannot hold a face (IMAGE_TOO_SMALL). */
  readonly minImageDimension: number;
  /** The longest side of a stored reference; larger images are scaled down. Undefined: no bound. */
  readonly maxReferenceDimension: number | undefined;
}

export interface NormalisedImage {
  readonly bytes: Buffer;
  readonly width: number;
  readonly height: number;
}

/** Options of one normalisation: a cancelled job stops waiting for a decode slot. */
export interface NormaliseOptions {
  readonly signal?: AbortSignal;
  /** Wraps the wait for a decode slot (the job's deadline does not run while it waits its turn). */
  readonly waitFor?: <T>(wait: Promise<T>) => Promise<T>;
}

export type ImageNormaliser = (bytes: Buffer, info: ImageInfo, label: string, limits: ImageLimits, options?: NormaliseOptions) => Promise<NormalisedImage>;

/**
 * JPEG quality of stored references: high, with the default 4:2:0 chroma subsampling and standard
 * Huffman tables — optimising them saves a few per cent of bytes for twice the CPU of the whole
 * re-encode (measured: 15 ms against 8 ms for a 0.8-megapixel photo).
 */
export const JPEG_QUALITY = 92;
/** zlib level of stored PNGs: the usual trade of size for CPU. */
export const PNG_COMPRESSION_LEVEL = 6;

/** One line, at most 200 characters, of what libvips said. */
function reasonOf(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const line = (text.split('\n').find((l) => l.trim() !== '') ?? 'unknown error').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** The checks that need only the header's dimensions: no decoding for an image that will be refused. */
export function checkDimensions(info: ImageInfo, label: string, limits: ImageLimits): void {
  const pixels = info.width * info.height;
  if (pixels > limits.maxImagePixels) {
    throw new JobError(
      'IMAGE_TOO_LARGE',
      `${label} is ${info.width}×${info.height} pixels (${pixels}); the limit is ${limits.maxImagePixels} (MAX_IMAGE_PIXELS)`,
    );
  }
  if (Math.min(info.width, info.height) < limits.minImageDimension) {
    throw new JobError(
      'IMAGE_TOO_SMALL',
      `${label} is ${info.width}×${info.height} pixels; its shorter side must be at least ${limits.minImageDimension} (MIN_IMAGE_DIMENSION)`,
    );
  }
}

async function normalise(bytes: Buffer, info: ImageInfo, label: string, limits: ImageLimits): Promise<NormalisedImage> {
  checkDimensions(info, label, limits);
  let pipeline = sharp(bytes, { limitInputPixels: limits.maxImagePixels, failOn: 'warning' }).rotate();
  if (limits.maxReferenceDimension !== undefined) {
    const side = limits.maxReferenceDimension;
    pipeline = pipeline.resize({ width: side, height: side, fit: 'inside', withoutEnlargement: true });
  }
  pipeline =
    info.type === JPEG
      ? pipeline.jpeg({ quality: JPEG_QUALITY, optimiseCoding: false })
      : pipeline.png({ compressionLevel: PNG_COMPRESSION_LEVEL });
  let output: { data: Buffer; info: sharp.OutputInfo };
  try {
    output = await pipeline.toBuffer({ resolveWithObject: true });
  } catch (e: unknown) {
    const reason = reasonOf(e);
    // The machine's fault, not the image's: a transient failure, retried rather than dead-lettered.
    if (/out of memory|memory allocation|cannot allocate|insufficient memory/i.test(reason)) {
      throw new Error(`${label} could not be decoded for lack of memory: ${reason}`, { cause: e });
    }
    if (/pixel limit/i.test(reason)) {
      throw new JobError('IMAGE_TOO_LARGE', `${label} is over the limit of ${limits.maxImagePixels} pixels (MAX_IMAGE_PIXELS)`, { cause: e });
    }
    throw new JobError('INVALID_IMAGE', `${label} could not be decoded: ${reason}`, { cause: e });
  }
  const { width, height } = output.info;
  if (Math.min(width, height) < limits.minImageDimension) {
    throw new JobError(
      'IMAGE_TOO_SMALL',
      `${label} would be ${width}×${height} pixels once its longest side is bounded to ${limits.maxReferenceDimension} (MAX_REFERENCE_DIMENSION); its shorter side must be at least ${limits.minImageDimension}`,
    );
  }
  return { bytes: output.data, width, height };
}

/**
 * The normaliser the worker uses: at most `parallel` images at once (default: one per core). Sets
 * sharp's process-wide options (one libvips thread per image, no operation cache) when created.
 */
export function imageNormaliser(options: { parallel?: number } = {}): ImageNormaliser {
  sharp.concurrency(1);
  sharp.cache(false);
  const parallel = Math.max(1, options.parallel ?? availableParallelism());
  let running = 0;
  const waiting: (() => void)[] = [];
  // A finished image hands its slot straight to the next waiting one.
  const acquire = async (signal?: AbortSignal) => {
    signal?.throwIfAborted();
    if (running < parallel) {
      running += 1;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const take = () => {
        signal?.removeEventListener('abort', leave);
        resolve();
      };
      const leave = () => {
        const at = waiting.indexOf(take);
        if (at >= 0) waiting.splice(at, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', leave, { once: true });
      waiting.push(take);
    });
  };
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else running -= 1;
  };
  return async (bytes, info, label, limits, options) => {
    const wait = acquire(options?.signal);
    await (options?.waitFor ? options.waitFor(wait) : wait);
    try {
      return await normalise(bytes, info, label, limits);
    } finally {
      release();
    }
  };
}
