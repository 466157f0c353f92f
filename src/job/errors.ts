/**
 * The error model, decided in one place. A failure is either permanent (the job itself is wrong:
 * retrying cannot help) or transient (the world is wrong for now). Only the job's own faults are
 * permanent; everything else — throttling, 5xx, network, credentials, even our own bugs — is
 * retried and finally ended by the queue's redrive policy, so nothing is ever dropped.
 */

/** The permanent error codes of the job contract, v1. Upstream services depend on these strings. */
export const JOB_ERROR_CODES = [
  'INVALID_SIGNATURE',
  'INVALID_MESSAGE',
  'UNSUPPORTED_VERSION',
  'INVALID_USER_ID',
  'TOO_MANY_IMAGES',
  'INVALID_IMAGE',
  'IMAGE_TOO_LARGE',
  'IMAGE_TOO_SMALL',
  'SOURCE_NOT_ALLOWED',
  'SOURCE_NOT_FOUND',
  'SOURCE_MISMATCH',
  'JOB_EXPIRED',
  // The face check (FACE_CHECK=one).
  'NO_FACE',
  'MULTIPLE_FACES',
  'FACE_TOO_SMALL',
] as const;

export type JobErrorCode = (typeof JOB_ERROR_CODES)[number];

/** Codes that only appear in outcomes and logs, never on a dead-letter entry written by us. */
export const RETRIES_EXHAUSTED = 'RETRIES_EXHAUSTED';

/**
 * What each code means and what its producer should do, for the error-code table of
 * docs/producers.md (`npm run docs` fails naming a code without one).
 */
export const ERROR_CODE_DOCS: Readonly<Record<string, { readonly when: string; readonly producer: string }>> = {
  INVALID_SIGNATURE: {
    when: 'A signing key is configured and the message has no `Signature` attribute, a malformed one, or one that matches the body under neither `JOB_SIGNING_KEY` nor `JOB_SIGNING_KEY_PREVIOUS`. Checked first: the outcome\'s `jobId`/`userId` are `null`.',
    producer: 'Sign the exact `MessageBody` string with the current key; check the key\'s fingerprint against the worker\'s start-up line.',
  },
  INVALID_MESSAGE: {
    when: 'The body is not JSON, not an object, or not the schema (missing/mistyped fields, empty `images`, an image with both or neither of `data` and `s3`, a missing or malformed `issuedAt` or `sha256`).',
    producer: 'Fix the job against the contract (`enrollment-worker schema` prints it) and send a new one.',
  },
  UNSUPPORTED_VERSION: { when: '`version` is present but not `1`.', producer: 'Send contract v1.' },
  INVALID_USER_ID: {
    when: '`userId` breaks the rules of the contract (after normalisation).',
    producer: 'Fix the user id; it never reaches an S3 key.',
  },
  TOO_MANY_IMAGES: { when: 'More than `MAX_IMAGES_PER_JOB` images.', producer: 'Split the images over several jobs.' },
  INVALID_IMAGE: {
    when: 'An image is empty, not valid base64, not a JPEG/PNG by its bytes, truncated, has data after its end (a polyglot), breaks its format\'s structure rules, or does not decode (corrupt data).',
    producer: 'Send a sound JPEG or PNG (the message names the image and the rule).',
  },
  IMAGE_TOO_LARGE: {
    when: 'An image is over `MAX_IMAGE_BYTES`, or over `MAX_IMAGE_PIXELS` (width × height, from its header, before decoding).',
    producer: 'Send a smaller image (scale it down before sending).',
  },
  IMAGE_TOO_SMALL: {
    when: 'An image\'s shorter side is under `MIN_IMAGE_DIMENSION` pixels — as received, or once scaled to `MAX_REFERENCE_DIMENSION` (a very long, thin image).',
    producer: 'Send a larger photo.',
  },
  SOURCE_NOT_ALLOWED: {
    when: 'A staged image is outside `STAGING_BUCKET`/`STAGING_PREFIX`, or no staging bucket is configured.',
    producer: 'Stage images only in the staging bucket, under its prefix (or send them inline).',
  },
  SOURCE_NOT_FOUND: {
    when: 'A staged object does not exist. (A staging **bucket** that does not exist is the worker\'s configuration, not the job: retried, not this code.)',
    producer: 'Upload the object before sending the job; keep it until the job has succeeded.',
  },
  SOURCE_MISMATCH: {
    when: 'A staged object\'s SHA-256 is not the `sha256` the job names (`images[i]: the staged object\'s SHA-256 is …, the job says …`): it was overwritten or replaced after the job was built. Nothing of the job is stored.',
    producer: 'Stage one object per job and do not overwrite it; if the photo changed, build and sign a new job.',
  },
  JOB_EXPIRED: {
    when: 'The job\'s `issuedAt` is older than `SIGNED_JOB_MAX_AGE_SECONDS` (default 14 days).',
    producer: 'Re-issue it: build and sign it anew (a new `issuedAt`, the same images).',
  },
  NO_FACE: {
    when: '`FACE_CHECK=one` and an image shows no face scoring at least `FACE_MIN_SCORE`.',
    producer: 'Ask the user for a photo that shows their face.',
  },
  MULTIPLE_FACES: {
    when: '`FACE_CHECK=one` and an image shows more than one such face of at least `FACE_MIN_SIZE` pixels; the message says how many.',
    producer: 'Ask the user for a photo of their face alone.',
  },
  FACE_TOO_SMALL: {
    when: '`FACE_CHECK=one` and every such face in an image is under `FACE_MIN_SIZE` pixels on the shorter side of its box, in the stored image.',
    producer: 'Ask the user for a closer photo.',
  },
  [RETRIES_EXHAUSTED]: {
    when: 'Only in outcomes and logs: a transient failure on the last attempt the redrive policy allows (`ApproximateReceiveCount ≥ maxReceiveCount`). The queue moves the message to its dead-letter queue itself (without `ErrorCode`).',
    producer: 'Nothing was wrong with the job: wait for the operators to fix the cause and redrive it, or send it again later.',
  },
};

