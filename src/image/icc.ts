/**
 * Is an embedded ICC profile sRGB? Then dropping it changes nothing: an image without a profile is
 * read as sRGB by every decoder, and converting sRGB to sRGB would leave every pixel as it is. The
 * test is what the profile does, not what it is called: an RGB matrix/TRC profile whose colorants
 * are sRGB's and whose tone curves map every 8-bit code to itself (within rounding) through the
 * sRGB curve. A profile with lookup tables (A2Bx/D2Bx, which colour engines prefer to the matrix) or
 * anything else unexpected is "not sRGB": the image then takes the re-encode path, which converts
 * it — the safe side of every doubt.
 */

const TAG_TABLE = 128;

/** sRGB's colorants adapted to D50 (Bradford), as sRGB profiles carry them in rXYZ, gXYZ, bXYZ. */
const SRGB_COLORANTS: Readonly<Record<'rXYZ' | 'gXYZ' | 'bXYZ', readonly [number, number, number]>> = {
  rXYZ: [0.43607, 0.22249, 0.01392],
  gXYZ: [0.38515, 0.71687, 0.09708],
  bXYZ: [0.14307, 0.06061, 0.7141],
};
/** Profiles round and adapt slightly differently; 0.002 moves no 8-bit value by more than ~1/2. */
const COLORANT_TOLERANCE = 0.002;

/** Tags whose presence means the matrix/TRC part is not what a colour engine uses for an input. */
const LUT_TAGS = new Set(['A2B0', 'A2B1', 'A2B2', 'D2B0', 'D2B1', 'D2B2', 'D2B3']);

export interface Tag {
  readonly offset: number;
  readonly size: number;
}

function tagTable(icc: Buffer): Map<string, Tag> | undefined {
  if (icc.length < TAG_TABLE + 4) return undefined;
  const count = icc.readUInt32BE(TAG_TABLE);
  if (count > 1000 || TAG_TABLE + 4 + count * 12 > icc.length) return undefined;
  const tags = new Map<string, Tag>();
  for (let i = 0; i < count; i += 1) {
    const entry = TAG_TABLE + 4 + i * 12;
    const offset = icc.readUInt32BE(entry + 4);
    const size = icc.readUInt32BE(entry + 8);
    if (offset + size > icc.length || size < 8) return undefined;
    tags.set(icc.toString('latin1', entry, entry + 4), { offset, size });
  }
  return tags;
}

const s15Fixed16 = (icc: Buffer, at: number) => icc.readInt32BE(at) / 65536;

function colorantMatches(icc: Buffer, tag: Tag | undefined, expected: readonly [number, number, number]): boolean {
  if (!tag || tag.size < 20 || icc.toString('latin1', tag.offset, tag.offset + 4) !== 'XYZ ') return false;
  return expected.every((value, i) => Math.abs(s15Fixed16(icc, tag.offset + 8 + 4 * i) - value) <= COLORANT_TOLERANCE);
}

/** A tone curve (`curv` or `para`) as a function from encoded [0, 1] to linear [0, 1]; exported for its unit tests. */
export function toneCurve(icc: Buffer, tag: Tag | undefined): ((x: number) => number) | undefined {
  if (!tag || tag.size < 12) return undefined;
  const type = icc.toString('latin1', tag.offset, tag.offset + 4);
  if (type === 'curv') {
    const count = icc.readUInt32BE(tag.offset + 8);
    if (tag.size < 12 + 2 * count) return undefined;
    if (count === 0) return (x) => x;
    if (count === 1) {
      const gamma = icc.readUInt16BE(tag.offset + 12) / 256;
      return (x) => x ** gamma;
    }
    const table = Array.from({ length: count }, (_, i) => icc.readUInt16BE(tag.offset + 12 + 2 * i) / 65535);
    return (x) => {
      const position = x * (count - 1);
      const low = Math.floor(position);
      const high = Math.min(low + 1, count - 1);
      return (table[low] ?? 0) + ((table[high] ?? 0) - (table[low] ?? 0)) * (position - low);
    };
  }
  if (type === 'para') {
    const fn = icc.readUInt16BE(tag.offset + 8);
    const counts = [1, 3, 4, 5, 7];
    const n = counts[fn];
    if (n === undefined || tag.size < 12 + 4 * n) return undefined;
    const [g = 1, a = 1, b = 0, c = 0, d = 0, e = 0, f = 0] = Array.from({ length: n }, (_, i) => s15Fixed16(icc, tag.offset + 12 + 4 * i));
    switch (fn) {
      case 0:
        return (x) => x ** g;
      case 1:
        return (x) => (x >= -b / a ? (a * x + b) ** g : 0);
      case 2:
        return (x) => (x >= -b / a ? (a * x + b) ** g + c : c);
      case 3:
        return (x) => (x >= d ? (a * x + b) ** g : c * x);
      default:
        return (x) => (x >= d ? (a * x + b) ** g + e : c * x + f);
    }
  }
  return undefined;
}

const srgbEncode = (linear: number) => (linear <= 0.0031308 ? 12.92 * linear : 1.055 * linear ** (1 / 2.4) - 0.055);

/** Every 8-bit code, through the curve and back through sRGB's, lands within half a step of itself. */
function isSrgbCurve(curve: ((x: number) => number) | undefined): boolean {
  if (!curve) return false;
  for (let code = 0; code <= 255; code += 1) {
    const linear = Math.min(1, Math.max(0, curve(code / 255)));
    if (Math.abs(srgbEncode(linear) * 255 - code) >= 0.5) return false;
  }
  return true;
}

export function isSrgbProfile(icc: Buffer): boolean {
  if (icc.length < TAG_TABLE || icc.toString('latin1', 36, 40) !== 'acsp') return false;
  if (icc.toString('latin1', 16, 20) !== 'RGB ' || icc.toString('latin1', 20, 24) !== 'XYZ ') return false;
  const tags = tagTable(icc);
  if (!tags || [...tags.keys()].some((name) => LUT_TAGS.has(name))) return false;
  for (const [name, expected] of Object.entries(SRGB_COLORANTS)) if (!colorantMatches(icc, tags.get(name), expected)) return false;
  return ['rTRC', 'gTRC', 'bTRC'].every((name) => isSrgbCurve(toneCurve(icc, tags.get(name))));
}
