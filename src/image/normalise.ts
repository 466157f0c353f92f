/**
 * A checked image → the reference that is stored. A reference is always **written anew** from what
 * the decoder decoded; nothing of the received file reaches S3 but the image data itself:
 *
 * - **rebuilt** (JPEG, upright): libjpeg-turbo reads the DCT coefficients and quantisation tables
 *   and writes a new baseline JPEG from them (jpeg.ts): SOI, the tables the frame uses, SOF,
 *   the standard Huffman tables, one scan, EOI. Its decoded pixels are the received file's, bit for
 *   bit. Reading the coefficients entropy-decodes every block, and any error or warning refuses the
 *   image: it validates as a full decode does, without the inverse DCT.
 * - **turned** (JPEG, EXIF orientation 2–8, whole MCUs along every edge the turn moves): the same,
 *   turned upright in the coefficient domain. No requantisation: the pixels are the received ones,
 *   moved (within the inverse DCT's rounding of ±a few levels at block edges).
 * - **reencoded**: everything else (a turn that is not exact, an ICC profile other than sRGB, CMYK,
 *   RGB-coded components, larger than MAX_REFERENCE_DIMENSION) is decoded in full by libvips
 *   (sharp), turned upright, converted to sRGB, scaled down when asked and encoded anew (JPEG at
 *   quality 92). A PNG is always decoded and written anew, which loses nothing: IHDR, IDAT, IEND,
 *   no palette (a palette image is written as the truecolour pixels it decodes to, transparency as
 *   an alpha channel); its path is `rebuilt` when no pixel changed, `reencoded` when one did.
 *
 * What the decoder reads is the one truth about the image: its size, components, sampling and scans
 * come from libjpeg (or libvips for a PNG); the header walk that sized the image for admission must
 * agree with it, or the image is refused (INVALID_IMAGE, saying what disagreed).
 *
 * On request the result carries a small raw preview of the upright reference for the face check,
 * decoded from what is stored (a rebuilt JPEG decodes at a reduced scale, streaming).
 *
 * Decoding is the worker's main CPU and memory cost, so it is bounded twice: at most
 * `availableParallelism()` images are decoded at once, each on one thread (libuv's pool is sized
 * above that, src/cli.ts); and each decode is admitted against the decode share of the memory
 * budget by an estimate of what it holds (`decodeMemoryEstimate`). libvips' operation cache is off.
 */
import { availableParallelism } from 'node:os';
import sharp from 'sharp';
import { JobError } from '../job/errors.ts';
import { decodeHeedingWarnings, heedingWarnings, type Listen } from './decode-warnings.ts';
import { decodeError, fitWithin, loadOptions, previewOf, type Preview } from './decode.ts';
import { isSrgbProfile } from './icc.ts';
import { JPEG, MAX_JPEG_SCANS, PNG, walkPng, type CheckedImageInfo, type ImageInfo } from './images.ts';
import { jpegCodec, JpegError, type JpegCodec, type JpegFacts } from './jpeg.ts';

export type { Preview } from './decode.ts';

export interface ImageLimits {
  /** Width × height above which an image is refused before it is decoded (IMAGE_TOO_LARGE). */
  readonly maxImagePixels: number;
  /** The shorter side below which an image cannot hold a face (IMAGE_TOO_SMALL). */
  readonly minImageDimension: number;
  /** The longest side of a stored reference; larger images are scaled down. Undefined: no bound. */
  readonly maxReferenceDimension: number | undefined;
}

/** How a reference was made (the `path` of the log line and of the metric). */
export type ReferencePath = 'rebuilt' | 'turned' | 'reencoded';

/** Why an image is re-encoded rather than rebuilt from its coefficients. A metric label: a short, bounded set. */
export type ReencodeReason =
  /** EXIF orientation 2–8 where the image is not whole MCUs along an edge the turn moves. */
  | 'orientation'
  /** An ICC profile other than sRGB: the colours must be converted. */
  | 'colour profile'
  /** Four components (CMYK or YCCK). */
  | 'cmyk'
  /** Three components coded as RGB (or a colour space libjpeg cannot name). */
  | 'colour transform'
  /** Over MAX_REFERENCE_DIMENSION: it must be scaled down. */
  | 'dimension'
  /** A PNG turned, converted or scaled: its pixels change. */
  | 'png';

