/**
 * The job and outcome messages, contract v1. Upstream services depend on these shapes: change
 * them only by adding optional fields, or by a new version.
 */
import { z } from 'zod';
import { JobError, type JobErrorCode } from './errors.ts';
import { normaliseUserId, type UserId } from './user-id.ts';

export const CONTRACT_VERSION = 1;

const JOB_ID = /^[A-Za-z0-9._:-]{1,128}$/;
export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** How far ahead of the worker's clock `issuedAt` may be (producers' clocks drift). */
export const CLOCK_SKEW_SECONDS = 300;
/** SQS's longest retention: a job cannot sit in a queue for longer. */
export const MAX_JOB_AGE_SECONDS = 1_209_600;

const jobIdSchema = z.string({ error: 'jobId must be a string' }).regex(JOB_ID, {
  error: 'jobId must be 1-128 characters of A-Z a-z 0-9 . _ : -',
});

const inlineImageSchema = z.object({ data: z.string({ error: 'must be a base64 string' }) });
const stagedImageSchema = z.object({
  s3: z.object({
    // S3's own limit: a longer "bucket" cannot exist, and would only carry junk into messages.
    bucket: z
      .string({ error: 'must be a string' })
      .min(1, { error: 'must not be empty' })
      .max(63, { error: 'must be at most 63 characters' }),
    key: z
      .string({ error: 'must be a string' })
      .min(1, { error: 'must not be empty' })
      .max(1024, { error: 'must be at most 1024 characters' }),
    // Pins the staged bytes: the signature covers the body, and the body names these bytes, so
    // an object overwritten after signing is refused (SOURCE_MISMATCH), not stored.
    sha256: z
      .string({ error: 'is required: the SHA-256 of the staged object, 64 lower-case hex digits' })
      .regex(SHA256_HEX, { error: 'must be 64 lower-case hex digits (the SHA-256 of the staged object)' }),
  }),
});

const IMAGE_SHAPE = 'must be {"data": "<base64>"} or {"s3": {"bucket": "...", "key": "...", "sha256": "..."}}';

/** Unknown extra fields are ignored, here and inside images, for forward compatibility. */
const jobSchema = z.object({
  version: z.literal(CONTRACT_VERSION),
  jobId: jobIdSchema,
  userId: z.string({ error: 'userId must be a string' }),
  images: z.array(z.unknown(), { error: 'images must be an array' }).min(1, { error: 'images must not be empty' }),
});

export type ImageSource =
  | { readonly kind: 'inline'; readonly data: string }
  | { readonly kind: 's3'; readonly bucket: string; readonly key: string; readonly sha256: string };

export interface Job {
  readonly version: 1;
  readonly jobId: string;
  readonly userId: UserId;
  readonly images: readonly ImageSource[];
  /** When the producer built the job, seconds since the Unix epoch (signed with the body). */
  readonly issuedAt?: number;
}

export interface ContractLimits {
  readonly maxImagesPerJob: number;
  /** `issuedAt` must be present (the worker checks signatures). Default false. */
  readonly requireIssuedAt?: boolean;
  /** A job issued longer ago than this is JOB_EXPIRED. Default MAX_JOB_AGE_SECONDS. */
  readonly maxJobAgeSeconds?: number;
}

export type ParsedJob =
  | { readonly ok: true; readonly job: Job }
  | { readonly ok: false; readonly error: JobError; readonly jobId: string | null; readonly userId: UserId | null };

/** `path: message; ...` — one readable line for logs and dead-letter attributes. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((i) => {
      const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
      const where = path.replace(/^\./, '');
      return where && !i.message.startsWith(where) ? `${where}: ${i.message}` : i.message;
    })
    .join('; ');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A short, log-safe rendering of a value the sender put where it should not be. Never serialises
 * a nested value: a body of deeply nested arrays must not overflow the stack here.
 */
function preview(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object' && v !== null) return 'an object';
  return String(v);
}

/** Why `issuedAt` makes the job unusable at `nowSeconds`, if it does. */
function issuedAtProblem(
  issuedAt: unknown,
  limits: ContractLimits,
  nowSeconds: number,
): { code: JobErrorCode; message: string } | undefined {
  if (issuedAt === undefined) {
    return limits.requireIssuedAt === true
      ? { code: 'INVALID_MESSAGE', message: 'issuedAt is required: signed jobs carry the time they were built, in seconds since the Unix epoch' }
      : undefined;
  }
  if (typeof issuedAt !== 'number' || !Number.isSafeInteger(issuedAt) || issuedAt < 0) {
    return { code: 'INVALID_MESSAGE', message: `issuedAt must be a whole number of seconds since the Unix epoch (got ${preview(issuedAt)})` };
  }
  const age = Math.floor(nowSeconds) - issuedAt;
  if (-age > CLOCK_SKEW_SECONDS) {
    return {
      code: 'INVALID_MESSAGE',
      message: `issuedAt is ${-age} s ahead of the worker's clock (at most ${CLOCK_SKEW_SECONDS} s of clock skew is allowed)`,
    };
  }
  const maxAge = limits.maxJobAgeSeconds ?? MAX_JOB_AGE_SECONDS;
  if (age > maxAge) {
    return {
      code: 'JOB_EXPIRED',
      message: `the job was issued ${age} s ago; jobs expire after ${maxAge} s (SIGNED_JOB_MAX_AGE_SECONDS): issue it again`,
    };
  }
  return undefined;
}

