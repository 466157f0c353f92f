/**
 * The JPEG codec the worker rebuilds references with: libjpeg-turbo through a small Node-API addon
 * (src/native/jpeg.c, built by node-gyp at `npm ci`). sharp's libvips hides its libjpeg symbols, so
 * reading a file's DCT coefficients and writing new files from them needs a libjpeg of our own.
 *
 * A worker without it does not start (exit 78, the fix in the message): references made without it
 * would be re-encoded (lossy) or stored as received (unsafe), and neither is what docs/images.md promises.
 */
import { createRequire } from 'node:module';

/** The frame as libjpeg reads it: the one source of truth for what a JPEG is. */
export interface JpegFacts {
  readonly width: number;
  readonly height: number;
  readonly components: number;
  /** Bits per sample (libjpeg62-turbo reads 8 only: others throw). */
  readonly precision: number;
  /** What decoding holds for the whole image: one 128-byte block per 8×8 block, MCU-padded. */
  readonly coefficientBytes: number;
  readonly progressive: boolean;
  readonly arithmetic: boolean;
  /** libjpeg's reading of the components (JFIF, Adobe transform, component ids). */
  readonly colorSpace: 'grey' | 'ycbcr' | 'rgb' | 'cmyk' | 'ycck' | 'unknown';
  /** [horizontal, vertical] sampling factors, by component. */
  readonly sampling: readonly (readonly [number, number])[];
  /** By EXIF orientation 1–8 (index 0 is 1): can it be applied in the coefficient domain exactly? */
  readonly perfect: readonly boolean[];
}

export interface RebuiltJpeg {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  /** Scans libjpeg read. */
  readonly scans: number;
}

interface JpegAddon {
  inspect(jpeg: Buffer, maxScans: number): JpegFacts;
  rebuild(jpeg: Buffer, orientation: number, maxScans: number, maxBytes: number): Promise<RebuiltJpeg>;
  rebuild(jpeg: Buffer, orientation: 0, maxScans: number, maxBytes: number): Promise<{ scans: number }>;
  readonly libVersion: number;
}

export interface JpegCodec {
  /** The header, read by libjpeg; throws a `JpegError` on an error or a warning. Microseconds. */
  inspect(jpeg: Buffer, maxScans: number): JpegFacts;
  /**
   * A new JPEG from the coefficients alone (baseline, standard Huffman tables), turned by the EXIF
   * `orientation` in the coefficient domain; off the event loop. Rejects with a `JpegError` on any
   * error or warning, past `maxScans`, or when the output would pass `maxBytes`.
   */
  rebuild(jpeg: Buffer, orientation: number, limits: { readonly maxScans: number; readonly maxBytes: number }): Promise<RebuiltJpeg>;
  /** Reads the coefficients and nothing else: the benchmark's floor. */
  readCoefficients(jpeg: Buffer, maxScans: number): Promise<{ scans: number }>;
}

/** libjpeg refused the file: its message, or ours (the scan limit, the output ceiling). */
export class JpegError extends Error {
  override readonly name = 'JpegError';
}

const ADDON = '../../build/Release/jpeg.node';

const asJpegError = (e: unknown): unknown => ((e as { code?: unknown } | null)?.code === 'EJPEG' ? new JpegError((e as Error).message, { cause: e }) : e);

let loaded: JpegCodec | undefined;

/** The codec, loaded once; throws a plain Error saying how to build it when the addon is missing. */
export function jpegCodec(): JpegCodec {
  if (loaded) return loaded;
  let addon: JpegAddon;
  try {
    addon = createRequire(import.meta.url)(ADDON) as JpegAddon;
  } catch (e: unknown) {
    throw new Error(
      `the JPEG codec (build/Release/jpeg.node) could not be loaded (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): ` +
        'build it with `npm rebuild` where python3, make, a C compiler and libjpeg-turbo\'s headers (Debian: libjpeg62-turbo-dev) are installed; a release carries it built',
      { cause: e },
    );
  }
  loaded = {
    inspect(jpeg, maxScans) {
      try {
        return addon.inspect(jpeg, maxScans);
      } catch (e: unknown) {
        throw asJpegError(e);
      }
    },
    rebuild: (jpeg, orientation, limits) => addon.rebuild(jpeg, orientation, limits.maxScans, limits.maxBytes).catch((e: unknown) => Promise.reject(asJpegError(e))),
    readCoefficients: (jpeg, maxScans) => addon.rebuild(jpeg, 0, maxScans, 1024).catch((e: unknown) => Promise.reject(asJpegError(e))),
  };
  return loaded;
}
