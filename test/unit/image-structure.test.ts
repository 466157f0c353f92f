// The cheap first gate's structure walk (images.ts), on files made byte by byte: a PNG's chunk order
// and CRCs (each rule, and the first broken rule named), which segments or chunks may hold an
// orientation or a profile, the JPEG walk's markers (fill bytes, parameterless markers, a second SOI,
// short and overlong segments, the entropy-coded data), the frame header's bounds, and what may follow
// the image.
import { describe, expect, it } from 'vitest';
import { checkImage, JPEG, MAX_JPEG_SCANS, PNG, sniffImage, walkJpeg, walkPng } from '../../src/image/images.ts';
import { JobError } from '../../src/job/errors.ts';
import { jpegSegment, pngChunk } from '../support/images.ts';
import { thrownBy } from './helpers.ts';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** IHDR of a 40 × 30 image of this colour type, 8 bits. */
function ihdr(colourType: number): Buffer {
  const data = Buffer.alloc(13);
  data.writeUInt32BE(40, 0);
  data.writeUInt32BE(30, 4);
  data[8] = 8;
  data[9] = colourType;
  return pngChunk('IHDR', data);
}
const IDAT = pngChunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00]));
const IEND = pngChunk('IEND', Buffer.alloc(0));
const PLTE = pngChunk('PLTE', Buffer.alloc(9, 0x40));
const TRNS = pngChunk('tRNS', Buffer.from([0, 0]));
/** A chunk whose CRC does not match its type and data. */
const badCrc = (chunk: Buffer) => {
  const copy = Buffer.from(chunk);
  copy.writeUInt32BE((copy.readUInt32BE(copy.length - 4) + 1) >>> 0, copy.length - 4);
  return copy;
};
/** A PNG: signature, IHDR of `colourType`, the chunks, IEND. */
const png = (colourType: number, ...chunks: Buffer[]) => Buffer.concat([SIGNATURE, ihdr(colourType), ...chunks, IEND]);
const check = (bytes: Buffer) => checkImage(bytes, 'images[0]', 1 << 20);
const refusal = (bytes: Buffer) => (thrownBy(() => check(bytes)) as JobError).message;

