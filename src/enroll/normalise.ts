/**
 * A checked image → the reference that is stored, by one of two paths:
 *
 * - **lossless**: an image that needs no pixel change (upright, sRGB or untagged, 8-bit, not CMYK,
 *   within MAX_REFERENCE_DIMENSION, a plain Huffman-coded JPEG or any 8-bit PNG) is stored as
 *   received with every metadata segment or chunk removed at the byte level (lossless.ts): no
 *   generation loss, and no encode. It is still decoded to be validated: in full, or from 0.2
 *   megapixels a JPEG at 1/8 scale (finer for a single-scan JPEG whose height would leave its last
 *   row of blocks unread), which refuses what a full decode refuses (decode.ts says why).
 * - **reencoded**: everything else is decoded in full (libvips through sharp), turned upright by its
 *   EXIF orientation (a sideways reference breaks face matching), converted to sRGB, scaled down to
 *   MAX_REFERENCE_DIMENSION when given, and re-encoded without any metadata.
 *
 * Either way a truncated or corrupt file fails here (what the decoder reports as corrupt: what
 * libvips fails on, and what libjpeg warns of that libvips only logs — decode-warnings.ts), JPEG
 * stays JPEG and PNG stays PNG, and nothing of EXIF, GPS, XMP, IPTC, ICC, comments or trailing data
 * is stored. On request the result carries a small raw preview of the upright image, made from the
 * decode already done.
 *
 * Decoding is the worker's main CPU and memory cost, so it is bounded twice: at most
 * `availableParallelism()` images are decoded at once, each on one libvips thread (libuv's pool is
 * sized above that, src/cli.ts, so DNS lookups and files are never starved); and each decode is
 * admitted against the decode share of the memory budget by an estimate of what it holds (a 90° turn
 * holds the whole image twice; other decodes stream). libvips' operation cache is off (a cached
 * load would keep its image open, and log libjpeg's warnings only when the cache let it go).
 */
import { availableParallelism } from 'node:os';
import sharp from 'sharp';
import { JobError } from '../job/errors.ts';
import { decodeHeedingWarnings, heedingWarnings, type Listen } from './decode-warnings.ts';
import { decodeError, fitWithin, loadOptions, previewOf, validateByDecoding, validationScale, type Preview } from './decode.ts';
import { isSrgbProfile } from './icc.ts';
import { JPEG, PNG, type ImageInfo } from './images.ts';
import { stripImage, type ReencodeReason, type StripResult } from './lossless.ts';
import type { MemoryBudget } from './memory.ts';

export type { Preview } from './decode.ts';
export type { ReencodeReason } from './lossless.ts';

export interface ImageLimits {
  /** Width × height above which an image is refused before it is decoded (IMAGE_TOO_LARGE). */
  readonly maxImagePixels: number;
  /** The shorter side below which an image cannot hold a face (IMAGE_TOO_SMALL). */
  readonly minImageDimension: number;
  /** The longest side of a stored reference; larger images are scaled down. Undefined: no bound. */
  readonly maxReferenceDimension: number | undefined;
}

/** How a reference was made: stored as received without its metadata, or decoded and re-encoded. */
export type ReferencePath = 'lossless' | 'reencoded';

export interface NormalisedImage {
  /** What is stored. */
  readonly bytes: Buffer;
  readonly width: number;
  readonly height: number;
  readonly path: ReferencePath;
  /** Why a reencoded image could not be stored as received. */
  readonly reason?: ReencodeReason;
  /** Only when asked for (`NormaliseOptions.preview`). */
  readonly preview?: Preview;
}