export interface NormalisedImage {
  /** What is stored. */
  readonly bytes: Buffer;
  readonly width: number;
  readonly height: number;
  readonly path: ReferencePath;
  /** Why a reencoded image could not be rebuilt. */
  readonly reason?: ReencodeReason;
  /** Only when asked for (`NormaliseOptions.preview`). */
  readonly preview?: Preview;
}

export interface NormaliseOptions {
  /**
   * Hand back a raw RGB preview of the upright reference, its longest side at most `maxDimension`
   * (smaller when the image is). Off by default: it then costs nothing.
   */
  readonly preview?: { readonly maxDimension: number };
  /** A cancelled job stops waiting for memory or a decode slot. */
  readonly signal?: AbortSignal;
  /** Wraps those waits. */
  readonly waitFor?: <T>(wait: Promise<T>) => Promise<T>;
}

export type ImageNormaliser = (bytes: Buffer, info: CheckedImageInfo, label: string, limits: ImageLimits, options?: NormaliseOptions) => Promise<NormalisedImage>;

/**
 * JPEG quality of re-encoded references: high, with the default 4:2:0 chroma subsampling and
 * standard Huffman tables (optimising them costs about the whole re-encode again for a few per cent).
 */
export const JPEG_QUALITY = 92;
/**
 * zlib level of written PNGs, chosen by measurement (test/bench/normalise.ts; photographs of 0.2–3 MP,
 * CPU per image against bytes): level 3 writes the same bytes as 6 for ~25 % less CPU; level 1
 * halves 6's CPU for ~19 % more bytes; 9 saves ~9 % of bytes for ~15 % more CPU than 6. References
 * are read far more often than written: the bytes of 6 at less CPU.
 */
export const PNG_COMPRESSION_LEVEL = 3;

