// Photo-like JPEGs for the benchmark and the soak, made with sharp. Pure noise compresses to
// ~0.7 bytes per pixel, about twice what a camera JPEG does, so a noise file of a given size has
// half the pixels of a real photo of that size and flatters anything that decodes it. These are a
// smooth scene plus grain, tuned to ~0.3 bytes per pixel at quality 85 — close to a phone selfie.
import sharp from 'sharp';
import { ASTRONAUT_FACE, skimagePhoto } from '../face/photos.ts';

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

/** Where a sample photo's one face is (the detector's box in the 512×512 original), to frame it. */
interface Sitter {
  readonly file: string;
  readonly face: { readonly x: number; readonly y: number; readonly width: number; readonly height: number };
}
const ASTRONAUT: Sitter = { file: 'astronaut.png', face: ASTRONAUT_FACE };
// The cameraman scores ~0.54 as given: an upscaled, grainy copy may drop under FACE_MIN_SCORE, so
// he sits only for the smaller portraits (and the run checks every outcome anyway).
const CAMERAMAN: Sitter = { file: 'camera.png', face: { x: 196, y: 136, width: 71, height: 66 } };

/** Grain of ±`amplitude` on raw pixels, as a phone's sensor adds: JPEG sizes like a photo's, not a smooth upscale's. */
function addGrain(data: Buffer, amplitude: number, seed: number): Buffer {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i += 1) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = Math.max(0, Math.min(255, (data[i] as number) + ((x & 0xff) / 255 - 0.5) * 2 * amplitude));
  }
  return data;
}

/**
 * One portrait of `width`×(width × 4/3), upright: the sitter's 512² photo scaled to the portrait's
 * height and cropped to its width around the face, mirrored if asked, with grain.
 */
async function portrait(sitter: Sitter, width: number, seed: number, mirrored: boolean): Promise<{ data: Buffer; width: number; height: number; channels: 3 }> {
  const height = Math.round(width * ASPECT);
  const scale = height / 512;
  const faceCentre = (sitter.face.x + sitter.face.width / 2) * scale;
  // The face a little off centre, as people hold a phone, but always whole in the frame.
  const offset = ((seed % 5) - 2) * 0.05 * width;
  const left = Math.round(Math.max(0, Math.min(height - width, faceCentre - width / 2 + offset)));
  const flipped = mirrored ? height - left - width : left;
  let image = sharp(skimagePhoto(sitter.file)).removeAlpha().toColourspace('srgb').resize(height, height, { kernel: 'lanczos3' });
  if (mirrored) image = image.flop();
  const { data } = await image.extract({ left: flipped, top: 0, width, height }).raw().toBuffer({ resolveWithObject: true });
  return { data: addGrain(data, 10, seed), width, height, channels: 3 };
}

/** A portrait as described in `portraitPool`. */
export interface Portrait {
  readonly jpeg: Buffer;
  /** The upright size (what is stored), and whether the JPEG holds it sideways with EXIF orientation 6. */
  readonly width: number;
  readonly height: number;
  readonly sideways: boolean;
  readonly sitter: string;
}

/**
 * `count` phone-like portrait JPEGs with one real face each (scikit-image's public-domain
 * astronaut and cameraman, from Debian's python3-skimage): 3:4, widths spread log-uniformly from
 * 480 to 1200 (480×640 … 1200×1600), qualities 70-92, a third mirrored, every sixth stored
 * sideways with EXIF orientation 6 (as phones write them: it must pass once turned upright). The
 * face is ~100-390 pixels wide in the upright image (the detector's box), well over FACE_MIN_SIZE (64).
 */
export async function portraitPool(count: number, seed = 3): Promise<Portrait[]> {
  const pool: Portrait[] = [];
  for (let i = 0; i < count; i += 1) {
    const width = Math.round(480 * (1200 / 480) ** (count === 1 ? 0 : i / (count - 1)));
    const sitter = i % 4 === 3 && width <= 720 ? CAMERAMAN : ASTRONAUT;
    const upright = await portrait(sitter, width, seed * 1000 + i, i % 3 === 1);
    const quality = Math.round(70 + (22 * ((i * 7) % count)) / Math.max(1, count - 1));
    const sideways = i % 6 === 5;
    let image = sharp(upright.data, { raw: upright });
    // Sideways pixels (turned a quarter anticlockwise) with the orientation that turns them back.
    if (sideways) image = image.rotate(-90);
    const jpeg = await (sideways ? image.jpeg({ quality }).withMetadata({ orientation: 6 }) : image.jpeg({ quality })).toBuffer();
    pool.push({ jpeg, width: upright.width, height: upright.height, sideways, sitter: sitter.file });
  }
  return pool;
}