export interface NormaliseOptions {
  /**
   * Hand back a raw RGB preview of the upright reference, its longest side at most `maxDimension`
   * (smaller when the image is). Off by default: it then costs nothing. With it, a re-encoded image
   * is decoded into memory once, for both the encode and the preview.
   */
  readonly preview?: { readonly maxDimension: number };
  /** A cancelled job stops waiting for memory or a decode slot. */
  readonly signal?: AbortSignal;
  /** Wraps those waits (the job's deadline does not run while it waits its turn). */
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

/**
 * Can the image be stored as received? The byte-level facts first (lossless.ts); then, only when
 * the removed segments could hold them, libvips' own reading of the orientation and the profile —
 * the reading `rotate()` on the re-encode path acts on, so the two paths never disagree about
 * which way is up.
 */
async function asReceived(bytes: Buffer, info: ImageInfo, label: string, limits: ImageLimits): Promise<{ stripped: StripResult; orientation: number }> {
  if (limits.maxReferenceDimension !== undefined && Math.max(info.width, info.height) > limits.maxReferenceDimension) {
    return { stripped: { ok: false, reason: 'dimension' }, orientation: 1 };
  }
  const stripped = stripImage(bytes, info.type);
  if (!stripped.ok || !stripped.mayHoldOrientationOrProfile) return { stripped, orientation: 1 };
  let metadata: sharp.Metadata;
  try {
    // A header read: libjpeg's warnings about the header come back in the validating decode.
    metadata = await heedingWarnings((listen) => listen(sharp(bytes, loadOptions(limits))).metadata());
  } catch (e: unknown) {
    throw decodeError(e, label, limits);
  }
  const orientation = metadata.orientation ?? 1;
  if (orientation !== 1) return { stripped: { ok: false, reason: 'orientation' }, orientation };
  if (metadata.icc && !isSrgbProfile(metadata.icc)) return { stripped: { ok: false, reason: 'colour profile' }, orientation };
  return { stripped, orientation };
}

// A decode that streams still holds about half the image's pixels at its peak (libvips' buffers for
// the load and the shrink that validates it), measured: test/bench/decode-memory.ts.
const STREAMING_SHARE = 0.5;

/**
 * What a decode holds at its peak, estimated from the header: the image as received and what is
 * encoded from it, plus the pixels — all of them, twice, when the image is turned 90° (before and
 * after the turn), once for a raw decode kept for the preview, about half when the decode streams.
 * Calibrated on 40-megapixel JPEGs and PNGs (README "Memory"): every estimate is above the measured peak.
 */
export function decodeMemoryEstimate(bytes: Buffer, info: ImageInfo, plan: { readonly path: ReferencePath; readonly orientation: number; readonly preview: boolean }): number {
  const pixels = info.width * info.height;
  // PNG: up to four bands, of two bytes each at 16 bits (IHDR's bit depth, byte 24).
  const bytesPerPixel = info.type === PNG ? 4 * (bytes[24] === 16 ? 2 : 1) : 3;
  const turned = plan.orientation >= 5 && plan.orientation <= 8;
  const whole = plan.path === 'reencoded' && (turned || plan.preview);
  const pixelBytes = pixels * bytesPerPixel * (whole ? (turned ? 2 : 1) : STREAMING_SHARE);
  const encoded = plan.path === 'reencoded' ? bytes.length : 0;
  return bytes.length + encoded + pixelBytes;
}

const encoderOf = (info: ImageInfo) => (image: sharp.Sharp) =>
  info.type === JPEG ? image.jpeg({ quality: JPEG_QUALITY, optimiseCoding: false }) : image.png({ compressionLevel: PNG_COMPRESSION_LEVEL });

/**
 * Decodes in full, turns upright, bounds the size and re-encodes. With a preview, the decode goes
 * to raw pixels once and both the encode and the preview are made from them.
 */
async function reencode(bytes: Buffer, info: ImageInfo, label: string, limits: ImageLimits, reason: ReencodeReason, options: NormaliseOptions): Promise<NormalisedImage> {
  // Built afresh for each run: a decode heard to warn is run again, alone. When the resize makes
  // libjpeg decode at a reduced scale, rows it may leave unread (decode.ts) are rows libvips crops
  // off, so they are not in the stored reference either.
  const decoding = (listen: Listen) => {
    let pipeline = listen(sharp(bytes, loadOptions(limits))).rotate();
    if (limits.maxReferenceDimension !== undefined) {
      const side = limits.maxReferenceDimension;
      pipeline = pipeline.resize({ width: side, height: side, fit: 'inside', withoutEnlargement: true });
    }
    return pipeline;
  };
  const encode = encoderOf(info);
  const previewMax = options.preview?.maxDimension;
  let stored: Buffer;
  let width: number;
  let height: number;
  let preview: Preview | undefined;
  try {
    if (previewMax === undefined) {
      const output = await decodeHeedingWarnings((listen) => encode(decoding(listen)).toBuffer({ resolveWithObject: true }));
      ({ data: stored, info: { width, height } } = output);
    } else {
      const decoded = await decodeHeedingWarnings((listen) => decoding(listen).raw().toBuffer({ resolveWithObject: true }));
      ({ width, height } = decoded.info);
      const raw = { raw: { width, height, channels: decoded.info.channels as 1 | 2 | 3 | 4 } };
      // One after the other: an image holds one libvips thread at a time (see imageNormaliser).
      stored = await heedingWarnings((listen) => encode(listen(sharp(decoded.data, raw))).toBuffer());
      preview = await previewOf(decoded, fitWithin({ width, height }, previewMax), width);
    }
  } catch (e: unknown) {
    throw decodeError(e, label, limits);
  }
  if (Math.min(width, height) < limits.minImageDimension) {
    throw new JobError(
      'IMAGE_TOO_SMALL',
      `${label} would be ${width}×${height} pixels once its longest side is bounded to ${limits.maxReferenceDimension} (MAX_REFERENCE_DIMENSION); its shorter side must be at least ${limits.minImageDimension}`,
    );
  }
  return { bytes: stored, width, height, path: 'reencoded', reason, ...(preview && { preview }) };
}

/** Admission to a decode: its memory first (in order), then one of the slots; released together. */
type Admit = (estimate: number, options: NormaliseOptions) => Promise<() => void>;

async function normalise(bytes: Buffer, info: ImageInfo, label: string, limits: ImageLimits, options: NormaliseOptions, admit: Admit): Promise<NormalisedImage> {
  checkDimensions(info, label, limits);
  const { stripped, orientation } = await asReceived(bytes, info, label, limits);
  const preview = options.preview !== undefined;
  const estimate = decodeMemoryEstimate(bytes, info, { path: stripped.ok ? 'lossless' : 'reencoded', orientation, preview });
  const release = await admit(estimate, options);
  try {
    if (!stripped.ok) return await reencode(bytes, info, label, limits, stripped.reason, options);
    const scale = validationScale(info, stripped.progressive);
    const small = await validateByDecoding(bytes, info, label, limits, scale, options.preview?.maxDimension);
    return { bytes: stripped.strip(), width: info.width, height: info.height, path: 'lossless', ...(small && { preview: small }) };
  } finally {
    release();
  }
}

/** A counting semaphore whose waits a cancelled job leaves. */
function slots(count: number) {
  let free = count;
  const line: { take: () => void; leave: () => void }[] = [];
  const release = () => {
    const next = line.shift();
    if (next) next.take();
    else free += 1;
  };
  const acquire = (signal?: AbortSignal): Promise<void> => {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (free > 0) {
      free -= 1;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        take: () => {
          signal?.removeEventListener('abort', waiter.leave);
          resolve();
        },
        leave: () => {
          const at = line.indexOf(waiter);
          if (at >= 0) line.splice(at, 1);
          reject(signal?.reason);
        },
      };
      signal?.addEventListener('abort', waiter.leave, { once: true });
      line.push(waiter);
    });
  };
  return { acquire, release };
}

/**
 * The normaliser the worker uses: at most `parallel` images at once (default: one per core), each
 * admitted against `memory` (the decode share of MAX_IN_FLIGHT_BYTES) when given. Sets sharp's
 * process-wide options (one libvips thread per image, no operation cache) when created.
 */
export function imageNormaliser(options: { parallel?: number; memory?: MemoryBudget } = {}): ImageNormaliser {
  sharp.concurrency(1);
  sharp.cache(false);
  const decoding = slots(Math.max(1, options.parallel ?? availableParallelism()));
  const { memory } = options;
  const admit: Admit = async (estimate, { signal, waitFor }) => {
    const wait = async () => {
      const grant = memory ? await memory.acquire(estimate, { ...(signal ? { signal } : {}) }) : undefined;
      try {
        await decoding.acquire(signal);
      } catch (e: unknown) {
        grant?.release();
        throw e;
      }
      return () => {
        decoding.release();
        grant?.release();
      };
    };
    return waitFor ? waitFor(wait()) : wait();
  };
  return (bytes, info, label, limits, normaliseOptions = {}) => normalise(bytes, info, label, limits, normaliseOptions, admit);
}