/** The checks that need only the dimensions: no decoding for an image that will be refused. */
export function checkDimensions(info: { readonly width: number; readonly height: number }, label: string, limits: ImageLimits): void {
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

/** The header walk and the decoder must read the same image. */
function agree(info: ImageInfo, decoded: { readonly width: number; readonly height: number }, label: string): void {
  if (decoded.width !== info.width || decoded.height !== info.height) {
    throw new JobError('INVALID_IMAGE', `${label}: its header reads ${info.width}×${info.height} pixels but the decoder reads ${decoded.width}×${decoded.height}`);
  }
}

/**
 * How much a rebuild may write: twice the input and a mebibyte (a progressive file written
 * baseline grows a few per cent; a file of long end-of-band runs a few bits a block). Past it, the
 * image is refused rather than held.
 */
export const rebuildCeiling = (inputBytes: number) => 2 * inputBytes + 2 ** 20;

/** libjpeg's own state beside the coefficients (Huffman tables, row pointers, buffers): measured under 1 MiB. */
const CODEC_OVERHEAD = 2 ** 20;
/** A preview decoded from a rebuilt (baseline) JPEG at a reduced scale streams: its buffers, and the preview (≤ 1024² RGB). */
const PREVIEW_BYTES = 8 * 2 ** 20;
// A libvips decode that streams still holds about half the image's pixels at its peak (its buffers for
// the load and the shrink), measured: test/bench/decode-memory.ts.
const STREAMING_SHARE = 0.5;

/** What an image is and how it will be made into a reference: everything the estimate and the work need. */
export interface ReferencePlan {
  readonly type: ImageInfo['type'];
  readonly width: number;
  readonly height: number;
  readonly path: ReferencePath;
  readonly reason?: ReencodeReason;
  /** EXIF orientation (1 when none). */
  readonly orientation: number;
  /** JPEG: the coefficients libjpeg holds while it reads the whole image (every rebuild, every progressive decode). */
  readonly coefficientBytes: number;
  readonly progressive: boolean;
  /** PNG: bytes per pixel decoded (up to four bands, two bytes each at 16 bits). */
  readonly bytesPerPixel: number;
  /** PNG: one or two bands (grey, grey and alpha). */
  readonly grey?: boolean;
}

/**
 * What making the reference holds at its peak: the input, what is written, and the decode —
 * the coefficients for a rebuild (twice when turned: before and after), libvips' pixels for a
 * re-encode (all of them, twice, when turned 90°; once when kept for the preview; about half when
 * the decode streams), plus the coefficients libjpeg holds for a progressive file whatever the scale.
 * Calibrated on 40-megapixel images (docs/images.md "Memory"): every estimate is above the measured peak.
 */
export function decodeMemoryEstimate(inputBytes: number, plan: ReferencePlan, preview: boolean): number {
  if (plan.path !== 'reencoded' && plan.type === JPEG) {
    const coefficients = plan.coefficientBytes * (plan.path === 'turned' ? 2 : 1);
    // The input twice: the codec reads its own copy (the Buffer's memory could be detached meanwhile).
    return 2 * inputBytes + rebuildCeiling(inputBytes) + coefficients + CODEC_OVERHEAD + (preview ? PREVIEW_BYTES : 0);
  }
  const pixels = plan.width * plan.height;
  const turned = plan.orientation >= 5 && plan.orientation <= 8;
  // Turned: the pixels before and after the turn. A preview: the decoded pixels kept for it while
  // the encoder's buffers run beside them (measured: half as much again).
  const pixelBytes = pixels * plan.bytesPerPixel * (turned ? 2 : preview ? 1.5 : STREAMING_SHARE);
  const progressive = plan.progressive ? plan.coefficientBytes : 0;
  // A PNG written anew is about its input's size (the same pixels, deflated), a JPEG re-encoded smaller.
  const written = Math.ceil(inputBytes * 1.5) + 2 ** 20;
  return inputBytes + written + pixelBytes + progressive;
}

/** Orientation and profile as libvips reads them — the reading `rotate()` acts on — asked only when a segment could hold them. */
async function orientationAndProfile(bytes: Buffer, info: CheckedImageInfo, label: string, limits: ImageLimits): Promise<{ orientation: number; foreignProfile: boolean }> {
  if (!info.mayHoldOrientationOrProfile) return { orientation: 1, foreignProfile: false };
  let metadata: sharp.Metadata;
  try {
    metadata = await heedingWarnings((listen) => listen(sharp(bytes, loadOptions(limits))).metadata());
  } catch (e: unknown) {
    throw decodeError(e, label, limits);
  }
  return { orientation: metadata.orientation ?? 1, foreignProfile: metadata.icc !== undefined && !isSrgbProfile(metadata.icc) };
}

/** Its longer side past MAX_REFERENCE_DIMENSION: the same whether it is turned or not. */
const tooLargeForReference = (size: { width: number; height: number }, limits: ImageLimits) =>
  limits.maxReferenceDimension !== undefined && Math.max(size.width, size.height) > limits.maxReferenceDimension;

function jpegRefusal(e: unknown, label: string): unknown {
  return e instanceof JpegError ? new JobError('INVALID_IMAGE', `${label} could not be decoded: ${e.message}`, { cause: e }) : e;
}

async function planJpeg(codec: JpegCodec, bytes: Buffer, info: CheckedImageInfo, label: string, limits: ImageLimits): Promise<ReferencePlan> {
  let facts: JpegFacts;
  try {
    facts = codec.inspect(bytes, MAX_JPEG_SCANS);
  } catch (e: unknown) {
    throw jpegRefusal(e, label);
  }
  // Agreeing with the header, whose dimensions planReference has checked, the frame needs no check of its own.
  agree(info, facts, label);
  const { orientation, foreignProfile } = await orientationAndProfile(bytes, info, label, limits);
  const reason: ReencodeReason | undefined =
    facts.colorSpace === 'cmyk' || facts.colorSpace === 'ycck'
      ? 'cmyk'
      : facts.colorSpace !== 'ycbcr' && facts.colorSpace !== 'grey'
        ? 'colour transform'
        : foreignProfile
          ? 'colour profile'
          : tooLargeForReference(facts, limits)
            ? 'dimension'
            : facts.perfect[orientation - 1] === true
              ? undefined
              : 'orientation';
  const path: ReferencePath = reason ? 'reencoded' : orientation === 1 ? 'rebuilt' : 'turned';
  return { type: JPEG, width: facts.width, height: facts.height, path, ...(reason && { reason }), orientation, coefficientBytes: facts.coefficientBytes, progressive: facts.progressive, bytesPerPixel: 3 };
}

async function planPng(bytes: Buffer, info: CheckedImageInfo, label: string, limits: ImageLimits): Promise<ReferencePlan> {
  let metadata: sharp.Metadata;
  try {
    metadata = await heedingWarnings((listen) => listen(sharp(bytes, loadOptions(limits))).metadata());
  } catch (e: unknown) {
    throw decodeError(e, label, limits);
  }
  const size = { width: metadata.width, height: metadata.height };
  agree(info, size, label);
  const orientation = metadata.orientation ?? 1;
  const changes = orientation !== 1 || (metadata.icc !== undefined && !isSrgbProfile(metadata.icc)) || tooLargeForReference(size, limits);
  const bytesPerPixel = 4 * (metadata.depth === 'ushort' ? 2 : 1);
  const grey = (metadata.channels ?? 3) <= 2;
  return { type: PNG, ...size, path: changes ? 'reencoded' : 'rebuilt', ...(changes && { reason: 'png' as const }), orientation, coefficientBytes: 0, progressive: false, bytesPerPixel, grey };
}

/** A preview of a stored JPEG, decoded from the stored bytes themselves (a clean baseline file: it streams). */
async function previewOfStored(stored: Buffer, size: { width: number; height: number }, max: number): Promise<Preview> {
  const fitted = fitWithin(size, max);
  const out = await heedingWarnings((listen) =>
    listen(sharp(stored, { failOn: 'warning' }))
      .resize({ ...fitted, fit: 'fill' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true }),
  );
  if (out.info.channels !== 3) throw new Error(`a preview of ${out.info.channels} channels, not 3`);
  return { data: out.data, width: out.info.width, height: out.info.height, channels: 3, scale: out.info.width / size.width };
}

/** Rebuilt or turned in the coefficient domain; the decoder's scans must be the walk's. */
async function rebuild(codec: JpegCodec, bytes: Buffer, info: CheckedImageInfo, plan: ReferencePlan, label: string, options: NormaliseOptions): Promise<NormalisedImage> {
  let rebuilt;
  try {
    rebuilt = await codec.rebuild(bytes, plan.orientation, { maxScans: MAX_JPEG_SCANS, maxBytes: rebuildCeiling(bytes.length) });
  } catch (e: unknown) {
    throw jpegRefusal(e, label);
  }
  if (rebuilt.scans !== info.scans) {
    throw new JobError('INVALID_IMAGE', `${label}: its structure holds ${info.scans} scans but the decoder read ${rebuilt.scans}`);
  }
  const previewMax = options.preview?.maxDimension;
  const preview = previewMax === undefined ? undefined : await previewOfStored(rebuilt.data, rebuilt, previewMax);
  return { bytes: rebuilt.data, width: rebuilt.width, height: rebuilt.height, path: plan.path, ...(preview && { preview }) };
}

/**
 * The encoder for a plan: JPEG at JPEG_QUALITY; PNG at its own bit depth (libvips writes 8 bits
 * unless told the pixels are 16-bit), never a palette (sharp's is quantised: lossy).
 */
const encoderOf = (plan: ReferencePlan) => (image: sharp.Sharp) => {
  if (plan.type === JPEG) return image.jpeg({ quality: JPEG_QUALITY, optimiseCoding: false });
  const deep = plan.bytesPerPixel === 8 ? image.toColourspace(plan.grey ? 'grey16' : 'rgb16') : image;
  return deep.png({ compressionLevel: PNG_COMPRESSION_LEVEL, palette: false });
};

/** The chunks a written PNG keeps: libvips adds pHYs (the input's resolution, the sender's bytes) — dropped. */
const IMAGE_CHUNKS = new Set(['IHDR', 'PLTE', 'tRNS', 'IDAT', 'IEND']);

/** Our own encoder's PNG with only its image chunks. */
export function imageChunksOnly(png: Buffer): Buffer {
  const kept: Buffer[] = [png.subarray(0, 8)];
  walkPng(png, (start, end) => {
    if (IMAGE_CHUNKS.has(png.toString('latin1', start + 4, start + 8))) kept.push(png.subarray(start, end));
  });
  return Buffer.concat(kept);
}

/**
 * Decodes in full, turns upright, converts to sRGB, bounds the size and encodes anew. With a
 * preview, the decode goes to raw pixels once and both the encode and the preview are made from them.
 */
async function reencode(bytes: Buffer, plan: ReferencePlan, label: string, limits: ImageLimits, options: NormaliseOptions): Promise<NormalisedImage> {
  // Built afresh for each run: a decode heard to warn is run again, alone (decode-warnings.ts).
  const decoding = (listen: Listen) => {
    let pipeline = listen(sharp(bytes, loadOptions(limits))).rotate();
    if (limits.maxReferenceDimension !== undefined) {
      const side = limits.maxReferenceDimension;
      pipeline = pipeline.resize({ width: side, height: side, fit: 'inside', withoutEnlargement: true });
    }
    return pipeline;
  };
  const encode = encoderOf(plan);
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
  if (plan.type === PNG) stored = imageChunksOnly(stored);
  if (Math.min(width, height) < limits.minImageDimension) {
    throw new JobError(
      'IMAGE_TOO_SMALL',
      `${label} would be ${width}×${height} pixels once its longest side is bounded to ${limits.maxReferenceDimension} (MAX_REFERENCE_DIMENSION); its shorter side must be at least ${limits.minImageDimension}`,
    );
  }
  return { bytes: stored, width, height, path: plan.path, ...(plan.reason && { reason: plan.reason }), ...(preview && { preview }) };
}

/** The decode share of the memory budget (a MemoryBudget of enroll/memory.ts): waits until `bytes` fit. */
export interface DecodeMemory {
  acquire(bytes: number, options?: { readonly signal?: AbortSignal }): Promise<{ release(): void }>;
}

/** Admission to a decode: its memory first (in order), then one of the slots; released together. */
type Admit = (estimate: number, options: NormaliseOptions) => Promise<() => void>;

/** What the image is, as its decoder reads it, and how it will become a reference. Refuses what it can before any decoding. */
export function planReference(bytes: Buffer, info: CheckedImageInfo, label: string, limits: ImageLimits, codec: JpegCodec = jpegCodec()): Promise<ReferencePlan> {
  checkDimensions(info, label, limits);
  return info.type === JPEG ? planJpeg(codec, bytes, info, label, limits) : planPng(bytes, info, label, limits);
}

async function normalise(codec: JpegCodec, bytes: Buffer, info: CheckedImageInfo, label: string, limits: ImageLimits, options: NormaliseOptions, admit: Admit): Promise<NormalisedImage> {
  const plan = await planReference(bytes, info, label, limits, codec);
  const release = await admit(decodeMemoryEstimate(bytes.length, plan, options.preview !== undefined), options);
  try {
    return plan.path !== 'reencoded' && plan.type === JPEG ? await rebuild(codec, bytes, info, plan, label, options) : await reencode(bytes, plan, label, limits, options);
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
export function imageNormaliser(options: { parallel?: number; memory?: DecodeMemory; jpeg?: JpegCodec } = {}): ImageNormaliser {
  const codec = options.jpeg ?? jpegCodec();
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
  return (bytes, info, label, limits, normaliseOptions = {}) => normalise(codec, bytes, info, label, limits, normaliseOptions, admit);
}
