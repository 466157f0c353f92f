/**
 * Lossless references: the coded image as received, with every metadata segment or chunk removed
 * at the byte level. Pure functions of the bytes; the caller has already checked the structure
 * (`checkImage`), and still decodes the image to validate it.
 *
 * What a stored JPEG keeps: SOI, DQT, DHT, the frame header (SOF0/1/2), DRI, each scan header with
 * its entropy-coded data (restart markers included), EOI — in their order. Nothing else: no APPn
 * (JFIF, EXIF, XMP, ICC, MPF, Adobe, Photoshop/IPTC…), no COM, no fill bytes, nothing after EOI
 * (the secondary images of a multi-picture file go too).
 *
 * Adobe's APP14 decides how libjpeg reads three components (transform 0: RGB; 1: YCbCr). It is not
 * kept: an image whose reading depends on it — transform 0, or components named 'R','G','B' (which
 * libjpeg reads as RGB once no JFIF or Adobe marker says otherwise) — takes the re-encode path, so
 * every JPEG stored as received is YCbCr (or grey) with or without its markers. JFIF's APP0 is not
 * needed by any decoder; its pixel aspect ratio is ignored by libjpeg and libvips alike.
 *
 * What a stored PNG keeps: IHDR, PLTE, tRNS, IDAT, IEND — in their order. tRNS is kept because it
 * is pixels (transparency). The colour chunks go: sRGB says what an untagged image is assumed to be
 * anyway; an iCCP profile is either sRGB (dropped with the same effect) or sends the image down the
 * re-encode path (the caller's decision: it needs the profile, see icc.ts); gAMA and cHRM are
 * ignored by libvips, so the re-encode path stores the same samples without them — keeping them
 * here would make the two paths render differently. Every other ancillary chunk (text, eXIf, time,
 * physical size, APNG frames, HDR hints) is metadata and goes.
 */
import { crc32 } from 'node:zlib';
import { JPEG, walkJpeg, walkPng, type ImageType } from './images.ts';

/** Why an image is re-encoded rather than stored as received. A short, bounded set: a metric label. */
export type ReencodeReason =
  /** EXIF orientation 2–8: the pixels must be turned upright. */
  | 'orientation'
  /** An ICC profile other than sRGB: the colours must be converted. */
  | 'colour profile'
  /** Four components (CMYK or YCCK). */
  | 'cmyk'
  /** Three components coded as RGB: the marker that says so would be removed. */
  | 'colour transform'
  /** Not 8-bit Huffman sequential or progressive: arithmetic, lossless, hierarchical, 12-bit. */
  | 'coding'
  /** A PNG of 16 bits per sample. */
  | 'bit depth'
  /** Over MAX_REFERENCE_DIMENSION: it must be scaled down. */
  | 'dimension'
  /** Something only the decoder can judge: a second frame, an unknown marker or critical chunk, a bad CRC. */
  | 'structure';

export type StripResult =
  | {
      readonly ok: true;
      /**
       * The bytes to store. A function, so that the copy is made only once the image has passed
       * the decoder (and the caller's other checks).
       */
      readonly strip: () => Buffer;
      /**
       * Whether the removed segments could hold an EXIF orientation or an ICC profile (JPEG APP1/APP2,
       * a PNG chunk that is not a known colour or layout chunk). When false, neither can exist and the
       * caller need not ask the decoder.
       */
      readonly mayHoldOrientationOrProfile: boolean;
      /** A progressive JPEG (SOF2): libjpeg reads all of it before the first row (see decode.ts). */
      readonly progressive: boolean;
    }
  | { readonly ok: false; readonly reason: ReencodeReason };

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const DQT = 0xdb;
const DHT = 0xc4;
const DRI = 0xdd;
const APP1 = 0xe1;
const APP2 = 0xe2;
const APP14 = 0xee;
const COM = 0xfe;
/** Baseline, extended sequential and progressive, all Huffman-coded. */
const STORABLE_FRAMES = new Set([0xc0, 0xc1, 0xc2]);
/** Lossless, hierarchical and arithmetic-coded frames, and arithmetic conditioning (DAC). */
const OTHER_CODINGS = new Set([0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf]);

