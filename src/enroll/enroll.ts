/**
 * One job → its references. The use case, with no knowledge of queues: load every image, check
 * every image, and only then write — one bad image fails the job and nothing of it is stored.
 *
 * Checks run cheapest first, so a hostile job costs little: the bytes (type, size, structure) of
 * every image, then the header's dimensions, and only then the decode (`normalise`). The key names
 * the photo as received (so a redelivered job finds its references), while the stored bytes are
 * the normalised image.
 *
 * Bounded: a staged image is admitted against the memory budget by the size S3 reports before it
 * is read, and held until the job ends; when any part of the job fails, the rest is cancelled (the
 * job's AbortSignal reaches every download, decode wait and write), so a failed job stops costing.
 */
import { faceVerdict } from '../face/verdict.ts';
import type { FaceBox, Job, Reference, StoredReference } from '../job/contract.ts';
import { JobError } from '../job/errors.ts';
import { checkImage, sniffImage, type CheckedImageInfo } from '../image/images.ts';
import type { Grant, MemoryBudget } from './memory.ts';
import { checkDimensions, type ImageLimits, type ImageNormaliser, type Preview, type ReferencePath } from '../image/normalise.ts';
import { referenceKey, sha256Of, userPrefix, type PutResult, type ReferenceLister, type ReferenceWriter } from './references.ts';
import { checkStagedSource, decodeInline, loadImage, type StagedObjectFacts, type StagedObjectReader, type StagedObjectSizer, type StagingRules } from './sources.ts';

export type EnrollmentRules = StagingRules & ImageLimits;

/** What a job is doing, for the log line of a job that outlived its deadline. */
export type JobPhase = 'download' | 'decode' | 'detect' | 'write' | 'outcome';

/** The longest side of the upright preview a face is looked for in (the detector sees at most 512). */
export const FACE_PREVIEW_MAX_DIMENSION = 1024;

/** Wraps a wait for shared capacity: the job's deadline stands still while it waits its turn. */
export type WaitFor = <T>(wait: Promise<T>) => Promise<T>;

/** FACE_CHECK=one: how to find faces, and what makes one usable. */
export interface FaceCheck {
  /** Faces in upright RGB pixels, boxes in those pixels; waits its turn for a detector thread. */
  readonly detect: (
    pixels: Preview,
    options: { readonly minScore: number; readonly minFaceSize: number; readonly signal: AbortSignal; readonly waitFor?: WaitFor },
  ) => Promise<{ readonly faces: readonly FaceBox[]; readonly ms: number }>;
  readonly minScore: number;
  /** In stored pixels, the shorter side of the face box. */
  readonly minSize: number;
}

export interface EnrollmentDeps {
  readonly rules: EnrollmentRules;
  readonly readStaged: StagedObjectReader;
  /** The size of a staged object, before it is read; undefined when S3 does not say (e.g. 404). */
  readonly sizeOfStaged?: StagedObjectSizer;
  readonly normalise: ImageNormaliser;
  readonly writeReference: ReferenceWriter;
  /** Image bytes held by all jobs at once; unlimited when absent. */
  readonly memory?: MemoryBudget;
  /** Cancels the job: every download, decode wait and write stops. */
  readonly signal?: AbortSignal;
  /** Told when the job moves on to downloading, decoding or writing. */
  readonly onPhase?: (phase: JobPhase) => void;
  /** Told of each reference as soon as it is stored, so a job that fails later can report it. */
  readonly onStored?: (reference: Reference) => void;
  /**
   * Wraps a wait for shared capacity (memory, a decode slot, a detector thread): the job's deadline
   * does not run while the job only waits its turn — that is the worker being busy, not the job being
   * stuck. It does run while any of the job's work runs (see `stageClock`).
   */
  readonly waitFor?: WaitFor;
  /** FACE_CHECK=one: every image must show exactly one usable face. Undefined: no check. */
  readonly faceCheck?: FaceCheck;
}

