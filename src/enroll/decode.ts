/**
 * Decoding with libvips through sharp: the validating decode of an image stored as received, the
 * size it decodes at, the small upright preview it can hand back, and what a decoder's complaint
 * becomes (a job error, or a transient failure when the machine is short of memory).
 *
 * A JPEG is validated at a reduced scale when it is large enough to gain from it: libjpeg can
 * decode at 1/2, 1/4 or 1/8 (DCT scaling), still parsing every entropy-coded block, which is where
 * damage shows. Two things in libvips (8.17) stand between that and "refuses what a full decode
 * refuses", and both are dealt with:
 *
 * - libvips looks at libjpeg's warnings before each 8-row strip it decodes, never after the last
 *   one; a warning raised in the last strip is only logged. At 1/8 that strip holds 64 rows of the
 *   photo, not 8. So every decode here heeds the logged warnings too (decode-warnings.ts): a JPEG
 *   whose decode makes libjpeg warn is refused, at any scale.
 * - libvips crops a reduced decode to floor(height / scale) rows where libjpeg makes ceil(...).
 *   The last, partial row is still decoded when it falls in the last strip libvips reads, but not
 *   when it would begin a strip of its own: then the last row of blocks of a single-scan JPEG is
 *   never read at all (`readsEveryRow`). Such a JPEG gets the next finer scale that reads it.
 *
 * A progressive JPEG has neither problem: libjpeg reads all of its scans into memory before the
 * first row is produced. test/corpus/jpeg-scales.ts holds the evidence (README "What it writes");
 * test/unit/lossless.corpus.test.ts keeps a part of it as a test.
 *
 * sharp has no option for the scale: it picks it from the resize that follows the load (pipeline.cc,
 * sharp 0.34): with `fastShrinkOnLoad: false` it loads at 1/2, 1/4 or 1/8 when the smaller of the
 * two shrink factors reaches 4, 8 or 16 (`loadScaleOf`). Every resize here is planned against that
 * rule (`decodePlan`), and unit tests hold files whose damage only some scales see.
 */
import sharp from 'sharp';
import { JobError } from '../job/errors.ts';
import { decodeHeedingWarnings, heedingWarnings, type Listen } from './decode-warnings.ts';
import { JPEG, type ImageInfo } from './images.ts';
import type { ImageLimits } from './normalise.ts';

/** The scale a JPEG is validated at: 1 (full), 1/2, 1/4 or 1/8 (JPEGs only). */
export type ValidationScale = 1 | 2 | 4 | 8;
/** The coarsest: 1/8. */
export const REDUCED_SCALE = 8;

/**
 * From this many pixels a JPEG is validated at a reduced scale; below, a full decode costs no more
 * (the reduced load reads the header twice and resamples): baseline and progressive alike, 1/8
 * costs more at 0.12 MP, as much at 0.18 and 15 % less at 0.3 (test/bench/normalise.ts).
 */
export const REDUCED_SCALE_MIN_PIXELS = 200_000;

/** The rows libvips asks libjpeg for at a time (jpeg2vips.c). */
const STRIP_ROWS = 8;

/**
 * Does a decode at 1/`scale` read every row of blocks of a single-scan JPEG `height` rows high?
 * Not when floor(height / scale) rows, all libvips keeps, end a strip exactly and a partial row
 * follows (height not a multiple of `scale`): the rows of the photo after the last whole output
 * row are never decoded — at 1/8, the heights 64k+1 … 64k+7 (for 4:2:0 as for 4:4:4 and grey).
 */
export function readsEveryRow(height: number, scale: ValidationScale): boolean {
  return height % scale === 0 || Math.floor(height / scale) % STRIP_ROWS !== 0;
}

/** The coarsest scale that validates a JPEG `height` rows high: 1/8, or for a single-scan one the coarsest that reads every row of blocks. */
export function reducedScale(height: number, progressive: boolean): ValidationScale {
  if (progressive) return REDUCED_SCALE;
  return ([8, 4, 2] as const).find((scale) => readsEveryRow(height, scale)) ?? 1;
}

/** Full scale below REDUCED_SCALE_MIN_PIXELS and for PNGs; else the reduced scale. */
export function validationScale(info: Size & { readonly type: ImageInfo['type'] }, progressive: boolean): ValidationScale {
  if (info.type !== JPEG || info.width * info.height < REDUCED_SCALE_MIN_PIXELS) return 1;
  return reducedScale(info.height, progressive);
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
 * has no reduced decode, so no resize of it can change what is decoded). A JPEG may also load at a
 * finer scale (for a preview), but only one that reads every row of blocks (`readsEveryRow`).
 */