describe('checkImage: a PNG\u2019s chunks', () => {
  it.each([
    ['truecolour', 2, [IDAT]],
    ['truecolour with a suggested palette and a transparent colour', 2, [PLTE, TRNS, IDAT]],
    ['grey with a transparent grey', 0, [TRNS, IDAT]],
    ['a palette with transparency, image data in several chunks', 3, [PLTE, TRNS, IDAT, IDAT, IDAT]],
    ['truecolour and alpha with a suggested palette', 6, [PLTE, IDAT]],
    ['an ancillary chunk with a bad CRC (a decoder skips it)', 2, [badCrc(pngChunk('gAMA', Buffer.alloc(4, 1))), IDAT]],
  ] as const)('accepts %s', (_name, colourType, chunks) => {
    // Act
    const info = check(png(colourType, ...chunks));

    // Assess
    expect(info).toEqual({ type: PNG, width: 40, height: 30, scans: 0, mayHoldOrientationOrProfile: false });
  });

  it.each([
    ['a IHDR chunk with a bad CRC', () => Buffer.concat([SIGNATURE, badCrc(ihdr(2)), IDAT, IEND])],
    ['a IDAT chunk with a bad CRC', () => png(2, badCrc(IDAT))],
    ['a PLTE chunk with a bad CRC', () => png(3, badCrc(PLTE), IDAT)],
    ['a tRNS chunk with a bad CRC', () => png(2, badCrc(TRNS), IDAT)],
    ['a IEND chunk with a bad CRC', () => Buffer.concat([SIGNATURE, ihdr(2), IDAT, badCrc(IEND)])],
    ['a second IHDR chunk', () => png(2, ihdr(2), IDAT)],
    ['a second PLTE chunk', () => png(3, PLTE, PLTE, IDAT)],
    ['a second tRNS chunk', () => png(2, TRNS, TRNS, IDAT)],
    ['IDAT chunks that are not consecutive', () => png(2, IDAT, pngChunk('tEXt', 'a\0b'), IDAT)],
    ['a PLTE chunk where none may be', () => png(0, PLTE, IDAT)],
    ['a PLTE chunk where none may be', () => png(4, PLTE, IDAT)],
    ['a PLTE chunk where none may be', () => png(2, IDAT, PLTE)],
    ['a PLTE chunk where none may be', () => png(2, TRNS, PLTE, IDAT)],
    ['a tRNS chunk where none may be', () => png(2, IDAT, TRNS)],
    ['a tRNS chunk where none may be', () => png(4, TRNS, IDAT)],
    ['a tRNS chunk where none may be', () => png(6, TRNS, IDAT)],
    ['a tRNS chunk where none may be', () => png(3, TRNS, PLTE, IDAT)],
    ['an unknown critical chunk "ABCD"', () => png(2, pngChunk('ABCD', 'x'), IDAT)],
    ['a palette image without a PLTE chunk', () => png(3, IDAT)],
    ['no IDAT chunk', () => png(2)],
    // The first rule broken is the one named.
    ['a second PLTE chunk', () => png(3, PLTE, PLTE, pngChunk('ABCD', 'x'), IDAT)],
    ['a PLTE chunk where none may be', () => png(0, PLTE)],
  ] as const)('refuses a PNG with %s', (problem, make) => {
    // Act / Assess
    expect(refusal(make())).toBe(`images[0] is a PNG with ${problem}`);
  });

  it.each(['eXIf', 'iCCP', 'tEXt', 'zTXt', 'iTXt', 'caNv'])('says a %s chunk may hold an orientation or a profile', (type) => {
    // Act
    const info = check(png(2, pngChunk(type, 'x'), IDAT));

    // Assess
    expect(info.mayHoldOrientationOrProfile).toBe(true);
  });

  it.each(['gAMA', 'cHRM', 'sRGB', 'sBIT', 'bKGD', 'pHYs', 'tIME', 'hIST', 'sPLT'])('says a %s chunk cannot', (type) => {
    // Act
    const info = check(png(3, PLTE, pngChunk(type, 'x'), IDAT));

    // Assess
    expect(info.mayHoldOrientationOrProfile).toBe(false);
  });

  it('walks chunk by chunk to the end of IEND, and no further; a chunk past the end is not walked', () => {
    // Prepare
    const bytes = png(2, IDAT);
    const seen: string[] = [];

    // Act
    const end = walkPng(Buffer.concat([bytes, Buffer.alloc(12)]), (start) => {
      seen.push(bytes.toString('latin1', start + 4, start + 8));
    });
    const cut = walkPng(bytes.subarray(0, bytes.length - 1));

    // Assess
    expect(end).toBe(bytes.length);
    expect(seen).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect(cut).toBeUndefined();
  });

  it('refuses what follows a PNG, even a whole JPEG, but not zero padding', () => {
    // Prepare
    const jpeg = Buffer.concat([Buffer.from([0xff, 0xd8]), jpegSegment(0xc0, Buffer.from([8, 0, 8, 0, 8, 1, 1, 0x11, 0])), Buffer.from([0xff, 0xd9])]);

    // Act / Assess
    expect(refusal(Buffer.concat([png(2, IDAT), jpeg]))).toBe('images[0] has data after the end of the image (a polyglot file is refused)');
    expect(check(Buffer.concat([png(2, IDAT), Buffer.alloc(8)])).type).toBe(PNG);
  });
});

/** SOI, the segments, EOI: a JPEG's structure with no real image data. */
const jpeg = (...parts: Buffer[]) => Buffer.concat([Buffer.from([0xff, 0xd8]), ...parts, Buffer.from([0xff, 0xd9])]);
/** A frame header: precision 8, height, width, one component. */
const sof = (width: number, height: number, marker = 0xc0) => jpegSegment(marker, Buffer.from([8, height >> 8, height & 0xff, width >> 8, width & 0xff, 1, 1, 0x11, 0]));
/** A scan header, then entropy-coded bytes. */
const scan = (data: number[]) => Buffer.concat([jpegSegment(0xda, Buffer.from([1, 1, 0, 0, 0x3f, 0])), Buffer.from(data)]);
const FRAME = sof(40, 30);

