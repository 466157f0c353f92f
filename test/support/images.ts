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
