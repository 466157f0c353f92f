/**
 * FACE_CHECK=one, as the worker runs it: the detector's threads start with the worker (each loads the
 * models once, ~65–75 MB), are probed before the first job, and a job waits its turn for a thread — a
 * line of its own, outside the job's deadline — so no unbounded queue of pixels builds up in them.
 */
import type { Config } from '../config.ts';
import type { FaceCheck } from '../enroll/enroll.ts';
import { createMemoryBudget } from '../enroll/memory.ts';
import { createFaceDetector, type ProbeResult } from '../face/detector.ts';

export interface FaceChecking {
  readonly threads: number;
  /** The check for one job, with the rules in force and the job's way of waiting its turn. */
  forJob(rules: Config, waitFor: <T>(wait: Promise<T>) => Promise<T>): FaceCheck;
  probe(): Promise<ProbeResult>;
  close(): Promise<void>;
}

/** Undefined when FACE_CHECK=off: no threads, no memory. */
export function startFaceChecking(config: Config): FaceChecking | undefined {
  if (config.faceCheck !== 'one') return undefined;
  const detector = createFaceDetector(config.faceThreads === undefined ? {} : { threads: config.faceThreads });
  // A budget of `threads` units, one per detection: a counting semaphore whose waits can be cancelled.
  const turns = createMemoryBudget(detector.threads);
  return {
    threads: detector.threads,
    forJob: (rules, waitFor) => ({
      minScore: rules.faceMinScore,
      minSize: rules.faceMinSize,
      async detect(pixels, { signal, ...options }) {
        const turn = await waitFor(turns.acquire(1, { signal }));
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
