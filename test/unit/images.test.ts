import { beforeAll, describe, expect, it } from 'vitest';
import { checkImage, JPEG, PNG, sniffImage } from '../../src/image/images.ts';
import { JobError } from '../../src/job/errors.ts';
import { jpegImage, pngImage } from '../support/images.ts';
import { thrownBy } from './helpers.ts';

const MAX = 1024 * 1024;

let jpeg: Buffer;
let png: Buffer;

beforeAll(async () => {
  // Not square, so a swapped width and height shows.
  jpeg = await jpegImage({ width: 37, height: 91, seed: 1 });
  png = await pngImage({ width: 37, height: 91, seed: 2 });
});

/** The offset of the first JPEG segment with this marker (walking the segments, as a decoder does). */
function segmentOffset(bytes: Buffer, marker: number): number {
  let offset = 2;
  while (offset + 4 <= bytes.length) {
    if (bytes[offset + 1] === marker) return offset;
    offset += 2 + bytes.readUInt16BE(offset + 2);
  }
  throw new Error(`test setup: no marker ${marker.toString(16)} in the JPEG`);
}

function patched(bytes: Buffer, edit: (copy: Buffer) => void): Buffer {
  const copy = Buffer.from(bytes);
  edit(copy);
  return copy;
}

/** A JPEG header made by hand: SOI, the given segments, then a scan. */
function jpegHeader(...segments: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xd8]), ...segments, Buffer.from([0xff, 0xda, 0x00, 0x02])]);
}

function segment(marker: number, payload: number[]): Buffer {
  const length = payload.length + 2;
  return Buffer.from([0xff, marker, length >> 8, length & 0xff, ...payload]);
}

/** A start-of-frame payload: precision, height, width, one component. */
function frame(width: number, height: number): number[] {
  return [8, height >> 8, height & 0xff, width >> 8, width & 0xff, 1, 1, 0x11, 0];
}

const NOT_IMAGES: readonly (readonly [string, Buffer])[] = [
  ['GIF', Buffer.concat([Buffer.from('GIF89a'), Buffer.from([0x25, 0x00, 0x5b, 0x00, 0x80, 0x00, 0x00]), Buffer.alloc(64)])],
  ['WebP', Buffer.concat([Buffer.from('RIFF'), Buffer.from([0x24, 0, 0, 0]), Buffer.from('WEBPVP8 '), Buffer.alloc(64)])],
  ['PDF', Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n'.padEnd(200, ' '))],
  ['HTML', Buffer.from('<!doctype html><html><body><img src="x.jpg"></body></html>')],
  ['SVG', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="37" height="91"><rect/></svg>')],
  ['BMP', Buffer.concat([Buffer.from('BM'), Buffer.alloc(60, 1)])],
  ['text', Buffer.from('this is not an image at all, just some words')],
];

describe('sniffImage: real images', () => {
  it('reads a JPEG with its width and height', () => {
    // Act
    const info = sniffImage(jpeg);

    // Assess
    expect(info).toEqual({ type: JPEG, width: 37, height: 91 });
    expect(info?.type).toEqual({ ext: 'jpg', contentType: 'image/jpeg' });
  });

  it('reads a PNG with its width and height', () => {
    // Act
    const info = sniffImage(png);

    // Assess
    expect(info).toEqual({ type: PNG, width: 37, height: 91 });
    expect(info?.type).toEqual({ ext: 'png', contentType: 'image/png' });
  });

  it('reads a large JPEG frame', async () => {
    // Prepare
    const big = await jpegImage({ width: 640, height: 480, seed: 3 });

    // Act
    const info = sniffImage(big);

    // Assess
    expect(info).toEqual({ type: JPEG, width: 640, height: 480 });
  });

  it('needs no more of a PNG than its IHDR chunk', () => {
    // Act
    const header = sniffImage(png.subarray(0, 33));

    // Assess
    expect(header).toEqual({ type: PNG, width: 37, height: 91 });
  });
});

describe('sniffImage: hand-made JPEG headers', () => {
  it('reads a progressive (SOF2) frame', () => {
    // Act
    const info = sniffImage(jpegHeader(segment(0xc2, frame(300, 200))));

    // Assess
    expect(info).toEqual({ type: JPEG, width: 300, height: 200 });
  });

  it('skips DHT, whose marker sits among the frame markers', () => {
    // Prepare: a DHT (C4) segment whose bytes would read as 5x5 if taken for a frame.
    const bytes = jpegHeader(segment(0xc4, [0, 0, 5, 0, 5, 0, 0, 0, 0]), segment(0xc0, frame(120, 80)));

    // Act
    const info = sniffImage(bytes);

    // Assess
    expect(info).toEqual({ type: JPEG, width: 120, height: 80 });
  });

  it('skips fill bytes before a marker', () => {
    // Prepare
    const bytes = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xff]), segment(0xc0, frame(10, 20)).subarray(1)]);

    // Act
    const info = sniffImage(bytes);

    // Assess
    expect(info).toEqual({ type: JPEG, width: 10, height: 20 });
  });

  it('refuses a scan that comes before any frame header', () => {
    // Act
    const info = sniffImage(jpegHeader(segment(0xe0, [0x4a, 0x46, 0x49, 0x46, 0])));

    // Assess
    expect(info).toBeUndefined();
  });

  it('refuses an end-of-image before any frame header', () => {
    // Act
    const info = sniffImage(Buffer.from([0xff, 0xd8, 0xff, 0xd9, 0xff, 0xc0, 0, 11, ...frame(1, 1)]));

    // Assess
    expect(info).toBeUndefined();
  });

  it('refuses a segment length below 2', () => {
    // Act
    const info = sniffImage(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x01, ...segment(0xc0, frame(1, 1))]));

    // Assess
    expect(info).toBeUndefined();
  });

  it('refuses bytes between segments that are not a marker', () => {
    // Act
    const info = sniffImage(Buffer.concat([Buffer.from([0xff, 0xd8]), segment(0xe0, [1, 2]), Buffer.from([0x00]), segment(0xc0, frame(1, 1))]));

    // Assess
    expect(info).toBeUndefined();
  });
});