export interface Enrollment {
  readonly references: readonly Reference[];
  /** How many of the references this job wrote; the rest were already stored. */
  readonly created: number;
  /** How each reference was made: `rebuilt` from its coefficients or pixels, `turned` in the coefficient domain, or decoded and `reencoded`. */
  readonly paths: readonly ReferencePath[];
  /** With FACE_CHECK=one: the time spent finding faces, in the detector threads. */
  readonly faceCheckMs?: number;
}

const label = (index: number) => `images[${index}]`;

/**
 * Runs `work` for every item; the first failure cancels the others (through `cancel`) and is what
 * the whole rejects with, once every item has stopped — so nothing of a failed job runs on after it.
 */
async function allOrNothing<T, R>(items: readonly T[], cancel: AbortController, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  let first: { error: unknown } | undefined;
  const results = await Promise.allSettled(
    items.map((item, index) =>
      work(item, index).catch((e: unknown) => {
        first ??= { error: e };
        cancel.abort(e);
        throw e;
      }),
    ),
  );
  if (first) throw first.error;
  return results.map((r) => (r as PromiseFulfilledResult<R>).value);
}

/** What the job's one admission gave: the memory held, and what each staged image's HEAD said. */
interface Admission {
  readonly grants: Grant[];
  /** By image index: the size and ETag its read is held to. */
  readonly facts: ReadonlyMap<number, StagedObjectFacts>;
}

/**
 * Admits the job's staged images against the memory budget before any is read: sized by the HEADs S3
 * answers, asked for in one request (a job never holds part of what it needs while waiting for the
 * rest), capped per image at what a read may bring. Sources that are not allowed are refused first,
 * before any request is made for them; an object its HEAD says is too large, before any memory is
 * asked for. Each read is then held to what its HEAD said (src/aws/s3.ts): the bytes admitted are
 * the bytes read.
 */
async function admitStaged(job: Job, deps: EnrollmentDeps, cancel: AbortController): Promise<Admission> {
  const { memory, sizeOfStaged } = deps;
  const staged = job.images.flatMap((source, index) => (source.kind === 's3' ? [{ source, index }] : []));
  if (!memory || !sizeOfStaged || staged.length === 0) return { grants: [], facts: new Map() };
  for (const { source, index } of staged) checkStagedSource(source, label(index), deps.rules);
  const { maxImageBytes } = deps.rules;
  const facts = await allOrNothing(staged, cancel, async ({ source, index }) => {
    const found = await sizeOfStaged(source.bucket, source.key, label(index), cancel.signal);
    if (found.size !== undefined && found.size > maxImageBytes) {
      throw new JobError('IMAGE_TOO_LARGE', `${label(index)} is ${found.size} bytes; the limit is ${maxImageBytes}`);
    }
    return found;
  });
  // Unknown size (S3 did not say): the most a read may bring.
  const total = facts.reduce<number>((sum, f) => sum + (f.size ?? maxImageBytes + 1), 0);
  const wait = memory.acquire(total, { signal: cancel.signal });
  const grant = await (deps.waitFor ? deps.waitFor(wait) : wait);
  return { grants: [grant], facts: new Map(staged.map(({ index }, i) => [index, facts[i] as StagedObjectFacts])) };
}

/**
 * The one usable face of an image, in stored pixels, or the job's error: the detector looks at the
 * upright preview the decode made (never a second decode), and the rules are about the stored image.
 */
async function findTheFace(preview: Preview | undefined, label: string, check: FaceCheck, signal: AbortSignal, waitFor: WaitFor): Promise<{ face: FaceBox; ms: number }> {
  // The normaliser was asked for a preview: without one this is our bug, retried, not the job's fault.
  if (!preview) throw new Error(`${label}: the decode gave no preview for the face check`);
  const found = await check.detect(preview, { minScore: check.minScore, minFaceSize: check.minSize * preview.scale, signal, waitFor });
  const verdict = faceVerdict(found.faces, { minScore: check.minScore, minSize: check.minSize, scaleToStored: 1 / preview.scale });
  if (!verdict.ok) throw new JobError(verdict.code, `${label} ${verdict.message}`);
  return { face: { ...verdict.face, score: Math.round(verdict.face.score * 1000) / 1000 }, ms: found.ms };
}

