/**
 * The job and outcome messages, contract v1. Upstream services depend on these shapes: change
 * them only by adding optional fields, or by a new version.
 */
import { z } from 'zod';
import { JobError, type JobErrorCode } from './errors.ts';
import { normalizeUserId, type UserId } from './user-id.ts';

export const CONTRACT_VERSION = 1;

const JOB_ID = /^[A-Za-z0-9._:-]{1,128}$/;

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
  }),
});

const IMAGE_SHAPE = 'must be {"data": "<base64>"} or {"s3": {"bucket": "...", "key": "..."}}';

/** Unknown extra fields are ignored, here and inside images, for forward compatibility. */
const jobSchema = z.object({
  version: z.literal(CONTRACT_VERSION),
  jobId: jobIdSchema,
  userId: z.string({ error: 'userId must be a string' }),
  images: z.array(z.unknown(), { error: 'images must be an array' }).min(1, { error: 'images must not be empty' }),
});

export type ImageSource =
  | { readonly kind: 'inline'; readonly data: string }
  | { readonly kind: 's3'; readonly bucket: string; readonly key: string };

export interface Job {
  readonly version: 1;
  readonly jobId: string;
  readonly userId: UserId;
  readonly images: readonly ImageSource[];
}

export interface ContractLimits {
  readonly maxImagesPerJob: number;
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

/** A short, log-safe rendering of a value the sender put where it should not be. */
function preview(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/**
 * Reads a message body into a Job, or says exactly why not. Never throws: a bad job is a value.
 * The ids are read as far as they can be, so a failed outcome can still be correlated.
 */
export function parseJob(body: string, limits: ContractLimits): ParsedJob {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return fail('INVALID_MESSAGE', 'the message body is not valid JSON');
  }
  if (!isPlainObject(raw)) return fail('INVALID_MESSAGE', 'the message body must be a JSON object');

  const jobId = jobIdSchema.safeParse(raw.jobId).data ?? null;
  const userIdResult = typeof raw.userId === 'string' ? normalizeUserId(raw.userId) : undefined;
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
  return { ok: true, job: { version: CONTRACT_VERSION, jobId, userId, images } };
}

function fail(code: JobErrorCode, message: string): ParsedJob {
  return { ok: false, error: new JobError(code, message), jobId: null, userId: null };
}

// ---- Outcomes, published to RESULT_QUEUE_URL -------------------------------------------------

export interface Reference {
  readonly key: string;
  readonly sha256: string;
  readonly contentType: 'image/jpeg' | 'image/png';
  readonly bytes: number;
}

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
    };

export function succeeded(job: Job, messageId: string, references: readonly Reference[]): Outcome {
  return { version: CONTRACT_VERSION, jobId: job.jobId, userId: job.userId, messageId, status: 'succeeded', references };
}

export function failed(
  ids: { jobId: string | null; userId: string | null },
  messageId: string,
  error: { code: string; message: string },
): Outcome {
  return {
    version: CONTRACT_VERSION,
    jobId: ids.jobId,
    userId: ids.userId,
    messageId,
    status: 'failed',
    error: { code: error.code, message: error.message },
  };
}