/**
 * Reads a message body into a Job, or says exactly why not. Never throws: a bad job is a value.
 * The ids are read as far as they can be, so a failed outcome can still be correlated.
 */
export function parseJob(body: string, limits: ContractLimits, nowMs: number = Date.now()): ParsedJob {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return fail('INVALID_MESSAGE', 'the message body is not valid JSON');
  }
  if (!isPlainObject(raw)) return fail('INVALID_MESSAGE', 'the message body must be a JSON object');

  const jobId = jobIdSchema.safeParse(raw.jobId).data ?? null;
  const userIdResult = typeof raw.userId === 'string' ? normaliseUserId(raw.userId) : undefined;
  const userId = userIdResult?.ok ? userIdResult.userId : null;
  const failWithIds = (code: JobErrorCode, message: string): ParsedJob => ({
    ok: false,
    error: new JobError(code, message),
    jobId,
    userId,
  });

  if (!('version' in raw)) return failWithIds('INVALID_MESSAGE', 'version is required');
  if (raw.version !== CONTRACT_VERSION) {
    return failWithIds(
      'UNSUPPORTED_VERSION',
      `version ${preview(raw.version)} is not supported (this worker reads version ${CONTRACT_VERSION})`,
    );
  }

  const shape = jobSchema.safeParse(raw);
  if (!shape.success) return failWithIds('INVALID_MESSAGE', formatIssues(shape.error.issues));
  const expiry = issuedAtProblem(raw.issuedAt, limits, nowMs / 1000);
  if (expiry) return failWithIds(expiry.code, expiry.message);
  if (userIdResult && !userIdResult.ok) return failWithIds('INVALID_USER_ID', userIdResult.reason);
  if (shape.data.images.length > limits.maxImagesPerJob) {
    return failWithIds(
      'TOO_MANY_IMAGES',
      `a job may carry at most ${limits.maxImagesPerJob} images (this one has ${shape.data.images.length})`,
    );
  }

  const images: ImageSource[] = [];
  for (const [index, item] of shape.data.images.entries()) {
    // Exactly one of `data` and `s3`: an image that claims both is ambiguous, not "the first one".
    if (isPlainObject(item) && 'data' in item && 's3' in item) {
      return failWithIds('INVALID_MESSAGE', `images[${index}]: must have either data or s3, not both`);
    }
    if (!isPlainObject(item) || !('data' in item || 's3' in item)) {
      return failWithIds('INVALID_MESSAGE', `images[${index}]: ${IMAGE_SHAPE}`);
    }
    // The key present picks the schema, so the message names the field that is wrong.
    const image = 'data' in item ? inlineImageSchema.safeParse(item) : stagedImageSchema.safeParse(item);
    if (!image.success) {
      const detail = formatIssues(image.error.issues.map((i) => ({ ...i, path: ['images', index, ...i.path] })));
      return failWithIds('INVALID_MESSAGE', detail);
    }
    images.push('data' in image.data ? { kind: 'inline', data: image.data.data } : { kind: 's3', ...image.data.s3 });
  }

  if (jobId === null || userId === null) {
    // Unreachable: both were checked by the schema and the user-id rules above.
    return failWithIds('INVALID_MESSAGE', 'jobId or userId is invalid');
  }
  const issuedAt = typeof raw.issuedAt === 'number' ? { issuedAt: raw.issuedAt } : {};
  return { ok: true, job: { version: CONTRACT_VERSION, jobId, userId, images, ...issuedAt } };
}

function fail(code: JobErrorCode, message: string): ParsedJob {
  return { ok: false, error: new JobError(code, message), jobId: null, userId: null };
}

// ---- Outcomes, published to RESULT_QUEUE_URL -------------------------------------------------

/** Where the face is in a stored reference, in its pixels (top-left corner and size), and its score. */
export interface FaceBox {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly score: number;
}

export interface Reference {
  readonly key: string;
  readonly sha256: string;
  readonly contentType: 'image/jpeg' | 'image/png';
  readonly bytes: number;
  /** With FACE_CHECK=one: the one face the reference shows. */
  readonly face?: FaceBox;
}

/**
 * A reference a failed job left stored (an earlier attempt wrote it before the job failed): its
 * size is given when this attempt wrote it, and left out when it was only found in the bucket.
 */
export type StoredReference = Omit<Reference, 'bytes'> & { readonly bytes?: number };

export type Outcome =
  | {
      readonly version: 1;
      readonly jobId: string;
      readonly userId: string;
      readonly messageId: string;
      readonly status: 'succeeded';
      readonly references: readonly Reference[];
    }
  | {
      readonly version: 1;
      readonly jobId: string | null;
      readonly userId: string | null;
      readonly messageId: string;
      readonly status: 'failed';
      readonly error: { readonly code: string; readonly message: string };
      /** What the job stored before it failed, when it stored anything: upstream must know it exists. */
      readonly references?: readonly StoredReference[];
    };

export function succeeded(job: Job, messageId: string, references: readonly Reference[]): Outcome {
  return { version: CONTRACT_VERSION, jobId: job.jobId, userId: job.userId, messageId, status: 'succeeded', references };
}

export function failed(
  ids: { jobId: string | null; userId: string | null },
  messageId: string,
  error: { code: string; message: string },
  stored: readonly StoredReference[] = [],
): Outcome {
  return {
    version: CONTRACT_VERSION,
    jobId: ids.jobId,
    userId: ids.userId,
    messageId,
    status: 'failed',
    error: { code: error.code, message: error.message },
    ...(stored.length > 0 ? { references: stored } : {}),
  };
}
