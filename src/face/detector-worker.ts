/**
 * The body of one detector thread (a piscina worker): loads the model once, then turns pixels into
 * face boxes. Everything here runs off the main thread — the WebAssembly inference is ~50–600 ms of
 * synchronous CPU that would otherwise stall heartbeats and every other job.
 *
 * Model: TinyFaceDetector, whose weights (190 KB) ship inside @vladmandic/face-api (MIT) in
 * `model/`; it runs on tfjs-core with the WebAssembly backend, whose .wasm files ship inside
 * @tensorflow/tfjs-backend-wasm and are read from disk. Nothing is downloaded.
 */
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { workerData } from 'node:worker_threads';
import { shrinkRgb, toRgb, type Pixels } from './pixels.ts';
import { clipToImage, mergeFaces, planInputSizes } from './plan.ts';
import { tfjsCoreForFaceApi } from './tfjs-core-only.ts';
import type { Face } from './verdict.ts';

export interface DetectTask extends Pixels {
  readonly minScore: number;
  readonly minFaceSize: number;
}

export interface DetectResult {
  readonly faces: Face[];
  /** The network input sizes that were run (two, see plan.ts). */
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

  return async function detect(task: DetectTask): Promise<DetectResult> {
    const started = performance.now();
    const inputSizes = planInputSizes(task.width, task.height, task.minFaceSize);
    // Shrunk to the largest network input first: the network would scale it down to that anyway.
    const small = shrinkRgb(toRgb(task), task.width, task.height, Math.max(...inputSizes));
    const [backX, backY] = [task.width / small.width, task.height / small.height];
    const image = tf.tensor3d(small.rgb, [small.height, small.width, 3], 'int32');
    const found: Face[] = [];
    try {
      for (const inputSize of inputSizes) {
        const detections = await faceapi.nets.tinyFaceDetector.locateFaces(
          image,
          new faceapi.TinyFaceDetectorOptions({ inputSize, scoreThreshold: task.minScore }),
        );
        for (const { box, score } of detections) {
          const face = { x: box.x * backX, y: box.y * backY, width: box.width * backX, height: box.height * backY, score };
          found.push(clipToImage(face, task.width, task.height));
        }
      }
    } finally {
      image.dispose();
    }
    return {
      faces: mergeFaces(found),
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
