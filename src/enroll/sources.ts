/**
 * Where an image's bytes come from: inline base64 in the message, or an object the producer
 * staged in STAGING_BUCKET. A staged source is read with a size cap and only from the one place
 * producers are allowed to stage in, so a job cannot make the worker copy arbitrary objects
 * (including other users' references) into a user's prefix.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ImageSource } from '../job/contract.ts';
import { JobError } from '../job/errors.ts';

export interface StagingRules {
  readonly stagingBucket: string | undefined;
  readonly stagingPrefix: string;
  readonly maxImageBytes: number;
}

/** Reads at most `maxBytes` of a staged object; throws JobError for missing or oversize objects. */
export type StagedObjectReader = (bucket: string, key: string, maxBytes: number, label: string) => Promise<Buffer>;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (RFC 4648 §4, padded): Node's decoder would silently skip garbage. */
export function decodeInline(data: string, label: string, maxBytes: number): Buffer {
  if (data.length === 0) throw new JobError('INVALID_IMAGE', `${label} is empty`);
  if (!BASE64.test(data)) throw new JobError('INVALID_IMAGE', `${label} is not valid base64`);
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
}

export async function loadImage(
  source: ImageSource,
  label: string,
  rules: StagingRules,
  readStaged: StagedObjectReader,
): Promise<Buffer> {
  if (source.kind === 'inline') return decodeInline(source.data, label, rules.maxImageBytes);
  checkStagedSource(source, label, rules);
  return readStaged(source.bucket, source.key, rules.maxImageBytes, label);
}

const NOT_FOUND_NAMES: ReadonlySet<string> = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket']);

function isNotFound(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const { name, $metadata } = e as { name?: unknown; $metadata?: { httpStatusCode?: unknown } };
  return (typeof name === 'string' && NOT_FOUND_NAMES.has(name)) || $metadata?.httpStatusCode === 404;
}

/** The S3 adapter: a GET whose body is read only while it stays under the cap. */
export function s3StagedObjectReader(s3: S3Client): StagedObjectReader {
  return async (bucket, key, maxBytes, label) => {
    let response;
    try {
      response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    } catch (e: unknown) {
      if (isNotFound(e)) throw new JobError('SOURCE_NOT_FOUND', `${label}: s3://${bucket}/${key} does not exist`, { cause: e });
      throw e;
    }
    const body = response.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    const tooLarge = (size: number) =>
      new JobError('IMAGE_TOO_LARGE', `${label} is ${size} bytes; the limit is ${maxBytes}`);
    if (response.ContentLength !== undefined && response.ContentLength > maxBytes) {
      body?.destroy?.();
      throw tooLarge(response.ContentLength);
    }
    if (!body) return Buffer.alloc(0);
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of body) {
      size += chunk.length;
      if (size > maxBytes) {
        body.destroy?.();
        throw tooLarge(size);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, size);
  };
}
