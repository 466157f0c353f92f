/**
 * Decoding with libvips through sharp: the validating decode of an image stored as received, the
 * size it decodes at, the small upright preview it can hand back, and what a decoder's complaint
 * becomes (a job error, or a transient failure when the machine is short of memory).
 *
 * libjpeg can decode at 1/2, 1/4 or 1/8 scale (DCT scaling), still parsing every entropy-coded
 * block. But libvips asks libjpeg for 8 rows at a time and looks at libjpeg's warnings before each
 * 8-row strip, never after the last one: a warning raised while the last strip is decoded is only
 * logged. At full scale that strip is the last 8 rows; at 1/2 it is 16 rows of the photo, at 1/8,
 * 64 — so a baseline (single-scan) JPEG decoded at a reduced scale lets through damage that shows
 * only at its end (a scan cut short, a decoder thrown out of step by a dropped byte), which a full
 * decode refuses: test/corpus/jpeg-scales.ts counted them at 1/2, 1/4 and 1/8 alike. A progressive
 * JPEG is different: libjpeg reads all of its scans into memory before the first row is produced,
 * so every warning is seen before the first strip, at any scale — not one corrupted progressive file
 * in the corpus was refused at full scale and let through at 1/8 (test/unit/lossless.corpus.test.ts
 * keeps a subset as a test). So: progressive JPEGs are validated at 1/8, everything else in full.
 *
 * sharp has no option for the scale: it picks it from the resize that follows the load (pipeline.cc,
 * sharp 0.34): with `fastShrinkOnLoad: false` it loads at 1/2, 1/4 or 1/8 when the smaller of the
 * two shrink factors reaches 4, 8 or 16 (`loadScaleOf`). Every resize here is planned against that
 * rule (`decodePlan`), and a unit test holds a baseline file that only a reduced-scale decode
 * accepts, so a sharp that picked differently would fail it.
 */
import sharp from 'sharp';
import { JobError } from '../job/errors.ts';
import { JPEG, type ImageInfo } from './images.ts';
import type { ImageLimits } from './normalise.ts';

/** The scale a progressive JPEG is validated at: 1/8. */
export const PROGRESSIVE_SCALE = 8;
/** 1: full scale; 8: 1/8 (progressive JPEGs only). */
export type ValidationScale = 1 | typeof PROGRESSIVE_SCALE;

/**
 * From this many pixels a progressive JPEG is validated at 1/8; below, a full decode costs no more
 * (the load at 1/8 reads the header twice and resamples). Measured: test/bench/normalise.ts.
 */
export const PROGRESSIVE_SCALE_MIN_PIXELS = 500_000;

/** Full scale, but 1/8 for a progressive JPEG large enough to gain from it. */
export function validationScale(size: Size, progressive: boolean): ValidationScale {
  return progressive && size.width * size.height >= PROGRESSIVE_SCALE_MIN_PIXELS ? PROGRESSIVE_SCALE : 1;
}

/**
 * Below this many pixels a validating decode that needs no preview hands back raw pixels (the
 * cheapest sink: 15–20 % less CPU than streaming into a smaller image up to 4 MP, measured with
 * test/bench/normalise.ts), at most 12 MB; from it, the decode streams into a small image, with no
 * full-size buffer.
 */
export const RAW_SINK_MAX_PIXELS = 4_000_000;

/** A small raw image of the upright reference for the face check: RGB, 3 bytes a pixel, row by row. */
export interface Preview {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: 3;
  /** Preview pixels per stored pixel (1 when the preview is the whole reference). */
  readonly scale: number;
}

export interface Size {
  readonly width: number;
  readonly height: number;
}

/** The size within `max` on its longest side, aspect kept, never enlarged. */
export function fitWithin(size: Size, max: number): Size {
  const longest = Math.max(size.width, size.height);
  if (longest <= max) return size;
  const factor = max / longest;
  return { width: Math.max(1, Math.round(size.width * factor)), height: Math.max(1, Math.round(size.height * factor)) };
}

/**
 * The scale libjpeg decodes at when sharp 0.34 resizes `from` to `to` (fit 'fill', fastShrinkOnLoad
 * false): the load shrink is 2, 4 or 8 when the smaller shrink factor reaches 4, 8 or 16.
 */
export function loadScaleOf(from: Size, to: Size): 1 | 2 | 4 | 8 {
  const shrink = Math.min(from.width / to.width, from.height / to.height);
  if (shrink >= 16) return 8;
  if (shrink >= 8) return 4;
  if (shrink >= 4) return 2;
  return 1;
}

/**
 * What a validating decode produces: `output`, the size the decode is resized to (undefined: the
 * decoded image itself, as raw pixels), and the preview — `output` itself, or a size made from
 * `output`'s pixels in a second, cheap step (never a second decode).
 */
export interface DecodePlan {
  readonly output: Size | undefined;
  readonly preview: 'output' | Size | undefined;
}

/**
 * The sizes of a validating decode at `scale` (for a JPEG: the coarsest load scale allowed; a PNG
 * has no reduced decode, so no resize of it can change what is decoded).
 */
