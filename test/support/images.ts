// Real JPEG and PNG files for tests, made with sharp: random pixels, so every call is a new photo
// (a new SHA-256, a new reference key) unless the same seed is given.
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

export function jpegImage(options: ImageOptions = {}): Promise<Buffer> {
  const { width = 64, height = 48, seed = randomSeed() } = options;
  return sharp(pixels(width, height, seed), { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}

export function pngImage(options: ImageOptions = {}): Promise<Buffer> {
  const { width = 64, height = 48, seed = randomSeed() } = options;
  return sharp(pixels(width, height, seed), { raw: { width, height, channels: 3 } }).png().toBuffer();
}
