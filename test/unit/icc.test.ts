// Is an embedded ICC profile sRGB (then it is dropped, and the JPEG rebuilt), or must the image be
// converted? Profiles made byte by byte, so each rule of icc.ts is seen to decide, and the profiles
// libvips itself embeds.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { isSrgbProfile, toneCurve } from '../../src/image/icc.ts';

const SRGB_COLORANTS = {
  rXYZ: [0.43607, 0.22249, 0.01392],
  gXYZ: [0.38515, 0.71687, 0.09708],
  bXYZ: [0.14307, 0.06061, 0.7141],
} as const;
/** sRGB's tone curve as an ICC parametric curve of type 3: g, a, b, c, d. */
const SRGB_PARA = [2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045];

const s15Fixed16 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(Math.round(v * 65536));
  return b;
};
const tagType = (type: string) => Buffer.concat([Buffer.from(type, 'latin1'), Buffer.alloc(4)]);
const xyz = (values: readonly number[]) => Buffer.concat([tagType('XYZ '), ...values.map(s15Fixed16)]);
const para = (fn: number, params: readonly number[]) => {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(fn);
  return Buffer.concat([tagType('para'), head, ...params.map(s15Fixed16)]);
};
const curv = (entries: readonly number[]) => {
  const body = Buffer.alloc(4 + 2 * entries.length);
  body.writeUInt32BE(entries.length);
  entries.forEach((v, i) => body.writeUInt16BE(v, 4 + 2 * i));
  return Buffer.concat([tagType('curv'), body]);
};
const srgbLinear = (x: number) => (x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4);
/** sRGB's curve sampled at `count` points, as a `curv` table. */
const srgbTable = (count: number) => Array.from({ length: count }, (_, i) => Math.round(srgbLinear(i / (count - 1)) * 65535));

type Tags = readonly (readonly [string, Buffer])[];

/**
 * A profile: a 128-byte header (device class, colour space, PCS and signature as given), the tag
 * table, then each tag's data in order; the last tag ends where the profile does.
 */
function profile(tags: Tags, header: { space?: string; pcs?: string; signature?: string } = {}): Buffer {
  const head = Buffer.alloc(128);
  head.write('mntr', 12, 'latin1');
  head.write(header.space ?? 'RGB ', 16, 'latin1');
  head.write(header.pcs ?? 'XYZ ', 20, 'latin1');
  head.write(header.signature ?? 'acsp', 36, 'latin1');
  const table = Buffer.alloc(4 + 12 * tags.length);
  table.writeUInt32BE(tags.length);
  let offset = 128 + table.length;
  tags.forEach(([name, data], i) => {
    table.write(name, 4 + 12 * i, 'latin1');
    table.writeUInt32BE(offset, 8 + 12 * i);
    table.writeUInt32BE(data.length, 12 + 12 * i);
    offset += data.length;
  });
  const icc = Buffer.concat([head, table, ...tags.map(([, data]) => data)]);
  icc.writeUInt32BE(icc.length, 0);
  return icc;
}

const SRGB_TAGS: Tags = [
  ['wtpt', xyz([0.9642, 1, 0.8249])],
  ...Object.entries(SRGB_COLORANTS).map(([name, values]) => [name, xyz(values)] as const),
  ['rTRC', para(3, SRGB_PARA)],
  ['gTRC', para(3, SRGB_PARA)],
  ['bTRC', para(3, SRGB_PARA)],
  // A tag of the smallest size a tag table may name.
  ['zzzz', tagType('zzzz')],
];
const srgb = (changes: Record<string, Buffer | undefined> = {}, extra: Tags = []) =>
  profile([...SRGB_TAGS.flatMap(([name, data]) => (name in changes ? (changes[name] ? [[name, changes[name]] as const] : []) : [[name, data] as const])), ...extra]);

/** The profile libvips embeds for `name` ('srgb', 'p3'), as a decoder reads it back. */
async function libvipsProfile(name: string): Promise<Buffer> {
  const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).withIccProfile(name).jpeg().toBuffer();
  const { icc } = await sharp(jpeg).metadata();
  if (!icc) throw new Error(`test setup: no ${name} profile embedded`);
  return icc;
}

describe('isSrgbProfile: the profiles libvips embeds', () => {
  it('takes its sRGB profile for sRGB and Display P3 (same curves, other colorants) for not', async () => {
    // Act
    const [srgbProfile, p3] = await Promise.all([libvipsProfile('srgb'), libvipsProfile('p3')]);

    // Assess
    expect(isSrgbProfile(srgbProfile)).toBe(true);
    expect(isSrgbProfile(p3)).toBe(false);
  });
});