describe('sniffImage: broken and truncated headers', () => {
  it.each([1, 2, 3, 4, 10, 20])('refuses the first %i bytes of a JPEG', (length) => {
    // Act
    const info = sniffImage(jpeg.subarray(0, length));

    // Assess
    expect(info).toBeUndefined();
  });

  it('refuses a JPEG cut inside its frame header', () => {
    // Prepare
    const sof = segmentOffset(jpeg, 0xc0);

    // Act
    const info = sniffImage(jpeg.subarray(0, sof + 8));

    // Assess
    expect(info).toBeUndefined();
  });

  it.each([
    ['width', 7],
    ['height', 5],
  ])('refuses a JPEG whose frame %s is zero', (_name, at) => {
    // Prepare
    const bytes = patched(jpeg, (b) => b.writeUInt16BE(0, segmentOffset(jpeg, 0xc0) + at));

    // Act
    const info = sniffImage(bytes);

    // Assess
    expect(info).toBeUndefined();
  });

  it.each([1, 8, 16, 32])('refuses the first %i bytes of a PNG', (length) => {
    // Act
    const info = sniffImage(png.subarray(0, length));

    // Assess
    expect(info).toBeUndefined();
  });

  it.each([
    ['a chunk type other than IHDR', (b: Buffer) => b.write('IDAT', 12, 'latin1')],
    ['an IHDR length other than 13', (b: Buffer) => b.writeUInt32BE(12, 8)],
    ['width zero', (b: Buffer) => b.writeUInt32BE(0, 16)],
    ['height zero', (b: Buffer) => b.writeUInt32BE(0, 20)],
    ['a damaged signature', (b: Buffer) => b.writeUInt8(0x88, 0)],
  ])('refuses a PNG with %s', (_name, edit) => {
    // Prepare
    const bytes = patched(png, edit);

    // Act
    const info = sniffImage(bytes);

    // Assess
    expect(info).toBeUndefined();
  });

  it.each(NOT_IMAGES)('refuses %s bytes', (_name, bytes) => {
    // Act
    const info = sniffImage(bytes);

    // Assess
    expect(info).toBeUndefined();
  });

  it('refuses an empty buffer', () => {
    // Act
    const info = sniffImage(Buffer.alloc(0));

    // Assess
    expect(info).toBeUndefined();
  });
});

