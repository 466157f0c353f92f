/**
 * The body of one detector thread (a piscina worker): loads the model once, then turns pixels into
 * face boxes. Everything here runs off the main thread — the WebAssembly inference is tens to
 * hundreds of milliseconds of synchronous CPU per image that would otherwise stall heartbeats and
 * every other job.
 *
 * Model: TinyFaceDetector, whose weights (190 KB) ship inside @vladmandic/face-api (MIT) in
 * `model/`; it runs on tfjs-core with the WebAssembly backend, whose .wasm files ship inside
 * @tensorflow/tfjs-backend-wasm and are read from disk. Nothing is downloaded.
 */
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { workerData } from 'node:worker_threads';
import { shrinkRgb, toRgb, type Pixels } from './pixels.ts';
import { MAX_INPUT_SIZE, clipToImage, mergeFaces, planDetection, unsureScore } from './plan.ts';
import { tfjsCoreForFaceApi } from './tfjs-core-only.ts';
import type { Face } from './verdict.ts';

export interface DetectTask extends Pixels {
  readonly minScore: number;
  readonly minFaceSize: number;
}

export interface DetectResult {
  readonly faces: Face[];
  /** The network input sizes that were run, in order (see plan.ts). */
  readonly inputSizes: number[];
  /** CPU-bound time in this thread, queue wait excluded. */
  readonly ms: number;
  /** Live tensors after the call: the model's weights only, or something leaks. */
  readonly tensors: number;
  readonly model: string;
  readonly backend: string;
}

export interface DetectorWorkerData {
  /** Where the model files are; the package's own `model/` when absent (tests point it elsewhere). */
  readonly modelDirectory?: string;
}

/** The few parts of face-api this thread uses (its full typings pull in tfjs' union package). */
interface FaceApi {
  readonly nets: {
    readonly tinyFaceDetector: {
      loadFromDisk(directory: string): Promise<void>;
      locateFaces(input: unknown, options: unknown): Promise<Array<{ score: number; box: { x: number; y: number; width: number; height: number } }>>;
    };
  };
  readonly TinyFaceDetectorOptions: new (options: { inputSize: number; scoreThreshold: number }) => unknown;
}

const require = createRequire(import.meta.url);

async function loadDetector(options: DetectorWorkerData): Promise<(task: DetectTask) => Promise<DetectResult>> {
  const tf = tfjsCoreForFaceApi();
  const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js') as FaceApi;
  const version = (require('@vladmandic/face-api/package.json') as { version: string }).version;
  const model = `TinyFaceDetector (@vladmandic/face-api ${version})`;
  // No fallback to the pure-JS backend: 20× slower, it would pass `check` and then starve the host.
  if (!(await tf.setBackend('wasm'))) throw new Error('the tfjs WebAssembly backend did not start');
  await tf.ready();
  const packageDir = dirname(require.resolve('@vladmandic/face-api/package.json'));
  await faceapi.nets.tinyFaceDetector.loadFromDisk(options.modelDirectory ?? join(packageDir, 'model'));
  const locate = async (image: unknown, inputSize: number, scoreThreshold: number) =>
    faceapi.nets.tinyFaceDetector.locateFaces(image, new faceapi.TinyFaceDetectorOptions({ inputSize, scoreThreshold }));
  // One run at the largest size now: the WebAssembly heap grows once, in one piece, and every later
  // run fits in it (grown run by run, it fragments: 448 then 512 needed 194 MB instead of 145).
  const blank = tf.zeros([MAX_INPUT_SIZE, MAX_INPUT_SIZE, 3], 'int32');
  try {
    await locate(blank, MAX_INPUT_SIZE, 0.5);
  } finally {
    blank.dispose();
  }

  return async function detect(task: DetectTask): Promise<DetectResult> {
    const started = performance.now();
    const plan = planDetection(task.width, task.height, task.minFaceSize);
    // Shrunk to the largest network input first: the network would scale it down to that anyway.
    const largest = Math.max(...plan.sizes, plan.secondLook ?? 0);
    const small = shrinkRgb(toRgb(task), task.width, task.height, largest);
    const [backX, backY] = [task.width / small.width, task.height / small.height];
    const image = tf.tensor3d(small.rgb, [small.height, small.width, 3], 'int32');
    const unsure = Math.min(task.minScore, unsureScore(task.minScore));
    const found: Face[] = [];
    const inputSizes: number[] = [];
    const run = async (inputSize: number) => {
      inputSizes.push(inputSize);
      for (const { box, score } of await locate(image, inputSize, unsure)) {
        const face = { x: box.x * backX, y: box.y * backY, width: box.width * backX, height: box.height * backY, score };
        found.push(clipToImage(face, task.width, task.height));
      }
    };
    try {
      for (const inputSize of plan.sizes) await run(inputSize);
      const nearMiss = found.some((f) => f.score < task.minScore);
      if (nearMiss && plan.secondLook !== undefined) await run(plan.secondLook);
    } finally {
      image.dispose();
    }
    return {
      // Merged with the near misses, so a face seen twice is one face; then only those that count.
      faces: mergeFaces(found).filter((f) => f.score >= task.minScore),
      inputSizes,
      ms: performance.now() - started,
      tensors: tf.memory().numTensors,
      model,
      backend: tf.getBackend(),
    };
  };
}

/**
 * piscina awaits the default export when the thread starts: the model is loaded once per thread.
 * A model that does not load must not reject it — piscina would end the thread and start another,
 * forever — so each task fails instead, with the reason, and `check` says so.
 */
export default loadDetector((workerData ?? {}) as DetectorWorkerData).catch((e: unknown) => {
  const reason = e instanceof Error ? e.message : String(e);
  return async (): Promise<DetectResult> => {
    throw new Error(`the face model did not load: ${reason}`);
  };
});
