/**
 * Reference naming and the idempotent write. The key is a function of the user and the image
 * bytes alone, and the write is conditional, so redelivery, duplicates and racing workers all end
 * with exactly one object per (user, photo).
 */
import { createHash } from 'node:crypto';
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
  /** Further user metadata of the object (e.g. the face box), names without the `x-amz-meta-` prefix. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** 'created' when this call wrote the object, 'existed' when it was already there. */
export type PutResult = 'created' | 'existed';

/** Writes a reference unless one is there already (src/aws/s3.ts); stops when the signal aborts. */
export type ReferenceWriter = (object: ReferenceObject, signal?: AbortSignal) => Promise<PutResult>;

/** The keys stored under a prefix (a user's references), names only. */
export type ReferenceLister = (prefix: string, signal?: AbortSignal) => Promise<ReadonlySet<string>>;

export function sha256Of(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes).digest();
}