describe('isSrgbProfile: profiles made byte by byte', () => {
  it("is true for sRGB's colorants and curve, as a parametric curve or a sampled table", () => {
    // Act / Assess
    expect(isSrgbProfile(srgb())).toBe(true);
    const table = curv(srgbTable(1024));
    expect(isSrgbProfile(srgb({ rTRC: table, gTRC: table, bTRC: table }))).toBe(true);
    // Type 4 is type 3 with offsets e and f: zero offsets are still sRGB.
    const type4 = para(4, [...SRGB_PARA, 0, 0]);
    expect(isSrgbProfile(srgb({ rTRC: type4, gTRC: type4, bTRC: type4 }))).toBe(true);
  });

  it.each([
    ['another signature than acsp', { signature: 'acsq' }],
    ['a grey profile', { space: 'GRAY' }],
    ['a Lab connection space', { pcs: 'Lab ' }],
  ])('is false for %s', (_name, header) => {
    // Act / Assess
    expect(isSrgbProfile(profile(SRGB_TAGS, header))).toBe(false);
  });

  it('is false for a profile too short for its header or its tag count', () => {
    // Prepare
    const whole = srgb();

    // Act / Assess
    expect(isSrgbProfile(whole.subarray(0, 127))).toBe(false);
    expect(isSrgbProfile(whole.subarray(0, 131))).toBe(false);
  });

  it('is false when the tag table claims more entries than the profile holds', () => {
    // Prepare: a count one larger than the entries written, the table then running into the tag data
    const icc = srgb();
    icc.writeUInt32BE(icc.readUInt32BE(128) + 100, 128);

    // Act / Assess
    expect(isSrgbProfile(icc)).toBe(false);
  });

  it('reads up to 1000 tags, and no profile of more', () => {
    // Prepare: the sRGB tags and enough small ones to make 1000, or 1001
    const padding = (count: number): Tags => Array.from({ length: count }, () => ['pad ', tagType('pad ')] as const);
    const thousand = srgb({}, padding(1000 - SRGB_TAGS.length));
    const more = srgb({}, padding(1001 - SRGB_TAGS.length));

    // Act / Assess
    expect(thousand.readUInt32BE(128)).toBe(1000);
    expect(isSrgbProfile(thousand)).toBe(true);
    expect(isSrgbProfile(more)).toBe(false);
  });

  it('is false when a tag reaches past the end of the profile, or is under 8 bytes; a tag ending at the end is read', () => {
    // Prepare: the last tag (zzzz, 8 bytes) ends exactly at the end of the profile
    const whole = srgb();
    const past = Buffer.from(whole);
    past.writeUInt32BE(9, 128 + 4 + 12 * (SRGB_TAGS.length - 1) + 8);
    const small = Buffer.from(whole);
    small.writeUInt32BE(7, 128 + 4 + 12 * (SRGB_TAGS.length - 1) + 8);

    // Act / Assess
    expect(isSrgbProfile(whole)).toBe(true);
    expect(isSrgbProfile(past)).toBe(false);
    expect(isSrgbProfile(small)).toBe(false);
  });

  it.each(['A2B0', 'A2B1', 'A2B2', 'D2B0', 'D2B1', 'D2B2', 'D2B3'])('is false beside a lookup table (%s), which a colour engine prefers to the matrix', (name) => {
    // Act / Assess
    expect(isSrgbProfile(srgb({}, [[name, tagType('mft2')]]))).toBe(false);
  });

  it.each(['rXYZ', 'gXYZ', 'bXYZ'] as const)('is false when %s is missing, not an XYZ tag, or too short for three numbers', (name) => {
    // Prepare
    const short = Buffer.from(xyz(SRGB_COLORANTS[name]).subarray(0, 19));
    const notXyz = Buffer.concat([tagType('sf32'), xyz(SRGB_COLORANTS[name]).subarray(8)]);

    // Act / Assess
    expect(isSrgbProfile(srgb({ [name]: undefined }))).toBe(false);
    expect(isSrgbProfile(srgb({ [name]: notXyz }))).toBe(false);
    expect(isSrgbProfile(srgb({ [name]: short }))).toBe(false);
  });

  it.each(
    (['rXYZ', 'gXYZ', 'bXYZ'] as const).flatMap((name) => [0, 1, 2].map((component) => [name, component] as const)),
  )('takes %s within 0.002 of sRGB in component %i, and not 0.0025 off', (name, component) => {
    // Prepare
    const off = (delta: number) => xyz(SRGB_COLORANTS[name].map((v, i) => (i === component ? v + delta : v)));

    // Act / Assess
    expect(isSrgbProfile(srgb({ [name]: off(0.0015) }))).toBe(true);
    expect(isSrgbProfile(srgb({ [name]: off(-0.0015) }))).toBe(true);
    expect(isSrgbProfile(srgb({ [name]: off(0.0025) }))).toBe(false);
    expect(isSrgbProfile(srgb({ [name]: off(-0.0025) }))).toBe(false);
  });

  it.each(['rTRC', 'gTRC', 'bTRC'])('is false when %s is missing, a gamma of 2.2, or not a curve', (name) => {
    // Act / Assess
    expect(isSrgbProfile(srgb({ [name]: undefined }))).toBe(false);
    expect(isSrgbProfile(srgb({ [name]: curv([Math.round(2.2 * 256)]) }))).toBe(false);
    expect(isSrgbProfile(srgb({ [name]: xyz([0, 0, 0]) }))).toBe(false);
  });

  it('checks every 8-bit code, the darkest and the brightest too', () => {
    // Prepare: sRGB sampled at each code, but for the last entry (255 → 0.99) or the first (0 → 0.01)
    const table = srgbTable(256);
    const top = curv(table.map((v, i) => (i === 255 ? Math.round(0.99 * 65535) : v)));
    const bottom = curv(table.map((v, i) => (i === 0 ? Math.round(0.01 * 65535) : v)));

    // Act / Assess
    expect(isSrgbProfile(srgb({ rTRC: curv(table), gTRC: curv(table), bTRC: curv(table) }))).toBe(true);
    expect(isSrgbProfile(srgb({ gTRC: top }))).toBe(false);
    expect(isSrgbProfile(srgb({ bTRC: bottom }))).toBe(false);
  });
});

