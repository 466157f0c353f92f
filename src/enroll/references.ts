/**
 * Reference naming and the idempotent write. The key is a function of the user and the image
 * bytes alone, and the write is conditional, so redelivery, duplicates and racing workers all end
 * with exactly one object per (user, photo).
 */
import { createHash } from 'node:crypto';
import type { UserId } from '../job/user-id.ts';
import type { ImageType } from '../image/images.ts';

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

/**
 * At most one write per key at a time in this process: a second write of a key already being
 * written waits for the first and, when that one stored it (or found it), answers 'existed' without a
 * request of its own. S3's conditional write already keeps one object per key across processes;
 * this keeps two jobs of one process carrying the same photo (a duplicate send, a redelivery) from
 * both reporting 'created' where an endpoint's check-then-write is not atomic, and saves the second
 * upload. A first write that fails leaves the key to the next writer.
 */
export function oneWritePerKey(write: ReferenceWriter): ReferenceWriter {
  const writing = new Map<string, Promise<PutResult>>();
  const start = (object: ReferenceObject, signal?: AbortSignal): Promise<PutResult> => {
    const attempt = write(object, signal).finally(() => {
      if (writing.get(object.key) === attempt) writing.delete(object.key);
    });
    writing.set(object.key, attempt);
    return attempt;
  };
  return async (object, signal) => {
    for (let earlier = writing.get(object.key); earlier !== undefined; earlier = writing.get(object.key)) {
      const stored = await untilSettled(earlier, signal);
      if (stored) return 'existed';
    }
    return start(object, signal);
  };
}

/** Whether `write` succeeded, once it has settled; rejects with the signal's reason if it aborts first. */
function untilSettled(write: Promise<PutResult>, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    write.then(
      () => resolve(true),
      () => resolve(false),
    ).finally(() => signal?.removeEventListener('abort', onAbort));
  });
}
