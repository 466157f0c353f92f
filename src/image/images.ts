/**
 * Bytes → a checked image. The type is decided by the bytes themselves, never by a name or a
 * claimed content type, and the header must be structurally sound for its type.
 */
import { crc32 } from 'node:zlib';
import { JobError } from '../job/errors.ts';

export type ImageType = { readonly ext: 'jpg'; readonly contentType: 'image/jpeg' } | { readonly ext: 'png'; readonly contentType: 'image/png' };

export const JPEG: ImageType = { ext: 'jpg', contentType: 'image/jpeg' };
export const PNG: ImageType = { ext: 'png', contentType: 'image/png' };

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface ImageInfo {
  readonly type: ImageType;
  /** As the header walk reads them; the decoder's reading must agree (normalise.ts). */
  readonly width: number;
  readonly height: number;
}

/** What the structure walk of a checked image found, beyond its header. */
export interface CheckedImageInfo extends ImageInfo {
  /** JPEG: the scans (SOS segments) the walk passed. PNG: 0. */
  readonly scans: number;
  /**
   * Whether a segment or chunk could hold an EXIF orientation or an ICC profile (JPEG APP1/APP2,
   * a PNG chunk that is not a known colour or layout chunk): when false, the decoder need not be
   * asked for either.
   */
  readonly mayHoldOrientationOrProfile: boolean;
}

/**
 * More scans than any encoder writes (libjpeg's progressive script: 10 for colour, 6 for grey;
 * mozjpeg's searched scripts fewer than 20). Each scan is a pass over the whole image, and nothing
 * in the format bounds their number: a file of repeated no-op scans costs seconds of decode per
 * hundred kilobytes. Refused before any decoding (libjpeg-turbo's tools offer `-maxscans` for this).
 */
export const MAX_JPEG_SCANS = 64;

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

/**
 * JPEG: SOI, then well-formed marker segments up to a start-of-frame with non-zero dimensions, by
 * the one walk (`walkJpeg`), which walks markers as libjpeg does: a reader of its own could be
 * steered into a fake SOF (one that gave RST0 a length did).
 */
function readJpeg(bytes: Buffer): ImageInfo | undefined {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) return undefined;
  let info: ImageInfo | undefined;
  walkJpeg(bytes, 0, (marker, start, end) => {
    // A scan or the end before any frame header: no image.
    if (isStartOfFrame(marker) && end >= start + 9) {
      const height = bytes.readUInt16BE(start + 5);
      const width = bytes.readUInt16BE(start + 7);
      if (width !== 0 && height !== 0) info = { type: JPEG, width, height };
    }
    return isStartOfFrame(marker) || marker === 0xda || marker === 0xd9 ? 'stop' : undefined;
  });
  return info;
}

/** Identifies a JPEG or PNG by its bytes; anything else is undefined. */
export function sniffImage(bytes: Buffer): ImageInfo | undefined {
  return readPng(bytes) ?? readJpeg(bytes);
}

export const isRestart = (marker: number) => marker >= 0xd0 && marker <= 0xd7;
/** RST0–7 and TEM: markers without a length (libjpeg's next_marker treats them so). */
const isParameterless = (marker: number) => isRestart(marker) || marker === 0x01;

/**
 * Sees each JPEG marker segment as it is walked: from its 0xFF to the end of its payload. A scan
 * (SOS) runs on to the end of the entropy-coded data after its header, restart markers and stuffed
 * bytes included. SOI, EOI and the parameterless markers are two bytes. Fill bytes belong to none.
 */
export type JpegSegmentVisitor = (marker: number, start: number, end: number) => 'stop' | undefined | void;

/**
 * JPEG: segment by segment, through the entropy-coded data of every scan, to the end of EOI; returns
 * the offset after EOI, or undefined when the structure is broken. The one walk of a JPEG's
 * structure: the gate (is it whole, and nothing after it?) and the scan count both use it; the
 * decoder's reading must then agree with it (normalise.ts). A visitor rather than a list: a hostile
 * file of tiny segments costs no memory. A visitor that returns 'stop' ends the walk there (the
 * walk then returns undefined). A second SOI, or a segment length under 2, breaks the structure,
 * as libjpeg says.
 */
