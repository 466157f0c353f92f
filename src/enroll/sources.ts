/**
 * Where an image's bytes come from: inline base64 in the message, or an object the producer
 * staged in STAGING_BUCKET. A staged source is read with a size cap and only from the one place
 * producers are allowed to stage in, so a job cannot make the worker copy arbitrary objects
 * (including other users' references) into a user's prefix.
 */
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ImageSource, Job } from '../job/contract.ts';
import { JobError, WorkerMisconfigured } from '../job/errors.ts';
import { sha256Of } from './references.ts';

export interface StagingRules {
  readonly stagingBucket: string | undefined;
  readonly stagingPrefix: string;
  readonly maxImageBytes: number;
}

/** Reads at most `maxBytes` of a staged object; throws JobError for missing or oversize objects. */
export type StagedObjectReader = (bucket: string, key: string, maxBytes: number, label: string) => Promise<Buffer>;

const NOT_BASE64 = /[^A-Za-z0-9+/=]/;

/**
 * Standard, padded base64: a multiple of 4 characters of the alphabet, with "=" only as the last
 * one or two. The same rule as /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
 * at a sixth of its cost on a near-1 MiB message (one character-class scan, no backtracking).
 */
export function isStrictBase64(data: string): boolean {
  if (data.length % 4 !== 0 || NOT_BASE64.test(data)) return false;
  const padding = data.indexOf('=');
  if (padding === -1) return true;
  return padding === data.length - 1 || (padding === data.length - 2 && data.endsWith('=='));
}

/** Strict base64 (RFC 4648 §4, padded): Node's decoder would silently skip garbage. */
export function decodeInline(data: string, label: string, maxBytes: number): Buffer {
  if (data.length === 0) throw new JobError('INVALID_IMAGE', `${label} is empty`);
  if (!isStrictBase64(data)) throw new JobError('INVALID_IMAGE', `${label} is not valid base64`);
  // The exact decoded size, known from the length and the padding: an oversize image is refused
  // before any allocation.
  const padding = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  const decodedLength = (data.length / 4) * 3 - padding;
  if (decodedLength > maxBytes) {
    throw new JobError('IMAGE_TOO_LARGE', `${label} is ${decodedLength} bytes; the limit is ${maxBytes}`);
  }
  return Buffer.from(data, 'base64');
}

/** Throws SOURCE_NOT_ALLOWED unless the source is in the staging bucket under its prefix. */
export function checkStagedSource(source: { bucket: string; key: string }, label: string, rules: StagingRules): void {
  if (rules.stagingBucket === undefined) {
    throw new JobError('SOURCE_NOT_ALLOWED', `${label}: staged sources are not enabled on this worker (no STAGING_BUCKET)`);
  }
  if (source.bucket !== rules.stagingBucket) {
    throw new JobError('SOURCE_NOT_ALLOWED', `${label}: bucket "${source.bucket}" is not the staging bucket`);
  }
  if (!source.key.startsWith(rules.stagingPrefix)) {
    throw new JobError('SOURCE_NOT_ALLOWED', `${label}: key is outside the staging prefix "${rules.stagingPrefix}"`);
  }
  // S3 does not resolve "..", but proxies and other S3 implementations may: refuse it outright.
  if (source.key.split('/').some((segment, i, all) => segment === '..' || segment === '.' || (segment === '' && i > 0 && i < all.length - 1))) {
    throw new JobError('SOURCE_NOT_ALLOWED', `${label}: key has an empty, "." or ".." segment`);
  }
}

/** An image's bytes as received, with their SHA-256 (which names the reference). */
export interface LoadedImage {
  readonly bytes: Buffer;
  readonly sha256: Buffer;
}

/**
 * The image's bytes. A staged object is hashed as soon as it is read and must be the object the
 * job names (its `sha256`), before anything else is done with the bytes: the body is what the
 * producer signed, so an object swapped after signing is refused (SOURCE_MISMATCH).
 */
export async function loadImage(
  source: ImageSource,
  label: string,
  rules: StagingRules,
  readStaged: StagedObjectReader,
): Promise<LoadedImage> {
  if (source.kind === 'inline') {
    const bytes = decodeInline(source.data, label, rules.maxImageBytes);
    return { bytes, sha256: sha256Of(bytes) };
  }
  checkStagedSource(source, label, rules);
  const bytes = await readStaged(source.bucket, source.key, rules.maxImageBytes, label);
  const sha256 = sha256Of(bytes);
  const found = sha256.toString('hex');
  if (found !== source.sha256) {
    throw new JobError('SOURCE_MISMATCH', `${label}: the staged object's SHA-256 is ${found}, the job says ${source.sha256}`);
  }
  return { bytes, sha256 };
}

