/**
 * Reference naming and the idempotent write. The key is a function of the user and the image
 * bytes alone, and the write is conditional, so redelivery, duplicates and racing workers all end
 * with exactly one object per (user, photo).
 */
import { createHash } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { UserId } from '../job/user-id.ts';
import type { ImageType } from './images.ts';

export const REFERENCE_HASH_LENGTH = 12;

/** `users/<id>/ref_<first 12 hex of sha256>.<ext>` — the shape the existing Python readers list. */
export function referenceKey(userId: UserId, sha256Hex: string, ext: ImageType['ext']): string {
  if (!/^[0-9a-f]{64}$/.test(sha256Hex)) throw new TypeError('sha256Hex must be 64 lower-case hex characters');
  return `users/${userId}/ref_${sha256Hex.slice(0, REFERENCE_HASH_LENGTH)}.${ext}`;
}

export function userPrefix(userId: UserId): string {
  return `users/${userId}/`;
}

export interface ReferenceObject {
  readonly key: string;
  /** The normalised image: what is stored. */
  readonly body: Buffer;
  readonly contentType: ImageType['contentType'];
  /** SHA-256 of the image as received: it names the photo (the key) and goes in the metadata. */
  readonly sha256: Buffer;
  /** SHA-256 of `body`: S3's end-to-end checksum. */
  readonly storedSha256: Buffer;
  readonly jobId: string;
}

/** 'created' when this call wrote the object, 'existed' when it was already there. */
export type PutResult = 'created' | 'existed';

export type ReferenceWriter = (object: ReferenceObject) => Promise<PutResult>;

export function sha256Of(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes).digest();
}

function isPreconditionFailed(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const { name, $metadata } = e as { name?: unknown; $metadata?: { httpStatusCode?: unknown } };
  return name === 'PreconditionFailed' || $metadata?.httpStatusCode === 412;
}

/**
 * The S3 adapter. `If-None-Match: *` makes "already there" a 412, which counts as stored. A 409
 * (a concurrent conditional write in progress) is left to propagate: it is transient, and the
 * retry sees the 412. The SHA-256 of the stored bytes is sent as ChecksumSHA256, so S3 verifies
 * them end to end, the SDK computes no second checksum, and the same hash signs the payload. User metadata: `job-id`, `sha256` (the
 * image as received, which the key names) and `stored-sha256` (the stored bytes).
 */
export function s3ReferenceWriter(s3: S3Client, bucket: string): ReferenceWriter {
  return async (object) => {
    try {
      const put = new PutObjectCommand({
        Bucket: bucket,
        Key: object.key,
        Body: object.body,
        ContentLength: object.body.length,
        ContentType: object.contentType,
        ChecksumSHA256: object.storedSha256.toString('base64'),
        IfNoneMatch: '*',
        Metadata: {
          'job-id': object.jobId,
          sha256: object.sha256.toString('hex'),
          'stored-sha256': object.storedSha256.toString('hex'),
        },
      });
      // Hash once: the signature's payload hash is the same SHA-256, so the signer need not
      // compute it again (it uses this header when present).
      const payloadHash = object.storedSha256.toString('hex');
      put.middlewareStack.add(
        (next) => (args) => {
          const request = args.request as { headers?: Record<string, string> };
          if (request.headers) request.headers['x-amz-content-sha256'] = payloadHash;
          return next(args);
        },
        { step: 'build', name: 'knownPayloadHash' },
      );
      await s3.send(put);
      return 'created';
    } catch (e: unknown) {
      if (isPreconditionFailed(e)) return 'existed';
      throw e;
    }
  };
}