export function decodePlan(size: Size & { readonly type: ImageInfo['type'] }, scale: ValidationScale, previewMax: number | undefined): DecodePlan {
  const isJpeg = size.type === JPEG;
  const allowed = (to: Size) => !isJpeg || loadScaleOf(size, to) <= scale;
  const shrunk = (by: number) => ({ width: Math.max(1, Math.floor(size.width / by)), height: Math.max(1, Math.floor(size.height / by)) });
  // The smallest output that still decodes at `scale`: a JPEG at full scale shrunk by 3.5 (under
  // 4; the cheapest there, measured), at 1/8 shrunk by 16; a PNG by 8, anything goes.
  const smallest = isJpeg ? (scale === 1 ? { width: Math.ceil(size.width / 3.5), height: Math.ceil(size.height / 3.5) } : shrunk(2 * scale)) : shrunk(8);
  if (previewMax === undefined) {
    // The output is thrown away: raw pixels when they are few, else the smallest stream.
    if (scale === 1 && size.width * size.height < RAW_SINK_MAX_PIXELS) return { output: undefined, preview: undefined };
    return { output: smallest, preview: undefined };
  }
  const fitted = fitWithin(size, previewMax);
  if (fitted.width === size.width && fitted.height === size.height) return { output: undefined, preview: 'output' };
  if (allowed(fitted)) return { output: fitted, preview: 'output' };
  // A preview much smaller than the image, of a JPEG decoded in full: the decode streams into the
  // smallest output, and the preview is made from that.
  return { output: smallest, preview: fitWithin(smallest, previewMax) };
}

/** One line, at most 200 characters, of what libvips said. */
function reasonOf(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const line = (text.split('\n').find((l) => l.trim() !== '') ?? 'unknown error').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** What a libvips failure means for the job. */
export function decodeError(e: unknown, label: string, limits: ImageLimits): Error {
  const reason = reasonOf(e);
  // The machine's fault, not the image's: a transient failure, retried rather than dead-lettered.
  if (/out of memory|memory allocation|cannot allocate|insufficient memory/i.test(reason)) {
    return new Error(`${label} could not be decoded for lack of memory: ${reason}`, { cause: e });
  }
  if (/pixel limit/i.test(reason)) {
    return new JobError('IMAGE_TOO_LARGE', `${label} is over the limit of ${limits.maxImagePixels} pixels (MAX_IMAGE_PIXELS)`, { cause: e });
  }
  return new JobError('INVALID_IMAGE', `${label} could not be decoded: ${reason}`, { cause: e });
}

export const loadOptions = (limits: ImageLimits): sharp.SharpOptions => ({ limitInputPixels: limits.maxImagePixels, failOn: 'warning' });

/** A resize that keeps sharp's choice of load scale predictable (see loadScaleOf). */
const resizeTo = (size: Size): sharp.ResizeOptions => ({ ...size, fit: 'fill', fastShrinkOnLoad: false, kernel: 'linear' });

/**
 * Raw pixels → a preview of at most `size`, made without decoding anything: RGB on white (alpha
 * flattened), scaled down when `size` is smaller.
 */
export async function previewOf(raw: { data: Buffer; info: sharp.OutputInfo }, size: Size, storedWidth: number): Promise<Preview> {
  const { width, height, channels } = raw.info;
  let image = sharp(raw.data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } }).flatten({ background: '#ffffff' }).toColourspace('srgb');
  if (size.width !== width || size.height !== height) image = image.resize(resizeTo(size));
  const out = await image.raw().toBuffer({ resolveWithObject: true });
  return rgbPreview(out, storedWidth);
}

function rgbPreview(raw: { data: Buffer; info: sharp.OutputInfo }, storedWidth: number): Preview {
  if (raw.info.channels !== 3) throw new Error(`a preview of ${raw.info.channels} channels, not 3`);
  return { data: raw.data, width: raw.info.width, height: raw.info.height, channels: 3, scale: raw.info.width / storedWidth };
}

/**
 * Decodes the image as received, refusing what the decoder reports as corrupt (failOn 'warning'),
 * at `scale` (1 but for progressive JPEGs; a PNG has no reduced decode: its cost is inflate).
 * Returns the preview when one is asked for.
 */
export async function validateByDecoding(
  bytes: Buffer,
  info: ImageInfo,
  label: string,
  limits: ImageLimits,
  scale: ValidationScale,
  previewMax: number | undefined,
): Promise<Preview | undefined> {
  if (scale !== 1 && info.type !== JPEG) throw new TypeError('only a JPEG decodes at a reduced scale');
  const plan = decodePlan(info, scale, previewMax);
  // An image on this path has no profile or an sRGB one: converting sRGB to sRGB would change no
  // pixel and cost a colour transform of every one.
  let image = sharp(bytes, { ...loadOptions(limits), ignoreIcc: true });
  if (plan.preview === 'output') image = image.flatten({ background: '#ffffff' }).toColourspace('srgb');
  if (plan.output) image = image.resize(resizeTo(plan.output));
  let decoded: { data: Buffer; info: sharp.OutputInfo };
  try {
    decoded = await image.raw().toBuffer({ resolveWithObject: true });
  } catch (e: unknown) {
    throw decodeError(e, label, limits);
  }
  if (plan.preview === undefined) return undefined;
  if (plan.preview === 'output') return rgbPreview(decoded, info.width);
  return previewOf(decoded, plan.preview, info.width);
}