export function decodePlan(size: Size & { readonly type: ImageInfo['type'] }, scale: ValidationScale, previewMax: number | undefined): DecodePlan {
  const isJpeg = size.type === JPEG;
  const reads = (s: ValidationScale) => s === scale || (s < scale && readsEveryRow(size.height, s));
  const allowed = (to: Size) => !isJpeg || reads(loadScaleOf(size, to));
  const shrunk = (by: number) => ({ width: Math.max(1, Math.floor(size.width / by)), height: Math.max(1, Math.floor(size.height / by)) });
  // The smallest output that still decodes at `s`: a JPEG at full scale shrunk by 3.5 (under 4;
  // the cheapest there, measured), at 1/s shrunk by 2s; a PNG by 8, anything goes.
  const smallestAt = (s: ValidationScale) => (isJpeg ? (s === 1 ? { width: Math.ceil(size.width / 3.5), height: Math.ceil(size.height / 3.5) } : shrunk(2 * s)) : shrunk(8));
  // The smallest output allowed at `at` or finer (a side too short to shrink 2s times loads finer).
  const smallestAllowed = (at: ValidationScale) => {
    for (const s of [8, 4, 2] as const) if (s <= at && allowed(smallestAt(s))) return smallestAt(s);
    return smallestAt(1);
  };
  if (previewMax === undefined) {
    // The output is thrown away: raw pixels when they are few, else the smallest stream.
    if (scale === 1 && size.width * size.height < RAW_SINK_MAX_PIXELS) return { output: undefined, preview: undefined };
    return { output: smallestAllowed(scale), preview: undefined };
  }
  const fitted = fitWithin(size, previewMax);
  if (fitted.width === size.width && fitted.height === size.height) return { output: undefined, preview: 'output' };
  if (allowed(fitted)) return { output: fitted, preview: 'output' };
  // A preview of a JPEG that would load at a scale not allowed (coarser than `scale`, or one that
  // skips rows): the decode streams into the smallest output allowed no coarser than the
  // preview's, and the preview is made from that.
  const output = smallestAllowed(loadScaleOf(size, fitted));
  return { output, preview: fitWithin(output, previewMax) };
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
  const out = await heedingWarnings((listen) => {
    let image = listen(sharp(raw.data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } })).flatten({ background: '#ffffff' }).toColourspace('srgb');
    if (size.width !== width || size.height !== height) image = image.resize(resizeTo(size));
    return image.raw().toBuffer({ resolveWithObject: true });
  });
  return rgbPreview(out, storedWidth);
}

function rgbPreview(raw: { data: Buffer; info: sharp.OutputInfo }, storedWidth: number): Preview {
  if (raw.info.channels !== 3) throw new Error(`a preview of ${raw.info.channels} channels, not 3`);
  return { data: raw.data, width: raw.info.width, height: raw.info.height, channels: 3, scale: raw.info.width / storedWidth };
}

/**
 * Decodes the image as received at `scale` (a PNG has no reduced decode: its cost is inflate),
 * refusing what the decoder reports as corrupt: what libvips fails on (failOn 'warning') and what
 * libjpeg warned of (decode-warnings.ts). Returns the preview when one is asked for.
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
  const decode = (listen: Listen) => {
    // An image on this path has no profile or an sRGB one: converting sRGB to sRGB would change no
    // pixel and cost a colour transform of every one.
    let image = listen(sharp(bytes, { ...loadOptions(limits), ignoreIcc: true }));
    if (plan.preview === 'output') image = image.flatten({ background: '#ffffff' }).toColourspace('srgb');
    if (plan.output) image = image.resize(resizeTo(plan.output));
    return image.raw().toBuffer({ resolveWithObject: true });
  };
  let decoded: { data: Buffer; info: sharp.OutputInfo };
  try {
    decoded = await decodeHeedingWarnings(decode);
  } catch (e: unknown) {
    throw decodeError(e, label, limits);
  }
  if (plan.preview === undefined) return undefined;
  if (plan.preview === 'output') return rgbPreview(decoded, info.width);
  return previewOf(decoded, plan.preview, info.width);
}
