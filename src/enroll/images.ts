/**
 * Bytes → a checked image. The type is decided by the bytes themselves, never by a name or a
 * claimed content type, and the header must be structurally sound for its type.
 */
import { JobError } from '../job/errors.ts';

export type ImageType = { readonly ext: 'jpg'; readonly contentType: 'image/jpeg' } | { readonly ext: 'png'; readonly contentType: 'image/png' };

export const JPEG: ImageType = { ext: 'jpg', contentType: 'image/jpeg' };
export const PNG: ImageType = { ext: 'png', contentType: 'image/png' };

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface ImageInfo {
  readonly type: ImageType;
  readonly width: number;
  readonly height: number;
}

/** PNG: the signature, then an IHDR chunk of 13 bytes with non-zero dimensions. */
function readPng(bytes: Buffer): ImageInfo | undefined {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return undefined;
  if (bytes.readUInt32BE(8) !== 13 || bytes.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  if (width === 0 || height === 0) return undefined;
  return { type: PNG, width, height };
}

// Start-of-frame markers carry the dimensions: SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC).
const isStartOfFrame = (marker: number) =>
  marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;

/** JPEG: SOI, then well-formed marker segments up to a start-of-frame with non-zero dimensions. */
function readJpeg(bytes: Buffer): ImageInfo | undefined {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) return undefined;
  let offset = 2;
  while (offset + 4 <= bytes.length) {
    if (bytes[offset] !== 0xff) return undefined;
    const marker = bytes[offset + 1] ?? 0;
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined; // end or scan before any frame header
    const length = bytes.readUInt16BE(offset + 2);
    if (length < 2) return undefined;
    if (isStartOfFrame(marker)) {
      if (offset + 9 > bytes.length) return undefined;
      const height = bytes.readUInt16BE(offset + 5);
      const width = bytes.readUInt16BE(offset + 7);
      if (width === 0 || height === 0) return undefined;
      return { type: JPEG, width, height };
    }
    offset += 2 + length;
  }
  return undefined;
}

/** Identifies a JPEG or PNG by its bytes; anything else is undefined. */
export function sniffImage(bytes: Buffer): ImageInfo | undefined {
  return readPng(bytes) ?? readJpeg(bytes);
}

export const isRestart = (marker: number) => marker >= 0xd0 && marker <= 0xd7;

/**
 * Sees each JPEG marker segment as it is walked: from its 0xFF to the end of its payload. A scan
 * (SOS) runs on to the end of the entropy-coded data after its header, restart markers and stuffed
 * bytes included. SOI, EOI and the parameterless markers are two bytes. Fill bytes belong to none.
 */
export type JpegSegmentVisitor = (marker: number, start: number, end: number) => void;

/**
 * JPEG: segment by segment, through the entropy-coded data of every scan, to the end of EOI; returns
 * the offset after EOI, or undefined when the structure is broken. The one reading of a JPEG's
 * structure: the gate (is it whole?) and the lossless path (what to keep) both use it, so what is
 * kept is exactly what was checked. A visitor rather than a list: a hostile file of tiny segments
 * costs no memory.
 */
export function walkJpeg(bytes: Buffer, start: number, visit?: JpegSegmentVisitor): number | undefined {
  if (bytes[start] !== 0xff || bytes[start + 1] !== 0xd8) return undefined;
  visit?.(0xd8, start, start + 2);
  let offset = start + 2;
  while (offset + 2 <= bytes.length) {
    if (bytes[offset] !== 0xff) return undefined;
    const marker = bytes[offset + 1] ?? 0;
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    if (marker === 0xd9 || isRestart(marker) || marker === 0x01) {
      visit?.(marker, offset, offset + 2);
      offset += 2;
      if (marker === 0xd9) return offset;
      continue;
    }
    if (offset + 4 > bytes.length) return undefined;
    const segmentStart = offset;
    offset += 2 + bytes.readUInt16BE(offset + 2);
    if (offset > bytes.length) return undefined;
    if (marker === 0xda) {
      // Entropy-coded data: a 0xFF there is followed by 0x00 (stuffing) or a restart marker; any
      // other marker ends the scan.
      for (;;) {
        const ff = bytes.indexOf(0xff, offset);
        if (ff === -1 || ff + 1 >= bytes.length) return undefined;
        const next = bytes[ff + 1] ?? 0;
        if (next === 0x00 || isRestart(next)) {
          offset = ff + 2;
        } else if (next === 0xff) {
          offset = ff + 1;
        } else {
          offset = ff;
          break;
        }
      }
    }
    visit?.(marker, segmentStart, offset);
  }
  return undefined;
}

/** Sees each PNG chunk: from its length field to the end of its CRC; the type is at `start + 4`. */
export type PngChunkVisitor = (start: number, end: number) => void;

/** PNG: chunk by chunk (length, type, data, CRC) to the end of IEND; returns the offset after IEND. */
export function walkPng(bytes: Buffer, visit?: PngChunkVisitor): number | undefined {
  let offset = 8;
  while (offset + 12 <= bytes.length) {
    const length = bytes.readUInt32BE(offset);
    const end = offset + 12 + length;
    if (end > bytes.length) return undefined;
    visit?.(offset, end);
    if (bytes.toString('latin1', offset + 4, offset + 8) === 'IEND') return end;
    offset = end;
  }
  return undefined;
}

/**
 * What follows the image must be nothing — or, for a JPEG, further complete JPEG streams (the
 * secondary images of a multi-picture file, e.g. gain maps) and zero padding. Anything else (a ZIP,
 * a PDF, HTML after the end of the image) makes the file a polyglot.
 */
function trailerProblem(bytes: Buffer, type: ImageType): 'truncated' | 'trailing data' | undefined {
  let end = type === PNG ? walkPng(bytes) : walkJpeg(bytes, 0);
  if (end === undefined) return 'truncated';
  if (type === JPEG) {
    while (end < bytes.length && bytes[end] === 0xff && bytes[end + 1] === 0xd8) {
      const next = walkJpeg(bytes, end);
      if (next === undefined) return 'trailing data';
      end = next;
    }
  }
  for (let i = end; i < bytes.length; i += 1) if (bytes[i] !== 0x00) return 'trailing data';
  return undefined;
}

/**
 * Throws the job's error for bytes that cannot become a reference; returns what they are. The
 * cheap first gate, before any decoding: the size, the type by the bytes, a sound header, and a
 * complete structure with nothing after the end of the image.
 */
export function checkImage(bytes: Buffer, label: string, maxBytes: number): ImageInfo {
  if (bytes.length === 0) throw new JobError('INVALID_IMAGE', `${label} is empty`);
  if (bytes.length > maxBytes) {
    throw new JobError('IMAGE_TOO_LARGE', `${label} is ${bytes.length} bytes; the limit is ${maxBytes}`);
  }
  const info = sniffImage(bytes);
  if (!info) throw new JobError('INVALID_IMAGE', `${label} is not a JPEG or PNG image`);
  const problem = trailerProblem(bytes, info.type);
  if (problem === 'truncated') throw new JobError('INVALID_IMAGE', `${label} is a truncated ${info.type === PNG ? 'PNG' : 'JPEG'}`);
  if (problem === 'trailing data') {
    throw new JobError('INVALID_IMAGE', `${label} has data after the end of the image (a polyglot file is refused)`);
  }
  return info;
}