/**
 * The job's deadline in a stage of parallel branches (one per image): it stands still only while every
 * branch still running waits its turn for shared capacity (memory, a decode slot, a detector thread),
 * from the moment the last of them starts waiting until one is let through — never while one image
 * decodes and another waits, so no work of the job runs with the clock stopped.
 */
export function stageClock(waitFor: WaitFor | undefined, branches: number): { readonly waitFor: WaitFor; readonly ended: () => void } {
  let live = branches;
  let waiting = 0;
  let resume: (() => void) | undefined;
  const update = () => {
    const allWait = live > 0 && waiting === live;
    if (allWait && resume === undefined && waitFor) void waitFor(new Promise<void>((r) => (resume = r)));
    else if (!allWait && resume) {
      resume();
      resume = undefined;
    }
  };
  return {
    async waitFor<T>(wait: Promise<T>): Promise<T> {
      waiting += 1;
      update();
      try {
        return await wait;
      } finally {
        waiting -= 1;
        update();
      }
    },
    ended() {
      live -= 1;
      update();
    },
  };
}

/** A job's image once loaded and checked: its bytes, their hash and what they are. */
interface CheckedImage {
  readonly bytes: Buffer;
  readonly sha256: Buffer;
  readonly info: CheckedImageInfo;
  readonly index: number;
}

/** A reference ready to be written: its body, how it was made, and its face when checked. */
interface PlannedReference {
  readonly reference: Reference;
  readonly body: Buffer;
  readonly sha256: Buffer;
  readonly storedSha256: Buffer;
  readonly path: ReferencePath;
  readonly faceCheckMs: number;
}

/** Loads every image (inline first; staged ones after the job's one admission) and checks its bytes. */
async function loadAndCheck(job: Job, deps: EnrollmentDeps, cancel: AbortController, grants: Grant[]): Promise<CheckedImage[]> {
  // Whichever image fails first cancels the rest — the HEADs and GETs under way included.
  let admission: Promise<Admission> | undefined;
  const admitted = () =>
    (admission ??= admitStaged(job, deps, cancel).then((granted) => {
      grants.push(...granted.grants);
      return granted;
    }));
  const loaded = await allOrNothing(job.images, cancel, async (source, index) => {
    const facts = source.kind === 's3' ? (await admitted()).facts.get(index) : undefined;
    return loadImage(source, label(index), deps.rules, deps.readStaged, cancel.signal, facts);
  });
  return loaded.map(({ bytes, sha256 }, index) => {
    const info = checkImage(bytes, label(index), deps.rules.maxImageBytes);
    checkDimensions(info, label(index), deps.rules);
    return { bytes, sha256, info, index };
  });
}

/** Decodes one image into what is stored, and, with FACE_CHECK=one, finds its one face. */
async function prepare(key: string, image: CheckedImage, deps: EnrollmentDeps, cancel: AbortController, waitFor: WaitFor): Promise<PlannedReference> {
  const stored = await deps.normalise(image.bytes, image.info, label(image.index), deps.rules, {
    signal: cancel.signal,
    waitFor,
    ...(deps.faceCheck ? { preview: { maxDimension: FACE_PREVIEW_MAX_DIMENSION } } : {}),
  });
  let found: { face: FaceBox; ms: number } | undefined;
  if (deps.faceCheck) {
    deps.onPhase?.('detect');
    found = await findTheFace(stored.preview, label(image.index), deps.faceCheck, cancel.signal, waitFor);
  }
  const reference: Reference = {
    key,
    sha256: image.sha256.toString('hex'),
    contentType: image.info.type.contentType,
    bytes: stored.bytes.length,
    ...(found ? { face: found.face } : {}),
  };
  return { reference, body: stored.bytes, sha256: image.sha256, storedSha256: sha256Of(stored.bytes), path: stored.path, faceCheckMs: found?.ms ?? 0 };
}

