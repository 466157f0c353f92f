/**
 * Where an image's bytes come from: inline base64 in the message, or an object the producer
 * staged in STAGING_BUCKET. A staged source is read with a size cap and only from the one place
 * producers are allowed to stage in, so a job cannot make the worker copy arbitrary objects
 * (including other users' references) into a user's prefix.
 */
import type { ImageSource, Job } from '../job/contract.ts';
import { JobError } from '../job/errors.ts';
import { sha256Of } from './references.ts';

export interface StagingRules {
  readonly stagingBucket: string | undefined;
  readonly stagingPrefix: string;
  readonly maxImageBytes: number;
}

/**
 * What S3 said of a staged object before it was read (a HEAD): its size and its version (ETag), each
 * undefined when S3 does not say. The read is then held to them: the job's memory was admitted for
 * that object and that size, never more.
 */
export interface StagedObjectFacts {
  readonly size: number | undefined;
  readonly etag: string | undefined;
}

/**
 * Reads at most `maxBytes` of a staged object (src/aws/s3.ts); throws JobError for missing or
 * oversize objects, and stops when the signal aborts. Given what its HEAD `admitted`, reads exactly
 * that object (If-Match on its ETag) and exactly that many bytes, or throws SourceChanged.
 */
export type StagedObjectReader = (bucket: string, key: string, maxBytes: number, label: string, signal?: AbortSignal, admitted?: StagedObjectFacts) => Promise<Buffer>;

/**
 * What S3 reports of a staged object before it is read; throws SOURCE_NOT_FOUND for a missing
 * object, so a job learns it before waiting for memory.
 */
export type StagedObjectSizer = (bucket: string, key: string, label: string, signal?: AbortSignal) => Promise<StagedObjectFacts>;

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
  signal?: AbortSignal,
  admitted?: StagedObjectFacts,
): Promise<LoadedImage> {
  if (source.kind === 'inline') {
    const bytes = decodeInline(source.data, label, rules.maxImageBytes);
    return { bytes, sha256: sha256Of(bytes) };
  }
  checkStagedSource(source, label, rules);
  const bytes = await readStaged(source.bucket, source.key, rules.maxImageBytes, label, signal, admitted);
  const sha256 = sha256Of(bytes);
  const found = sha256.toString('hex');
  if (found !== source.sha256) {
    throw new JobError('SOURCE_MISMATCH', `${label}: the staged object's SHA-256 is ${found}, the job says ${source.sha256}`);
  }
  return { bytes, sha256 };
}

/** Deletes one staged object (DELETE_STAGED_SOURCES; src/aws/s3.ts). Deleting one that is gone succeeds. */
export type StagedObjectRemover = (bucket: string, key: string) => Promise<void>;

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