export const JOB_ERROR_MESSAGE_MAX = 1000;

/** A permanent failure: the job is wrong. Carries a stable code and a message safe to log. */
export class JobError extends Error {
  override readonly name = 'JobError';
  readonly code: JobErrorCode;

  constructor(code: JobErrorCode, message: string, options?: { cause?: unknown }) {
    // Bounded, so no input can make a log line, an outcome or a dead-letter attribute huge.
    super(message.length > JOB_ERROR_MESSAGE_MAX ? `${message.toWellFormed().slice(0, JOB_ERROR_MESSAGE_MAX)}…` : message, options);
    this.code = code;
  }
}

export function isJobError(e: unknown): e is JobError {
  return e instanceof JobError;
}

/**
 * Not the job's fault and not passing: the worker's own settings are wrong (e.g. STAGING_BUCKET
 * names a bucket that does not exist). Retried like any transient failure — the job is good and
 * must not be dead-lettered — and logged as an error naming the setting, so ops see it at once.
 */
export class WorkerMisconfigured extends Error {
  override readonly name = 'WorkerMisconfigured';
  readonly variable: string;

  constructor(variable: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.variable = variable;
  }
}

/**
 * Not the job's fault and not the worker's: a staged object changed between the HEAD that admitted it
 * and the GET that reads it (another ETag, another length). Nothing past what was admitted is read;
 * the job is retried, and its next attempt judges the object as it is then (its size admitted anew,
 * its SHA-256 compared with the job's).
 */
export class SourceChanged extends Error {
  override readonly name = 'SourceChanged';
}

export type FailureKind = 'permanent' | 'transient';

export function failureKind(e: unknown): FailureKind {
  return isJobError(e) ? 'permanent' : 'transient';
}

/**
 * Why a transient failure happened, for logs and metrics: a table of the SDK's error names and
 * Node's network codes, not string matching on messages.
 */
export type TransientReason = 'throttled' | 'server' | 'network' | 'credentials' | 'timeout' | 'configuration' | 'changed' | 'other';

const THROTTLING_NAMES: ReadonlySet<string> = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'SlowDown',
  'RequestLimitExceeded',
  'KMS.ThrottlingException',
  'AWS.SimpleQueueService.RequestThrottled',
]);

const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);

const TIMEOUT_NAMES: ReadonlySet<string> = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException']);

const CREDENTIAL_NAMES: ReadonlySet<string> = new Set([
  'CredentialsProviderError',
  'ProviderError',
  'TokenProviderError',
  'ExpiredToken',
  'ExpiredTokenException',
]);

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  /** The SDK's 'client' | 'server'; also set on a batch entry SQS refused (it has no status of its own). */
  $fault?: unknown;
}

export function transientReason(e: unknown): TransientReason {
  if (typeof e !== 'object' || e === null) return 'other';
  if (e instanceof WorkerMisconfigured) return 'configuration';
  if (e instanceof SourceChanged) return 'changed';
  const { name, code, $metadata, $fault } = e as ErrorShape;
  const status = typeof $metadata?.httpStatusCode === 'number' ? $metadata.httpStatusCode : undefined;
  if (typeof name === 'string') {
    if (THROTTLING_NAMES.has(name)) return 'throttled';
    if (CREDENTIAL_NAMES.has(name)) return 'credentials';
    if (TIMEOUT_NAMES.has(name)) return 'timeout';
  }
  if (status === 429) return 'throttled';
  if (status !== undefined && status >= 500) return 'server';
  if (status === undefined && $fault === 'server') return 'server';
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return 'network';
  return 'other';
}

/** A short, log-safe description of any thrown value (never its payload). */
export function describeError(e: unknown): { name: string; message: string } {
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: typeof e, message: String(e) };
}