describe('checkImage: a JPEG\u2019s segments', () => {
  it.each([
    ['APP1 (EXIF, XMP)', 0xe1, true],
    ['APP2 (ICC, MPF)', 0xe2, true],
    ['APP0 (JFIF)', 0xe0, false],
    ['APP13 (IPTC)', 0xed, false],
    ['APP14 (Adobe)', 0xee, false],
    ['COM', 0xfe, false],
  ] as const)('says whether %s may hold an orientation or a profile', (_name, marker, may) => {
    // Act
    const info = check(jpeg(jpegSegment(marker, 'x'), FRAME, scan([1, 2, 3])));

    // Assess
    expect(info).toEqual({ type: JPEG, width: 40, height: 30, scans: 1, mayHoldOrientationOrProfile: may });
  });

  it(`counts the scans, and accepts ${MAX_JPEG_SCANS} of them but not one more`, () => {
    // Prepare
    const scans = (count: number) => jpeg(FRAME, ...Array.from({ length: count }, () => scan([1, 2])));

    // Act / Assess
    expect(check(scans(MAX_JPEG_SCANS)).scans).toBe(MAX_JPEG_SCANS);
    expect(refusal(scans(MAX_JPEG_SCANS + 1))).toBe(`images[0] is a JPEG of ${MAX_JPEG_SCANS + 1} scans; at most ${MAX_JPEG_SCANS} are accepted`);
  });

  it('walks fill bytes, restart markers and TEM between segments, and fill bytes inside a scan', () => {
    // Prepare
    const bytes = jpeg(Buffer.from([0xff, 0xff]), FRAME, Buffer.from([0xff, 0xd3, 0xff, 0x01]), scan([1, 0xff, 0xff, 0x00, 2, 0xff, 0xd7, 3]));
    const seen: string[] = [];

    // Act
    const end = walkJpeg(bytes, 0, (marker, start, stop) => {
      seen.push(`${marker.toString(16)}:${start}-${stop}`);
    });

    // Assess: SOI, (two fill bytes) SOF0, RST3, TEM, SOS to its data's end, EOI
    expect(end).toBe(bytes.length);
    const sofEnd = 4 + FRAME.length;
    expect(seen).toEqual(['d8:0-2', `c0:4-${sofEnd}`, `d3:${sofEnd}-${sofEnd + 2}`, `1:${sofEnd + 2}-${sofEnd + 4}`, `da:${sofEnd + 4}-${bytes.length - 2}`, `d9:${bytes.length - 2}-${bytes.length}`]);
    expect(check(bytes)).toMatchObject({ width: 40, height: 30, scans: 1 });
  });

  it('ends the walk where a visitor says stop, at any marker', () => {
    // Prepare
    const bytes = jpeg(FRAME, Buffer.from([0xff, 0xd0]), scan([1]));
    const at = (stopAt: number) => {
      const seen: number[] = [];
      const end = walkJpeg(bytes, 0, (marker) => {
        seen.push(marker);
        return marker === stopAt ? 'stop' : undefined;
      });
      return { end, seen };
    };

    // Act / Assess
    expect(at(0xd8)).toEqual({ end: undefined, seen: [0xd8] });
    expect(at(0xd0)).toEqual({ end: undefined, seen: [0xd8, 0xc0, 0xd0] });
    expect(at(0xda)).toEqual({ end: undefined, seen: [0xd8, 0xc0, 0xd0, 0xda] });
    expect(at(0xd9)).toEqual({ end: undefined, seen: [0xd8, 0xc0, 0xd0, 0xda, 0xd9] });
    expect(at(0x00)).toEqual({ end: bytes.length, seen: [0xd8, 0xc0, 0xd0, 0xda, 0xd9] });
  });

  it.each([
    ['a second SOI', () => jpeg(FRAME, Buffer.from([0xff, 0xd8]), scan([1]))],
    ['a segment length of 1', () => jpeg(FRAME, Buffer.from([0xff, 0xe3, 0x00, 0x01]), scan([1]))],
    ['a segment longer than the file', () => Buffer.concat([Buffer.from([0xff, 0xd8]), FRAME, Buffer.from([0xff, 0xe3, 0x00, 0x09, 1, 2, 3, 4, 5])])],
    ['a marker cut after its code', () => Buffer.concat([Buffer.from([0xff, 0xd8]), FRAME, Buffer.from([0xff, 0xe3, 0x00])])],
    ['a scan whose data ends in a lone 0xFF', () => Buffer.concat([Buffer.from([0xff, 0xd8]), FRAME, scan([1, 2, 0xff])])],
    ['a scan with no marker after its data', () => Buffer.concat([Buffer.from([0xff, 0xd8]), FRAME, scan([1, 2, 3])])],
    ['a byte that is no marker between segments', () => jpeg(FRAME, Buffer.from([0x00]), scan([1]))],
  ])('finds the structure broken at %s', (_name, make) => {
    // Act / Assess
    expect(walkJpeg(make(), 0)).toBeUndefined();
    expect(refusal(make())).toMatch(/^images\[0\] (is a truncated JPEG|is not a JPEG or PNG image)$/);
  });

  it('walks a segment of length 2 (no payload), and one ending exactly at the end of the file', () => {
    // Prepare
    const bytes = jpeg(Buffer.from([0xff, 0xe3, 0x00, 0x02]), FRAME, scan([1]));
    const lastSegment = Buffer.concat([Buffer.from([0xff, 0xd8]), Buffer.from([0xff, 0xe3, 0x00, 0x04, 1, 2])]);
    const seen: number[] = [];

    // Act
    const end = walkJpeg(bytes, 0);
    walkJpeg(lastSegment, 0, (marker) => {
      seen.push(marker);
    });

    // Assess
    expect(end).toBe(bytes.length);
    expect(seen).toEqual([0xd8, 0xe3]);
  });

  it('walks from the given offset', () => {
    // Prepare
    const bytes = Buffer.concat([Buffer.from([0, 0, 0]), jpeg(FRAME, scan([1]))]);

    // Act / Assess
    expect(walkJpeg(bytes, 3)).toBe(bytes.length);
    expect(walkJpeg(bytes, 2)).toBeUndefined();
  });

  it('accepts complete JPEG streams and zero padding after the first, and refuses anything else', () => {
    // Prepare
    const first = jpeg(FRAME, scan([1]));

    // Act / Assess
    expect(check(Buffer.concat([first, first, Buffer.alloc(3), Buffer.alloc(0)])).width).toBe(40);
    for (const trailer of [[0xff], [0xff, 0xd9], [0xff, 0xd8], [0x00, 0x01], [0xff, 0xd8, 0xff, 0xd9, 0x01]]) {
      expect(refusal(Buffer.concat([first, Buffer.from(trailer)])), JSON.stringify(trailer)).toBe('images[0] has data after the end of the image (a polyglot file is refused)');
    }
  });
});