describe('checkImage', () => {
  it('returns what a real JPEG is', () => {
    // Act
    const info = checkImage(jpeg, 'images[0]', MAX);

    // Assess
    expect(info).toEqual({ type: JPEG, width: 37, height: 91, scans: 1, mayHoldOrientationOrProfile: false });
  });

  it('accepts an image of exactly the limit', () => {
    // Act
    const info = checkImage(png, 'images[0]', png.length);

    // Assess
    expect(info.type).toBe(PNG);
  });

  it('refuses an image one byte over the limit as IMAGE_TOO_LARGE', () => {
    // Act
    const error = thrownBy(() => checkImage(png, 'images[2]', png.length - 1));

    // Assess
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({
      code: 'IMAGE_TOO_LARGE',
      message: `images[2] is ${png.length} bytes; the limit is ${png.length - 1}`,
    });
  });

  it('refuses an empty buffer as INVALID_IMAGE', () => {
    // Act
    const error = thrownBy(() => checkImage(Buffer.alloc(0), 'images[0]', MAX));

    // Assess
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[0] is empty' });
  });

  it.each(NOT_IMAGES)('refuses %s bytes as INVALID_IMAGE, naming the image', (_name, bytes) => {
    // Act
    const error = thrownBy(() => checkImage(bytes, 'images[3]', MAX));

    // Assess
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[3] is not a JPEG or PNG image' });
  });

  it('refuses a truncated JPEG as INVALID_IMAGE', () => {
    // Act
    const error = thrownBy(() => checkImage(jpeg.subarray(0, 20), 'images[0]', MAX));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE' });
  });
});

describe('checkImage: the whole structure, to the end of the image', () => {
  it('refuses a JPEG cut inside its entropy-coded data as truncated', () => {
    // Act
    const error = thrownBy(() => checkImage(jpeg.subarray(0, jpeg.length - 100), 'images[0]', MAX));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[0] is a truncated JPEG' });
  });

  it('refuses a JPEG with only its end-of-image marker missing as truncated', () => {
    // Act
    const error = thrownBy(() => checkImage(jpeg.subarray(0, jpeg.length - 2), 'images[0]', MAX));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[0] is a truncated JPEG' });
  });

  it('refuses a PNG without its IEND chunk as truncated', () => {
    // Act
    const error = thrownBy(() => checkImage(png.subarray(0, png.length - 12), 'images[1]', MAX));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[1] is a truncated PNG' });
  });

  it.each([
    ['a ZIP after a JPEG', () => Buffer.concat([jpeg, Buffer.from('PK\x03\x04\x14\x00\x00\x00evil.jar')])],
    ['HTML after a JPEG', () => Buffer.concat([jpeg, Buffer.from('<html><script>alert(1)</script></html>')])],
    ['a PDF after a PNG', () => Buffer.concat([png, Buffer.from('%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF')])],
    ['a ZIP after a second JPEG stream', () => Buffer.concat([jpeg, jpeg, Buffer.from('PK\x03\x04')])],
    ['a truncated second JPEG stream', () => Buffer.concat([jpeg, jpeg.subarray(0, 200)])],
  ])('refuses %s as a polyglot', (_name, make) => {
    // Act
    const error = thrownBy(() => checkImage(make(), 'images[2]', MAX));

    // Assess
    expect(error).toMatchObject({
      code: 'INVALID_IMAGE',
      message: 'images[2] has data after the end of the image (a polyglot file is refused)',
    });
  });

  it('accepts further JPEG streams after the first (multi-picture files) and zero padding', () => {
    // Act
    const info = checkImage(Buffer.concat([jpeg, jpeg, Buffer.alloc(16)]), 'images[0]', MAX);

    // Assess
    expect(info).toEqual({ type: JPEG, width: 37, height: 91, scans: 1, mayHoldOrientationOrProfile: false });
  });

  it('walks stuffed bytes and restart markers inside a scan', () => {
    // Prepare: a scan whose data holds FF00 (a stuffed FF) and FFD0 (a restart marker), then EOI.
    const bytes = Buffer.concat([
      jpegHeader(segment(0xc0, frame(8, 8))).subarray(0, -4),
      segment(0xda, [1, 1, 0, 0, 0x3f, 0]),
      Buffer.from([0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0xd9]),
    ]);

    // Act
    const info = checkImage(bytes, 'images[0]', MAX);

    // Assess
    expect(info).toMatchObject({ type: JPEG, width: 8, height: 8 });
  });
});
