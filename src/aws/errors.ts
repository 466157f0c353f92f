/**
 * Reading AWS SDK errors, in one place: their name, their HTTP status, and the few answers the
 * worker acts on (not found, a missing bucket, a failed precondition, an unsatisfiable range).
 * Everything else about an error is decided by the error model (src/job/errors.ts).
 */

interface ErrorShape {
  readonly name?: unknown;
  readonly $metadata?: { readonly httpStatusCode?: unknown };
}

/** The SDK's error name (`NoSuchKey`, `ThrottlingException`, …), or '' for anything else. */
export function awsErrorName(e: unknown): string {
  if (typeof e !== 'object' || e === null) return '';
  const { name } = e as ErrorShape;
  return typeof name === 'string' ? name : '';
}

/** The HTTP status the service answered with, when the error came from a response. */
export function httpStatusOf(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const status = (e as ErrorShape).$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The object is not there: NoSuchKey, or a bare 404 (a HEAD has no body to name it). */
export const isNotFound = (e: unknown): boolean => ['NoSuchKey', 'NotFound'].includes(awsErrorName(e)) || httpStatusOf(e) === 404;

/** The bucket is not there (only a GET's error body can say so; a HEAD says 404). */
export const isNoSuchBucket = (e: unknown): boolean => awsErrorName(e) === 'NoSuchBucket';

/** A conditional request's condition did not hold (If-None-Match: *, If-Match). */
export const isPreconditionFailed = (e: unknown): boolean => awsErrorName(e) === 'PreconditionFailed' || httpStatusOf(e) === 412;

/** A range that cannot be satisfied: the object is empty. */
export const isInvalidRange = (e: unknown): boolean => awsErrorName(e) === 'InvalidRange' || httpStatusOf(e) === 416;

/** The call was cancelled through its AbortSignal (our own doing, never the service's). */
export const isAborted = (e: unknown): boolean => awsErrorName(e) === 'AbortError';
