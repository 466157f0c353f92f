/**
 * The detector's input: already-decoded, upright pixels, as the caller's own decode gave them
 * (sharp's raw output: 8 bits per channel, interleaved, rows top to bottom). No second decode.
 */

export interface Pixels {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  /** 1 grey, 3 RGB, 4 RGBA. (Grey+alpha, 2, is not accepted: ask sharp for 1, 3 or 4.) */
  readonly channels: 1 | 3 | 4;
}

/** Throws a RangeError for pixels whose buffer does not match their stated shape: a caller's bug. */
export function checkPixels(pixels: Pixels): void {
  const { width, height, channels, data } = pixels;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`pixels must have a positive whole width and height, not ${width}×${height}`);
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new RangeError(`pixels must have 1, 3 or 4 channels, not ${String(channels)}`);
  }
  if (data.length !== width * height * channels) {
    throw new RangeError(`${width}×${height}×${channels} pixels need ${width * height * channels} bytes, not ${data.length}`);
  }
}

/**
 * Interleaved RGB for the network. Grey is repeated into the three channels; transparency is
 * flattened onto white, as a viewer shows it — the colour values under transparent pixels are
 * arbitrary (often black) and would otherwise draw shapes the picture does not show.
 */
export function toRgb(pixels: Pixels): Uint8Array {
  checkPixels(pixels);
  const { data, width, height, channels } = pixels;
  if (channels === 3) return data;
  const count = width * height;
  const rgb = new Uint8Array(count * 3);
  if (channels === 1) {
    for (let i = 0; i < count; i++) {
      const v = data[i] as number;
      rgb[i * 3] = v;
      rgb[i * 3 + 1] = v;
      rgb[i * 3 + 2] = v;
    }
    return rgb;
  }
  for (let i = 0; i < count; i++) {
    const a = data[i * 4 + 3] as number;
    const white = 255 * (255 - a);
    rgb[i * 3] = Math.round(((data[i * 4] as number) * a + white) / 255);
    rgb[i * 3 + 1] = Math.round(((data[i * 4 + 1] as number) * a + white) / 255);
    rgb[i * 3 + 2] = Math.round(((data[i * 4 + 2] as number) * a + white) / 255);
  }
  return rgb;
}

/**
 * A rectangle of an image as a network's input: the image from (x, y), in its pixels, scaled by
 * `scale` network pixels per image pixel, `width` × `height` network pixels. It may reach past the
 * image's edges (black there).
 */
export interface Region {
  readonly x: number;
  readonly y: number;
  readonly scale: number;
  readonly width: number;
  readonly height: number;
  /** Boxes larger than this (image pixels) found here are not proposed: another region's scale finds them. */
  readonly maxFace?: number;
}

/** A square of an image (its pixels) as a `size` × `size` input. */
export function squareRegion(square: { readonly x: number; readonly y: number; readonly side: number }, size: number): Region {
  return { x: square.x, y: square.y, scale: size / square.side, width: size, height: size };
}

/**
 * A region of interleaved RGB as a network's input: width × height × 3 floats in -1..1 (BlazeFace's
 * range), black where the region lies outside the image. Shrunk by area averaging (each input value
 * the mean of the pixels it covers), enlarged bilinearly. Done here, in plain JavaScript, rather
 * than as tensors: the WebAssembly heap never shrinks, and a large picture as a float tensor would
 * grow every thread's heap by its size for good.
 */
