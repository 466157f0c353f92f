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
