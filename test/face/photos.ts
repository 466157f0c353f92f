// Face test photos: scikit-image's public-domain sample photographs, from Debian's python3-skimage
// package (no download), and what the face tests compose from them with sharp.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Pixels } from '../../src/face/pixels.ts';

export const SKIMAGE_DATA = '/usr/lib/python3/dist-packages/skimage/data';
export const SKIMAGE_APT = 'apt-get install -y python3-skimage';

/** The path of one sample photo; fails (never skips) with the install line when the package is missing. */
export function skimagePhoto(name: string): string {
  const path = join(SKIMAGE_DATA, name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: the face tests need scikit-image's sample photos from Debian's python3-skimage package (${SKIMAGE_APT})`);
  }
  return path;
}

/** Decoded pixels, as the worker's own decode will give them to the detector. */
export async function pixelsOf(image: string | Buffer | sharp.Sharp): Promise<Pixels> {
  const pipeline = typeof image === 'string' || Buffer.isBuffer(image) ? sharp(image) : image;
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (info.channels === 2) throw new Error('test setup: grey+alpha pixels; ask sharp for 1, 3 or 4 channels');
  return { data, width: info.width, height: info.height, channels: info.channels as 1 | 3 | 4 };
}

/** Two astronauts side by side: 1024×512, two faces. */
export async function twoAstronauts(): Promise<Buffer> {
  const astronaut = await sharp(skimagePhoto('astronaut.png')).png().toBuffer();
  return sharp({ create: { width: 1024, height: 512, channels: 3, background: '#808080' } })
    .composite([
      { input: astronaut, left: 0, top: 0 },
      { input: astronaut, left: 512, top: 0 },
    ])
    .png()
    .toBuffer();
}

/** The astronaut as a cut-out: opaque inside a circle around her face, transparent (and black) outside. */
export async function astronautCutOut(): Promise<Buffer> {
  const { data, info } = await sharp(skimagePhoto('astronaut.png')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const rgba = Buffer.alloc(info.width * info.height * 4);
  const [cx, cy, r] = [222, 140, 150];
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      const i = y * info.width + x;
      const inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
      for (let c = 0; c < 3; c++) rgba[i * 4 + c] = inside ? (data[i * 3 + c] as number) : 0;
      rgba[i * 4 + 3] = inside ? 255 : 0;
    }
  }
  return sharp(rgba, { raw: { width: info.width, height: info.height, channels: 4 } }).png().toBuffer();
}

/** The astronaut's face box in astronaut.png (512×512), as the detector finds it, for checks with a margin. */
export const ASTRONAUT_FACE = { x: 162, y: 79, width: 122, height: 106 } as const;