describe('sniffImage: the frame header', () => {
  it('reads every start-of-frame marker, but not DHT, JPG or DAC', () => {
    for (const marker of [0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]) {
      expect(sniffImage(jpeg(sof(40, 30, marker), scan([1]))), marker.toString(16)).toEqual({ type: JPEG, width: 40, height: 30 });
    }
    for (const marker of [0xc4, 0xc8, 0xcc, 0xbf, 0xd0 + 0x10]) {
      expect(sniffImage(jpeg(sof(40, 30, marker), scan([1]))), marker.toString(16)).toBeUndefined();
    }
  });

  it('reads a frame header just long enough for its dimensions, and none shorter', () => {
    // Prepare: precision, height, width and nothing more; then one byte less
    const exact = jpeg(jpegSegment(0xc0, Buffer.from([8, 0, 30, 0, 40])), scan([1]));
    const short = jpeg(jpegSegment(0xc0, Buffer.from([8, 0, 30, 0])), scan([1]));

    // Act / Assess
    expect(sniffImage(exact)).toEqual({ type: JPEG, width: 40, height: 30 });
    expect(sniffImage(short)).toBeUndefined();
  });

  it('needs a marker straight after SOI, and reads only the first frame', () => {
    // Act / Assess
    expect(sniffImage(Buffer.concat([Buffer.from([0xff, 0xd8, 0x00]), sof(40, 30), scan([1])]))).toBeUndefined();
    expect(sniffImage(jpeg(sof(40, 30), sof(50, 60), scan([1])))).toEqual({ type: JPEG, width: 40, height: 30 });
  });

  it('reads a PNG before trying it as a JPEG, and a PNG of 33 bytes', () => {
    // Act / Assess
    expect(sniffImage(png(2, IDAT).subarray(0, 33))).toEqual({ type: PNG, width: 40, height: 30 });
    expect(sniffImage(png(2, IDAT).subarray(0, 32))).toBeUndefined();
  });
});
