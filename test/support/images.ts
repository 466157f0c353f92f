// Real JPEG and PNG files for tests, made with sharp: random pixels, so every call is a new photo
// (a new SHA-256, a new reference key) unless the same seed is given.
import { crc32 } from 'node:zlib';
import sharp from 'sharp';

export interface ImageOptions {
  width?: number;
  height?: number;
  /** The same seed gives the same bytes. */
  seed?: number;
}

function pixels(width: number, height: number, seed: number): Buffer {
  const data = Buffer.alloc(width * height * 3);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i += 1) {
    // xorshift32: cheap, deterministic noise that JPEG cannot compress away to nothing
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
  }
  return data;
}

const randomSeed = () => Math.floor(Math.random() * 0xffffffff);

// Defaults above the worker's MIN_IMAGE_DIMENSION (64), and not square, so a swap shows.
export function jpegImage(options: ImageOptions = {}): Promise<Buffer> {
  const { width = 96, height = 72, seed = randomSeed() } = options;
  return sharp(pixels(width, height, seed), { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}

export function pngImage(options: ImageOptions = {}): Promise<Buffer> {
  const { width = 96, height = 72, seed = randomSeed() } = options;
  return sharp(pixels(width, height, seed), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/**
 * A camera-style JPEG: EXIF orientation 6 (the pixels are stored sideways, to be turned 90° clockwise
 * for display), a GPS position, the camera's make and model, an XMP packet and an ICC profile.
 */
export function cameraJpeg(options: ImageOptions & { orientation?: number } = {}): Promise<Buffer> {
  const { width = 120, height = 80, seed = randomSeed(), orientation = 6 } = options;
  return sharp(pixels(width, height, seed), { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .withExif({
      IFD0: { Make: 'AcmeCam', Model: 'Spy 3000', Software: 'firmware 1.2' },
      IFD3: {
        GPSLatitudeRef: 'N',
        GPSLatitude: '51/1 30/1 2621/100',
        GPSLongitudeRef: 'W',
        GPSLongitude: '0/1 7/1 3988/100',
      },
    })
    .withMetadata({ orientation })
    .withXmp('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>Someone Private</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>')
    .toBuffer();
}

/** A photo-like picture (gradients, edges) of the given size, as a sharp pipeline: an encoder's settings show in its bytes. */
export function picture(width: number, height: number): sharp.Sharp {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i += 1) {
    const x = i % width;
    const y = Math.floor(i / width);
    raw[i * 3] = (x * 3 + y) & 0xff;
    raw[i * 3 + 1] = (x ^ y) & 0xff;
    raw[i * 3 + 2] = x < width / 3 ? 30 : 200;
  }
  return sharp(raw, { raw: { width, height, channels: 3 } });
}

// ---- Byte-level fixtures for the lossless path: segments and chunks sharp does not write. ----

/** A JPEG marker segment: marker, length, payload. */
export function jpegSegment(marker: number, payload: Buffer | string): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const length = Buffer.alloc(2);
  length.writeUInt16BE(data.length + 2);
  return Buffer.concat([Buffer.from([0xff, marker]), length, data]);
}

/** `jpeg` with `segments` inserted straight after SOI (and `trailer` appended after EOI). */
export function withJpegSegments(jpeg: Buffer, segments: readonly Buffer[], trailer?: Buffer): Buffer {
  return Buffer.concat([jpeg.subarray(0, 2), ...segments, jpeg.subarray(2), ...(trailer ? [trailer] : [])]);
}

/** An IPTC block as Photoshop writes it (APP13), naming someone. */
export const IPTC_SEGMENT = jpegSegment(0xed, Buffer.concat([Buffer.from('Photoshop 3.0\0', 'latin1'), Buffer.from('8BIM\x04\x04\0\0\0\0\0\x13\x1c\x02\x50\0\x0fSomeone Private\0', 'latin1')]));
export const COMMENT_SEGMENT = jpegSegment(0xfe, 'shot at 12 Private Road');
/** Adobe APP14 with the given colour transform (0: RGB or CMYK, 1: YCbCr, 2: YCCK). */
export const adobeSegment = (transform: number) => jpegSegment(0xee, Buffer.from([...Buffer.from('Adobe', 'latin1'), 0, 100, 0, 0, 0, 0, transform]));

/** A PNG chunk: length, type, data, CRC. */
export function pngChunk(type: string, data: Buffer | string): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), typeof data === 'string' ? Buffer.from(data, 'latin1') : data]);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length - 4);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, crc]);
}

/** `png` with `chunks` inserted after IHDR (and `after` chunks inserted before IEND). */
export function withPngChunks(png: Buffer, chunks: readonly Buffer[], after: readonly Buffer[] = []): Buffer {
  const ihdrEnd = 8 + 12 + png.readUInt32BE(8);
  const iend = png.length - 12;
  return Buffer.concat([png.subarray(0, ihdrEnd), ...chunks, png.subarray(ihdrEnd, iend), ...after, png.subarray(iend)]);
}