async function write(job: Job, planned: PlannedReference, deps: EnrollmentDeps, signal: AbortSignal): Promise<PutResult> {
  const { reference, body, sha256, storedSha256 } = planned;
  // The face box goes with the object, so the verification service can crop without detecting again.
  const metadata = reference.face ? { metadata: { face: JSON.stringify(reference.face) } } : {};
  const result = await deps.writeReference({ key: reference.key, body, contentType: reference.contentType, sha256, storedSha256, jobId: job.jobId, ...metadata }, signal);
  deps.onStored?.(reference);
  return result;
}

export async function enroll(job: Job, deps: EnrollmentDeps): Promise<Enrollment> {
  const cancel = new AbortController();
  const stopWithJob = () => cancel.abort(deps.signal?.reason);
  if (deps.signal?.aborted) stopWithJob();
  deps.signal?.addEventListener('abort', stopWithJob, { once: true });
  const grants: Grant[] = [];
  try {
    deps.onPhase?.('download');
    const checked = await loadAndCheck(job, deps, cancel, grants);
    // The same photo twice in one job is one reference (and one decode), not two.
    const unique = new Map<string, CheckedImage>();
    for (const image of checked) {
      const key = referenceKey(job.userId, image.sha256.toString('hex'), image.info.type.ext);
      if (!unique.has(key)) unique.set(key, image);
    }
    deps.onPhase?.('decode');
    const images = [...unique];
    const clock = stageClock(deps.waitFor, images.length);
    const plan = await allOrNothing(images, cancel, ([key, image]) => prepare(key, image, deps, cancel, clock.waitFor).finally(clock.ended));
    deps.onPhase?.('write');
    const results = await allOrNothing(plan, cancel, (planned) => write(job, planned, deps, cancel.signal));
    return {
      references: plan.map((p) => p.reference),
      created: results.filter((r) => r === 'created').length,
      paths: plan.map((p) => p.path),
      ...(deps.faceCheck ? { faceCheckMs: Math.round(plan.reduce((sum, p) => sum + p.faceCheckMs, 0)) } : {}),
    };
  } finally {
    deps.signal?.removeEventListener('abort', stopWithJob);
    for (const grant of grants) grant.release();
  }
}

/**
 * The references of a job that exist in the bucket — written by an earlier attempt that failed
 * half-way — for the outcome of a job that ends failed. Only what can be named without reading a
 * staged object: inline images by their bytes, staged ones by the SHA-256 the job gives (either
 * extension). Images that are not images name no reference.
 */
export async function storedReferencesOf(job: Job, list: ReferenceLister, signal?: AbortSignal): Promise<StoredReference[]> {
  const candidates: StoredReference[] = [];
  for (const [index, source] of job.images.entries()) {
    if (source.kind === 's3') {
      candidates.push(
        { key: referenceKey(job.userId, source.sha256, 'jpg'), sha256: source.sha256, contentType: 'image/jpeg' },
        { key: referenceKey(job.userId, source.sha256, 'png'), sha256: source.sha256, contentType: 'image/png' },
      );
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = decodeInline(source.data, label(index), Number.MAX_SAFE_INTEGER);
    } catch {
      continue;
    }
    const type = sniffImage(bytes)?.type;
    if (type === undefined) continue;
    const sha256 = sha256Of(bytes).toString('hex');
    candidates.push({ key: referenceKey(job.userId, sha256, type.ext), sha256, contentType: type.contentType });
  }
  if (candidates.length === 0) return [];
  const existing = await list(userPrefix(job.userId), signal);
  return [...new Map(candidates.map((c) => [c.key, c])).values()].filter((c) => existing.has(c.key));
}
