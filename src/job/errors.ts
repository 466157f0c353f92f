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

export type FailureKind = 'permanent' | 'transient';

export function failureKind(e: unknown): FailureKind {
  return isJobError(e) ? 'permanent' : 'transient';
}

/**
 * Why a transient failure happened, for logs and metrics: a table of the SDK's error names and
 * Node's network codes, not string matching on messages.
 */
export type TransientReason = 'throttled' | 'server' | 'network' | 'credentials' | 'timeout' | 'configuration' | 'other';

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