export function regionInput(rgb: Uint8Array, width: number, height: number, region: Region): Float32Array {
  const { width: outWidth, height: outHeight } = region;
  const out = new Float32Array(outWidth * outHeight * 3).fill(-1);
  const step = 1 / region.scale;
  const put = (o: number, r: number, g: number, b: number) => {
    out[o] = r / 127.5 - 1;
    out[o + 1] = g / 127.5 - 1;
    out[o + 2] = b / 127.5 - 1;
  };
  if (step <= 1) {
    // Enlarging: bilinear, sampling pixel centres; outside the image is black.
    const at = (x: number, y: number, c: number) => (x < 0 || y < 0 || x >= width || y >= height ? 0 : (rgb[(y * width + x) * 3 + c] as number));
    for (let oy = 0; oy < outHeight; oy++) {
      const sy = region.y + (oy + 0.5) * step - 0.5;
      const y0 = Math.floor(sy);
      const fy = sy - y0;
      for (let ox = 0; ox < outWidth; ox++) {
        const sx = region.x + (ox + 0.5) * step - 0.5;
        const x0 = Math.floor(sx);
        const fx = sx - x0;
        const v = (c: number) =>
          (at(x0, y0, c) * (1 - fx) + at(x0 + 1, y0, c) * fx) * (1 - fy) + (at(x0, y0 + 1, c) * (1 - fx) + at(x0 + 1, y0 + 1, c) * fx) * fy;
        put((oy * outWidth + ox) * 3, v(0), v(1), v(2));
      }
    }
    return out;
  }
  // Shrinking: each output pixel is the mean of the whole pixels its span covers (outside: black).
  const span = (o: number, origin: number) => {
    const start = Math.floor(origin + o * step);
    return [start, Math.max(start + 1, Math.floor(origin + (o + 1) * step))] as const;
  };
  const cols = Array.from({ length: outWidth }, (_, o) => span(o, region.x));
  for (let oy = 0; oy < outHeight; oy++) {
    const [y0, y1] = span(oy, region.y);
    const inY0 = Math.max(0, y0);
    const inY1 = Math.min(height, y1);
    for (let ox = 0; ox < outWidth; ox++) {
      const [x0, x1] = cols[ox] as readonly [number, number];
      const inX0 = Math.max(0, x0);
      const inX1 = Math.min(width, x1);
      let r = 0;
      let g = 0;
      let b = 0;
      for (let y = inY0; y < inY1; y++) {
        for (let i = (y * width + inX0) * 3, end = (y * width + inX1) * 3; i < end; i += 3) {
          r += rgb[i] as number;
          g += rgb[i + 1] as number;
          b += rgb[i + 2] as number;
        }
      }
      const n = (x1 - x0) * (y1 - y0);
      put((oy * outWidth + ox) * 3, r / n, g / n, b / n);
    }
  }
  return out;
}

/**
 * A square network input (`size` × `size` × 3, as regionInput gives it) turned `degrees` clockwise about
 * its centre, bilinearly; corners that come from outside it are black (-1).
 */
export function turnInput(input: Float32Array, size: number, degrees: number): Float32Array {
  const out = new Float32Array(input.length).fill(-1);
  const rad = (degrees * Math.PI) / 180;
  const [cos, sin] = [Math.cos(rad), Math.sin(rad)];
  const c = (size - 1) / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // The source of output (x, y): turned back by the angle.
      const sx = cos * (x - c) + sin * (y - c) + c;
      const sy = -sin * (x - c) + cos * (y - c) + c;
      if (sx < -0.5 || sy < -0.5 || sx > size - 0.5 || sy > size - 0.5) continue;
      const x0 = Math.min(size - 1, Math.max(0, Math.floor(sx)));
      const y0 = Math.min(size - 1, Math.max(0, Math.floor(sy)));
      const x1 = Math.min(size - 1, x0 + 1);
      const y1 = Math.min(size - 1, y0 + 1);
      const fx = Math.min(1, Math.max(0, sx - x0));
      const fy = Math.min(1, Math.max(0, sy - y0));
      for (let ch = 0; ch < 3; ch++) {
        const at = (px: number, py: number) => input[(py * size + px) * 3 + ch] as number;
        out[(y * size + x) * 3 + ch] = (at(x0, y0) * (1 - fx) + at(x1, y0) * fx) * (1 - fy) + (at(x0, y1) * (1 - fx) + at(x1, y1) * fx) * fy;
      }
    }
  }
  return out;
}