export function walkJpeg(bytes: Buffer, start: number, visit?: JpegSegmentVisitor): number | undefined {
  if (bytes[start] !== 0xff || bytes[start + 1] !== 0xd8) return undefined;
  if (visit?.(0xd8, start, start + 2) === 'stop') return undefined;
  let offset = start + 2;
  while (offset + 2 <= bytes.length) {
    if (bytes[offset] !== 0xff) return undefined;
    const marker = bytes[offset + 1] ?? 0;
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    if (marker === 0xd9 || isParameterless(marker)) {
      if (visit?.(marker, offset, offset + 2) === 'stop') return undefined;
      offset += 2;
      if (marker === 0xd9) return offset;
      continue;
    }
    if (marker === 0xd8 || offset + 4 > bytes.length) return undefined;
    const length = bytes.readUInt16BE(offset + 2);
    if (length < 2) return undefined;
    const segmentStart = offset;
    offset += 2 + length;
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
    if (visit?.(marker, segmentStart, offset) === 'stop') return undefined;
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
function trailerProblem(bytes: Buffer, type: ImageType, imageEnd: number | undefined): 'truncated' | 'trailing data' | undefined {
  let end = imageEnd;
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
export function checkImage(bytes: Buffer, label: string, maxBytes: number): CheckedImageInfo {
  if (bytes.length === 0) throw new JobError('INVALID_IMAGE', `${label} is empty`);
  if (bytes.length > maxBytes) {
    throw new JobError('IMAGE_TOO_LARGE', `${label} is ${bytes.length} bytes; the limit is ${maxBytes}`);
  }
  const info = sniffImage(bytes);
  if (!info) throw new JobError('INVALID_IMAGE', `${label} is not a JPEG or PNG image`);
  // One walk of the first image: where it ends, and what the later checks need of it.
  const structure = info.type === JPEG ? jpegStructure(bytes) : pngStructure(bytes);
  const problem = trailerProblem(bytes, info.type, structure.end);
  if (problem === 'truncated') throw new JobError('INVALID_IMAGE', `${label} is a truncated ${info.type === PNG ? 'PNG' : 'JPEG'}`);
  if (problem === 'trailing data') {
    throw new JobError('INVALID_IMAGE', `${label} has data after the end of the image (a polyglot file is refused)`);
  }
  if (structure.scans > MAX_JPEG_SCANS) {
    throw new JobError('INVALID_IMAGE', `${label} is a JPEG of ${structure.scans} scans; at most ${MAX_JPEG_SCANS} are accepted`);
  }
  if (structure.problem) throw new JobError('INVALID_IMAGE', `${label} is a PNG with ${structure.problem}`);
  return { ...info, scans: structure.scans, mayHoldOrientationOrProfile: structure.mayHoldOrientationOrProfile };
}

/** What the structure walk of the first image found: its end (undefined: broken), and the facts the checks need. */
interface Structure {
  readonly end: number | undefined;
  /** JPEG: the scans (SOS segments). PNG: 0. */
  readonly scans: number;
  readonly mayHoldOrientationOrProfile: boolean;
  /** PNG: the first rule of the chunk order it breaks. */
  readonly problem?: string;
}

const APP1 = 0xe1;
const APP2 = 0xe2;

/** The first image's end, its scans and whether it has an APP1 or APP2 segment. */
function jpegStructure(bytes: Buffer): Structure {
  let scans = 0;
  let mayHold = false;
  const end = walkJpeg(bytes, 0, (marker) => {
    if (marker === 0xda) scans += 1;
    else if (marker === APP1 || marker === APP2) mayHold = true;
  });
  return { end, scans, mayHoldOrientationOrProfile: mayHold };
}

/** Ancillary chunks that can hold neither an orientation nor a profile: no need to ask the decoder. */
const PLAIN_PNG = new Set(['IHDR', 'PLTE', 'tRNS', 'IDAT', 'IEND', 'gAMA', 'cHRM', 'sRGB', 'sBIT', 'bKGD', 'pHYs', 'tIME', 'hIST', 'sPLT']);

/**
 * The chunk order the PNG specification requires of the chunks that define pixels, with intact
 * CRCs: IHDR first; at most one PLTE, never in a grey image, before the image data; at most one
 * tRNS, after PLTE, before the image data; the IDATs in one run; no critical chunk but these.
 * Decoders differ on files that break these rules (one takes the second palette, another the
 * first), so such a file is refused, not guessed at. Also whether a chunk could hold an orientation
 * or a profile.
 */
function pngStructure(bytes: Buffer): Structure {
  const colourType = bytes[25] ?? 0;
  let mayHold = false;
  let problem: string | undefined;
  const seen = new Set<string>();
  let previous = '';
  const imageEnd = walkPng(bytes, (start, end) => {
    const type = bytes.toString('latin1', start + 4, start + 8);
    const critical = ((bytes[start + 4] ?? 0) & 0x20) === 0;
    if (problem) return;
    if (critical || type === 'tRNS') {
      if (crc32(bytes.subarray(start + 4, end - 4)) !== bytes.readUInt32BE(end - 4)) problem = `a ${type} chunk with a bad CRC`;
      else if (type === 'IHDR' ? start !== 8 : seen.has(type) && type !== 'IDAT') problem = `a second ${type} chunk`;
      else if (type === 'IDAT' && seen.has('IDAT') && previous !== 'IDAT') problem = 'IDAT chunks that are not consecutive';
      else if (type === 'PLTE' && (colourType === 0 || colourType === 4 || seen.has('IDAT') || seen.has('tRNS'))) problem = 'a PLTE chunk where none may be';
      else if (type === 'tRNS' && (seen.has('IDAT') || colourType >= 4 || (colourType === 3 && !seen.has('PLTE')))) problem = 'a tRNS chunk where none may be';
      else if (!['IHDR', 'PLTE', 'IDAT', 'IEND', 'tRNS'].includes(type)) problem = `an unknown critical chunk ${JSON.stringify(type)}`;
    } else if (!PLAIN_PNG.has(type)) {
      mayHold = true;
    }
    seen.add(type);
    previous = type;
  });
  if (!problem && colourType === 3 && !seen.has('PLTE')) problem = 'a palette image without a PLTE chunk';
  if (!problem && !seen.has('IDAT')) problem = 'no IDAT chunk';
  return { end: imageEnd, scans: 0, mayHoldOrientationOrProfile: mayHold, ...(problem !== undefined && { problem }) };
}