const NOT_FOUND_NAMES: ReadonlySet<string> = new Set(['NoSuchKey', 'NotFound']);

function isNotFound(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const { name, $metadata } = e as { name?: unknown; $metadata?: { httpStatusCode?: unknown } };
  return (typeof name === 'string' && NOT_FOUND_NAMES.has(name)) || $metadata?.httpStatusCode === 404;
}

const isNoSuchBucket = (e: unknown): boolean => e instanceof Error && e.name === 'NoSuchBucket';

function isInvalidRange(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const { name, $metadata } = e as { name?: unknown; $metadata?: { httpStatusCode?: unknown } };
  return name === 'InvalidRange' || $metadata?.httpStatusCode === 416;
}

/** `bytes 0-99/12345` → 12345. */
function totalOf(contentRange: string | undefined): number | undefined {
  const total = contentRange?.match(/\/(\d+)$/)?.[1];
  return total === undefined ? undefined : Number(total);
}

/**
 * The S3 adapter: a ranged GET of at most `maxBytes + 1` bytes, so S3 itself never sends more than
 * the cap; the object's full size (Content-Range) refuses an oversize object before its body is
 * read, and the body is read only while it stays under the cap. The object's name and content type
 * are never looked at: the bytes decide.
 */
export function s3StagedObjectReader(s3: S3Client): StagedObjectReader {
  return async (bucket, key, maxBytes, label) => {
    let response;
    try {
      response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=0-${maxBytes}` }));
    } catch (e: unknown) {
      // A missing bucket is the worker's setting, not the job: every staged job would fail. Retried
      // (the job is good) and logged as a configuration problem; a missing object is the job's.
      if (isNoSuchBucket(e)) {
        throw new WorkerMisconfigured('STAGING_BUCKET', `the staging bucket "${bucket}" does not exist (STAGING_BUCKET)`, { cause: e });
      }
      if (isNotFound(e)) throw new JobError('SOURCE_NOT_FOUND', `${label}: s3://${bucket}/${key} does not exist`, { cause: e });
      // A range cannot be satisfied by an empty object: it is empty.
      if (isInvalidRange(e)) return Buffer.alloc(0);
      throw e;
    }
    const body = response.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    const tooLarge = (size: number) =>
      new JobError('IMAGE_TOO_LARGE', `${label} is ${size} bytes; the limit is ${maxBytes}`);
    const size = totalOf(response.ContentRange) ?? response.ContentLength;
    if (size !== undefined && size > maxBytes) {
      body?.destroy?.();
      throw tooLarge(size);
    }
    if (!body) return Buffer.alloc(0);
    const chunks: Uint8Array[] = [];
    let read = 0;
    for await (const chunk of body) {
      read += chunk.length;
      if (read > maxBytes) {
        body.destroy?.();
        throw tooLarge(read);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, read);
  };
}

/** Deletes one staged object (DELETE_STAGED_SOURCES). Deleting one that is gone succeeds. */
export type StagedObjectRemover = (bucket: string, key: string) => Promise<void>;

export function s3StagedObjectRemover(s3: S3Client): StagedObjectRemover {
  return async (bucket, key) => {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  };
}

/** The staged objects a job read, each once. */
export function stagedSourcesOf(job: Job): { bucket: string; key: string }[] {
  const seen = new Map<string, { bucket: string; key: string }>();
  for (const image of job.images) {
    if (image.kind === 's3') seen.set(`${image.bucket}/${image.key}`, { bucket: image.bucket, key: image.key });
  }
  return [...seen.values()];
}

/**
 * Deletes a job's staged sources; returns how many. Only what the staging rules allow is ever
 * deleted (a succeeded job has no other sources; this holds even if that changes).
 */
export async function discardStagedSources(job: Job, rules: StagingRules, remove: StagedObjectRemover): Promise<number> {
  const sources = stagedSourcesOf(job).filter((source) => {
    try {
      checkStagedSource(source, 'source', rules);
      return true;
    } catch {
      return false;
    }
  });
  await Promise.all(sources.map(({ bucket, key }) => remove(bucket, key)));
  return sources.length;
}
