/**
 * FACE_CHECK=one, as the worker runs it: the detector's threads start with the worker (each loads the
 * models once, ~65–75 MB), are probed before the first job, and a job waits its turn for a thread — a
 * line of its own, through the job's `waitFor` (its deadline stands still while the job only waits)
 * — so no unbounded queue of pixels builds up in them.
 */
import type { Config } from '../config.ts';
import type { FaceCheck } from '../enroll/enroll.ts';
import { createMemoryBudget } from '../enroll/memory.ts';
import { createFaceDetector, type FaceDetector, type FaceDetectorOptions, type ProbeResult } from '../face/detector.ts';

export interface FaceChecking {
  readonly threads: number;
  /** The check for one job, with the rules in force (it waits its turn through the job's `waitFor`). */
  forJob(rules: Config): FaceCheck;
  probe(): Promise<ProbeResult>;
  close(): Promise<void>;
}

/**
 * Undefined when FACE_CHECK=off: no threads, no memory. `createDetector` is passed in so that tests
 * can share one detector's threads (each loads the models) among many face checks.
 */
export function startFaceChecking(config: Config, createDetector: (options: FaceDetectorOptions) => FaceDetector = createFaceDetector): FaceChecking | undefined {
  if (config.faceCheck !== 'one') return undefined;
  const detector = createDetector(config.faceThreads === undefined ? {} : { threads: config.faceThreads });
  // A budget of `threads` units, one per detection: a counting semaphore whose waits can be cancelled.
  const turns = createMemoryBudget(detector.threads);
  return {
    threads: detector.threads,
    forJob: (rules) => ({
      minScore: rules.faceMinScore,
      minSize: rules.faceMinSize,
      async detect(pixels, { signal, waitFor, ...options }) {
        const wait = turns.acquire(1, { signal });
        const turn = await (waitFor ? waitFor(wait) : wait);
        try {
          return await detector.detect(pixels, { ...options, signal });
        } finally {
          turn.release();
        }
      },
    }),
    probe: () => detector.probe(),
    close: () => detector.close(),
  };
}
