// Photo-like JPEGs for the benchmark and the soak, made with sharp. Pure noise compresses to
// ~0.7 bytes per pixel, about twice what a camera JPEG does, so a noise file of a given size has
// half the pixels of a real photo of that size and flatters anything that decodes it. These are a
// smooth scene plus grain, tuned to ~0.3 bytes per pixel at quality 85 — close to a phone selfie.
import sharp from 'sharp';

const BYTES_PER_PIXEL_GUESS = 0.3;
const ASPECT = 4 / 3; // portrait: height = width × 4/3

function scene(width: number, height: number, seed: number): Buffer {
  const data = Buffer.alloc(width * height * 3);
  let x = seed >>> 0 || 1;
  const fx = 2 + (seed % 5);
  const fy = 2 + (seed % 7);
  for (let j = 0; j < height; j += 1) {
    const cy = Math.cos((j / height) * fy * Math.PI);
    for (let i = 0; i < width; i += 1) {
      const base = 128 + 60 * Math.sin((i / width) * fx * Math.PI) * cy;
      for (let c = 0; c < 3; c += 1) {
        // xorshift32 grain
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        const grain = ((x & 0xff) / 255 - 0.5) * 60;
        data[(j * width + i) * 3 + c] = Math.max(0, Math.min(255, base + c * 20 + grain));
      }
    }
  }
  return data;
}

async function jpegOf(width: number, seed: number, quality = 85): Promise<Buffer> {
  const height = Math.round(width * ASPECT);
  return sharp(scene(width, height, seed), { raw: { width, height, channels: 3 } }).jpeg({ quality }).toBuffer();
}

/**
 * A JPEG of about `targetBytes` (within `tolerance`, and never above `maxBytes` when given): the
 * size is guessed from the bytes per pixel, then corrected from what the encoder produced.
 */
export async function photoJpeg(targetBytes: number, seed: number, opts: { tolerance?: number; maxBytes?: number } = {}): Promise<Buffer> {
  const tolerance = opts.tolerance ?? 0.1;
  let width = Math.max(64, Math.round(Math.sqrt(targetBytes / BYTES_PER_PIXEL_GUESS / ASPECT)));
  let best: Buffer | undefined;
  for (let attempt = 0; attempt < 6; attempt += 1) {
    const jpeg = await jpegOf(width, seed);
    const fits = opts.maxBytes === undefined || jpeg.length <= opts.maxBytes;
    if (fits && (best === undefined || Math.abs(jpeg.length - targetBytes) < Math.abs(best.length - targetBytes))) best = jpeg;
    if (fits && Math.abs(jpeg.length - targetBytes) <= targetBytes * tolerance) return jpeg;
    // Bytes grow with the pixel count, i.e. with width squared.
    width = Math.max(64, Math.round(width * Math.sqrt(targetBytes / jpeg.length) * (fits ? 1 : 0.98)));
  }
  if (best === undefined) throw new Error(`could not make a JPEG of about ${targetBytes} bytes under ${opts.maxBytes}`);
  return best;
}

/** `count` photos with sizes spread log-uniformly over [minBytes, maxBytes]. */
export async function photoPool(count: number, minBytes: number, maxBytes: number, seed = 1): Promise<Buffer[]> {
  const pool: Buffer[] = [];
  for (let i = 0; i < count; i += 1) {
    const target = count === 1 ? minBytes : minBytes * (maxBytes / minBytes) ** (i / (count - 1));
    pool.push(await photoJpeg(target, seed * 1000 + i, { maxBytes: maxBytes * 1.05 }));
  }
  return pool;
}

/** The most a small inline selfie weighs: what a client sends after downscaling for upload. */
export const SELFIE_MAX_BYTES = 100_000;

/**
 * `count` small inline selfies: 480×640 portrait JPEGs of the same photo-like scene, qualities
 * spread over 70-90 (lowered where needed) so every one is at most SELFIE_MAX_BYTES.
 */
export async function selfiePool(count: number, seed = 2): Promise<Buffer[]> {
  const pool: Buffer[] = [];
  for (let i = 0; i < count; i += 1) {
    let quality = Math.round(70 + (20 * i) / Math.max(1, count - 1));
    let jpeg = await jpegOf(480, seed * 1000 + i, quality);
    while (jpeg.length > SELFIE_MAX_BYTES && quality > 40) {
      quality -= 5;
      jpeg = await jpegOf(480, seed * 1000 + i, quality);
    }
    if (jpeg.length > SELFIE_MAX_BYTES) throw new Error(`could not make a 480×640 selfie under ${SELFIE_MAX_BYTES} bytes`);
    pool.push(jpeg);
  }
  return pool;
}
