/**
 * Decoding with libvips through sharp, for what is re-encoded and for previews: the load options
 * every decode of a received image uses, the small upright preview the face check looks at, and
 * what a decoder's complaint becomes (a job error, or a transient failure when the machine is short
 * of memory). A JPEG that is rebuilt is read by libjpeg-turbo instead (jpeg.ts), and its preview
 * decoded from the rebuilt file.
 */
import sharp from 'sharp';
import { JobError } from '../job/errors.ts';
import { heedingWarnings } from './decode-warnings.ts';
import type { ImageLimits } from './normalise.ts';

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

/** A resize whose load scale is sharp's plain rule (no fast shrink-on-load): the preview's pixels are a decode's, not a guess. */
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