/** The tone curve of a tag's data, read as it would be at offset 0 of a profile. */
const curveOf = (data: Buffer, size = data.length) => toneCurve(data, { offset: 0, size });

describe('toneCurve', () => {
  it('reads no curve from a missing tag, a tag under 12 bytes, or a type other than curv and para', () => {
    // Act / Assess
    expect(toneCurve(Buffer.alloc(16), undefined)).toBeUndefined();
    expect(curveOf(curv([]), 11)).toBeUndefined();
    expect(curveOf(xyz([1, 1, 1]))).toBeUndefined();
  });

  it('reads curv: no entry is the identity, one a gamma in units of 1/256, more a table interpolated linearly', () => {
    // Act
    const identity = curveOf(curv([]));
    const gamma = curveOf(curv([2.5 * 256]));
    const table = curveOf(curv([0, 16384, 65535]));

    // Assess
    expect(identity?.(0.3)).toBe(0.3);
    expect(gamma?.(0.5)).toBeCloseTo(0.5 ** 2.5, 10);
    const quarter = 16384 / 65535;
    expect([0, 0.25, 0.5, 0.75, 1].map((x) => table?.(x))).toEqual([0, quarter / 2, quarter, quarter + (1 - quarter) / 2, 1]);
  });

  it('reads no curv whose table reaches past its tag', () => {
    // Act / Assess
    expect(curveOf(curv([0, 65535]), 15)).toBeUndefined();
    expect(curveOf(curv([0, 65535]), 16)?.(0.5)).toBeCloseTo(0.5, 10);
  });

  it('reads the five parametric curves, each side of its threshold', () => {
    // Prepare: g 2, a 0.5, b 0.25, c 0.1, d 0.25, e 0.05, f 0.02 (threshold -b/a = -0.5 for types 1, 2)
    const p = [2, 0.5, 0.25, 0.1, 0.25, 0.05, 0.02];
    const read = (fn: number, count: number) => curveOf(para(fn, p.slice(0, count)));

    // Act
    const [t0, t1, t2, t3, t4] = [read(0, 1), read(1, 3), read(2, 4), read(3, 5), read(4, 7)];

    // Assess
    expect(t0?.(0.5)).toBeCloseTo(0.25, 4);
    expect(t1?.(0.5)).toBeCloseTo((0.25 + 0.25) ** 2, 4);
    expect(t1?.(-0.6)).toBe(0);
    expect(t1?.(-0.5)).toBeCloseTo(0, 4);
    expect(t2?.(0.5)).toBeCloseTo(0.5 ** 2 + 0.1, 4);
    expect(t2?.(-0.6)).toBeCloseTo(0.1, 4);
    expect(t3?.(0.5)).toBeCloseTo(0.5 ** 2, 4);
    expect(t3?.(0.2)).toBeCloseTo(0.02, 4);
    expect(t3?.(0.25)).toBeCloseTo(0.375 ** 2, 4);
    expect(t4?.(0.5)).toBeCloseTo(0.5 ** 2 + 0.05, 4);
    expect(t4?.(0.2)).toBeCloseTo(0.04, 4);
    expect(t4?.(0.25)).toBeCloseTo(0.375 ** 2 + 0.05, 4);
  });

  it('reads no parametric curve of an unknown type or with fewer parameters than its type has', () => {
    // Act / Assess
    expect(curveOf(para(5, [1, 1, 1, 1, 1, 1, 1, 1]))).toBeUndefined();
    expect(curveOf(para(3, [1, 1, 0, 0]))).toBeUndefined();
    expect(curveOf(para(3, [1, 1, 0, 0, 0]))?.(0.5)).toBeCloseTo(0.5, 4);
  });
});