const isApp = (marker: number) => marker >= 0xe0 && marker <= 0xef;
/** Restart markers or TEM outside a scan: parameterless, ignored by libjpeg. */
const isParameterless = (marker: number) => (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01;
const KEPT_JPEG = new Set([SOI, DQT, DHT, DRI, SOS, EOI, ...STORABLE_FRAMES]);

/** The frame header's verdict: 8-bit precision, one (grey) or three (YCbCr) components. */
function frameProblem(bytes: Buffer, start: number, end: number): ReencodeReason | undefined {
  if (end < start + 10) return 'structure';
  if (bytes[start + 4] !== 8) return 'coding';
  const components = bytes[start + 9] ?? 0;
  if (components === 4) return 'cmyk';
  if (components !== 1 && components !== 3) return 'structure';
  if (end < start + 10 + 3 * components) return 'structure';
  const ids = [0, 1, 2].map((i) => bytes[start + 10 + 3 * i]);
  // 'R', 'G', 'B': without a JFIF or Adobe marker, libjpeg reads such a frame as RGB.
  if (components === 3 && ids[0] === 0x52 && ids[1] === 0x47 && ids[2] === 0x42) return 'colour transform';
  return undefined;
}

/** Adobe APP14 with a transform other than 1 (YCbCr): the components are not YCbCr. */
function adobeTransformProblem(bytes: Buffer, start: number, end: number): boolean {
  // libjpeg looks at an APP14 of at least 12 bytes of data beginning "Adobe"; the transform is the 12th.
  if (end - start - 4 < 12 || bytes.toString('latin1', start + 4, start + 9) !== 'Adobe') return false;
  return bytes[start + 4 + 11] !== 1;
}

/** The JPEG as received minus everything a decoder does not need, or why it cannot be stored so. */
export function stripJpeg(bytes: Buffer): StripResult {
  let size = 0;
  let frames = 0;
  let progressive = false;
  let components = 0;
  let adobeNotYcbcr = false;
  let mayHold = false;
  let problem: ReencodeReason | undefined;
  const end = walkJpeg(bytes, 0, (marker, start, segmentEnd) => {
    if (problem) return;
    if (KEPT_JPEG.has(marker)) {
      size += segmentEnd - start;
      if (STORABLE_FRAMES.has(marker)) {
        frames += 1;
        progressive = marker === 0xc2;
        components = bytes[start + 9] ?? 0;
        problem = frames > 1 ? 'structure' : frameProblem(bytes, start, segmentEnd);
      }
    } else if (isApp(marker)) {
      if (marker === APP1 || marker === APP2) mayHold = true;
      if (marker === APP14 && adobeTransformProblem(bytes, start, segmentEnd)) adobeNotYcbcr = true;
    } else if (marker === COM || isParameterless(marker)) {
      // dropped
    } else {
      problem = OTHER_CODINGS.has(marker) ? 'coding' : 'structure';
    }
  });
  if (problem) return { ok: false, reason: problem };
  if (end === undefined || frames === 0) return { ok: false, reason: 'structure' };
  if (adobeNotYcbcr && components === 3) return { ok: false, reason: 'colour transform' };

  const strip = () => {
    const stored = Buffer.allocUnsafe(size);
    let at = 0;
    walkJpeg(bytes, 0, (marker, start, segmentEnd) => {
      if (KEPT_JPEG.has(marker)) at += bytes.copy(stored, at, start, segmentEnd);
    });
    return stored;
  };
  return { ok: true, strip, mayHoldOrientationOrProfile: mayHold, progressive };
}

const PNG_SIGNATURE_LENGTH = 8;
const KEPT_PNG = new Set(['IHDR', 'PLTE', 'tRNS', 'IDAT', 'IEND']);
/** Ancillary chunks that can hold neither an orientation nor a profile: no need to ask the decoder. */
const PLAIN_PNG = new Set(['gAMA', 'cHRM', 'sRGB', 'sBIT', 'bKGD', 'pHYs', 'tIME', 'hIST', 'sPLT']);
/** An ancillary chunk's type starts with a lower-case letter (bit 5 of its first byte). */
const isCritical = (bytes: Buffer, start: number) => ((bytes[start + 4] ?? 0) & 0x20) === 0;

/** The PNG as received minus its ancillary chunks (but tRNS), or why it cannot be stored so. */
export function stripPng(bytes: Buffer): StripResult {
  // IHDR is the first chunk (checked by sniffImage): bit depth at 24.
  if ((bytes[24] ?? 0) > 8) return { ok: false, reason: 'bit depth' };
  let size = PNG_SIGNATURE_LENGTH;
  let mayHold = false;
  let problem: ReencodeReason | undefined;
  const end = walkPng(bytes, (start, chunkEnd) => {
    if (problem) return;
    const type = bytes.toString('latin1', start + 4, start + 8);
    if (KEPT_PNG.has(type)) {
      // A kept chunk must be intact: libvips accepts a PNG whose IDAT CRC is wrong (seen with
      // failOn 'warning'), which stricter decoders refuse, and may skip a tRNS with a bad CRC that
      // another decoder would apply. Such a file is re-encoded instead (2–3 GB/s: cheap).
      if (crc32(bytes.subarray(start + 4, chunkEnd - 4)) !== bytes.readUInt32BE(chunkEnd - 4)) problem = 'structure';
      size += chunkEnd - start;
    } else if (isCritical(bytes, start)) {
      problem = 'structure';
    } else if (!PLAIN_PNG.has(type)) {
      mayHold = true;
    }
  });
  if (end === undefined) return { ok: false, reason: 'structure' };
  if (problem) return { ok: false, reason: problem };

  const strip = () => {
    const stored = Buffer.allocUnsafe(size);
    let at = bytes.copy(stored, 0, 0, PNG_SIGNATURE_LENGTH);
    walkPng(bytes, (start, chunkEnd) => {
      if (KEPT_PNG.has(bytes.toString('latin1', start + 4, start + 8))) at += bytes.copy(stored, at, start, chunkEnd);
    });
    return stored;
  };
  return { ok: true, strip, mayHoldOrientationOrProfile: mayHold, progressive: false };
}

export function stripImage(bytes: Buffer, type: ImageType): StripResult {
  return type === JPEG ? stripJpeg(bytes) : stripPng(bytes);
}
