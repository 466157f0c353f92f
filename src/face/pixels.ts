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
 * RGB scaled down so its longer side is at most `maxSide`, by area averaging (each output pixel is
 * the mean of the input pixels it covers). The network never sees more than its input size, so a
 * large picture is shrunk here, in plain JavaScript (~10 ms for 12 megapixels), rather than as a
 * tensor: the WebAssembly heap never shrinks, and a 1600×1200 picture as int32 then float32 tensors
 * padded to a square grew each thread by ~100 MB more (measured).
 */
export function shrinkRgb(rgb: Uint8Array, width: number, height: number, maxSide: number): { rgb: Uint8Array; width: number; height: number } {
  const longer = Math.max(width, height);
  if (longer <= maxSide) return { rgb, width, height };
  const scale = maxSide / longer;
  const outW = Math.max(1, Math.round(width * scale));
  const outH = Math.max(1, Math.round(height * scale));
  const out = new Uint8Array(outW * outH * 3);
  // Column spans once, row spans per output row: [start, end) of input pixels for each output pixel.
  const spans = (outSize: number, inSize: number) =>
    Array.from({ length: outSize }, (_, o) => {
      const start = Math.floor((o * inSize) / outSize);
      return [start, Math.max(start + 1, Math.floor(((o + 1) * inSize) / outSize))] as const;
    });
  const cols = spans(outW, width);
  const rows = spans(outH, height);
  const sums = new Float64Array(outW * 3);
  for (let oy = 0; oy < outH; oy++) {
    const [y0, y1] = rows[oy] as readonly [number, number];
    sums.fill(0);
    for (let y = y0; y < y1; y++) {
      const rowStart = y * width * 3;
      for (let ox = 0; ox < outW; ox++) {
        const [x0, x1] = cols[ox] as readonly [number, number];
        let r = 0;
        let g = 0;
        let b = 0;
        for (let i = rowStart + x0 * 3, end = rowStart + x1 * 3; i < end; i += 3) {
          r += rgb[i] as number;
          g += rgb[i + 1] as number;
          b += rgb[i + 2] as number;
        }
        sums[ox * 3] = (sums[ox * 3] as number) + r;
        sums[ox * 3 + 1] = (sums[ox * 3 + 1] as number) + g;
        sums[ox * 3 + 2] = (sums[ox * 3 + 2] as number) + b;
      }
    }
    for (let ox = 0; ox < outW; ox++) {
      const [x0, x1] = cols[ox] as readonly [number, number];
      const n = (x1 - x0) * (y1 - y0);
      const o = (oy * outW + ox) * 3;
      out[o] = Math.round((sums[ox * 3] as number) / n);
      out[o + 1] = Math.round((sums[ox * 3 + 1] as number) / n);
      out[o + 2] = Math.round((sums[ox * 3 + 2] as number) / n);
    }
  }
  return { rgb: out, width: outW, height: outH };
}
