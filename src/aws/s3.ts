/**
 * The S3 adapters the use case is given (src/enroll/ imports no SDK): read and size a staged object,
 * delete one, write a reference conditionally, and list a user's references — each taking the job's
 * AbortSignal, so a cancelled job's requests stop and release their sockets.
 */
import { randomUUID } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ReferenceLister, ReferenceWriter } from '../enroll/references.ts';
import type { StagedObjectReader, StagedObjectRemover, StagedObjectSizer } from '../enroll/sources.ts';
import { JobError, SourceChanged, WorkerMisconfigured } from '../job/errors.ts';
import { isInvalidRange, isNoSuchBucket, isNotFound, isPreconditionFailed } from './errors.ts';

/** `bytes 0-99/12345` → 12345. */
function totalOf(contentRange: string | undefined): number | undefined {
  const total = contentRange?.match(/\/(\d+)$/)?.[1];
  return total === undefined ? undefined : Number(total);
}

type Body = AsyncIterable<Uint8Array> & { destroy?: (error?: Error) => void };

/**
 * What a failed read of a staged object means. A missing bucket is the worker's setting, not the
 * job: every staged job would fail — retried (the job is good) and logged as a configuration
 * problem; a missing object is the job's (SOURCE_NOT_FOUND). Anything else is as it came.
 */
function stagedReadError(e: unknown, bucket: string, key: string, label: string): unknown {
  if (isNoSuchBucket(e)) return new WorkerMisconfigured('STAGING_BUCKET', `the staging bucket "${bucket}" does not exist (STAGING_BUCKET)`, { cause: e });
  if (isNotFound(e)) return new JobError('SOURCE_NOT_FOUND', `${label}: s3://${bucket}/${key} does not exist`, { cause: e });
  return e;
}

/**
 * A ranged GET, so S3 itself never sends more than the cap: of at most `maxBytes + 1` bytes, or — when
 * a HEAD `admitted` the object — of exactly the bytes admitted, conditional on the HEAD's ETag
 * (`If-Match`). The object's full size (Content-Range) refuses an oversize object, or one whose length
 * is no longer the admitted one, before its body is read, and the body is read only while it stays
 * within that. An object swapped since its HEAD (412, another length) is SourceChanged: retried, and
 * judged anew by the next attempt. The object's name and content type are never looked at: the bytes
 * decide. A cancelled job destroys the body stream, whatever stage the read is at.
 */
export function s3StagedObjectReader(s3: S3Client): StagedObjectReader {
  return async (bucket, key, maxBytes, label, signal, admitted) => {
    const expected = admitted?.size !== undefined && admitted.size <= maxBytes ? admitted.size : undefined;
    const changed = (what: string) => new SourceChanged(`${label}: s3://${bucket}/${key} changed after it was admitted (${what}); the next attempt reads it anew`);
    // An empty object has no byte range to ask for; what was admitted is nothing, and nothing is read.
    if (expected === 0) return Buffer.alloc(0);
    const cap = expected ?? maxBytes + 1;
    let response;
    try {
      response = await s3.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=0-${cap - 1}`, ...(admitted?.etag !== undefined ? { IfMatch: admitted.etag } : {}) }),
        { abortSignal: signal },
      );
    } catch (e: unknown) {
      if (isPreconditionFailed(e)) throw changed('another ETag');
      // A range cannot be satisfied by an empty object: it is empty.
      if (isInvalidRange(e)) {
        if (expected !== undefined) throw changed(`empty, not ${expected} bytes`);
        return Buffer.alloc(0);
      }
      throw stagedReadError(e, bucket, key, label);
    }
    const body = response.Body as Body | undefined;
    const tooLarge = (size: number) => new JobError('IMAGE_TOO_LARGE', `${label} is ${size} bytes; the limit is ${maxBytes}`);
    const size = totalOf(response.ContentRange) ?? response.ContentLength;
    if (size !== undefined) {
      if (expected !== undefined && size !== expected) {
        body?.destroy?.();
        throw changed(`${size} bytes, not ${expected}`);
      }
      if (size > maxBytes) {
        body?.destroy?.();
        throw tooLarge(size);
      }
    }
    if (!body) {
      if (expected !== undefined) throw changed(`no body, not ${expected} bytes`);
      return Buffer.alloc(0);
    }
    const stop = () => body.destroy?.(signal?.reason instanceof Error ? signal.reason : new Error('cancelled'));
    // An AbortSignal fires once; the listener goes when the read ends, however it ends.
    signal?.addEventListener('abort', stop);
    try {
      const chunks: Uint8Array[] = [];
      let read = 0;
      for await (const chunk of body) {
        read += chunk.length;
        if (read > (expected ?? maxBytes)) {
          body.destroy?.();
          throw expected !== undefined ? changed(`more than ${expected} bytes`) : tooLarge(read);
        }
        chunks.push(chunk);
      }
      if (expected !== undefined && read !== expected) throw changed(`${read} bytes, not ${expected}`);
      return Buffer.concat(chunks, read);
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  };
}

/**
 * What a HEAD says of a staged object — its size and ETag — so its bytes can be admitted against the
 * memory budget before they are read, and the read held to them. A HEAD that says 404 cannot tell a
 * missing object from a missing bucket (it has no body): a one-byte GET then says which, and fails
 * the job at once (SOURCE_NOT_FOUND) or reports the configuration — so a missing image cancels its
 * siblings instead of waiting for them.
 */
export function s3StagedObjectSizer(s3: S3Client): StagedObjectSizer {
  return async (bucket, key, label, signal) => {
    try {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
      return { size: head.ContentLength, etag: head.ETag };
    } catch (e: unknown) {
      if (!isNotFound(e)) throw e;
    }
    try {
      const probe = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=0-0' }), { abortSignal: signal });
      (probe.Body as Body | undefined)?.destroy?.();
      // It appeared since the HEAD: its size and version, as S3 reports them now.
      return { size: totalOf(probe.ContentRange) ?? probe.ContentLength, etag: probe.ETag };
    } catch (e: unknown) {
      if (isInvalidRange(e)) return { size: 0, etag: undefined };
      throw stagedReadError(e, bucket, key, label);
    }
  };
}

export function s3StagedObjectRemover(s3: S3Client): StagedObjectRemover {
  return async (bucket, key) => {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  };
}

/**
 * The conditional write. `If-None-Match: *` makes "already there" a 412, which counts as stored. A 409
 * (a concurrent conditional write in progress) is left to propagate: it is transient, and the retry
 * sees the 412. The SHA-256 of the stored bytes is sent as ChecksumSHA256, so S3 verifies them end to
 * end, the SDK computes no second checksum, and the same hash signs the payload. User metadata:
 * `job-id`, `sha256` (the image as received, which the key names) and `stored-sha256`.
 */
export function s3ReferenceWriter(s3: S3Client, bucket: string): ReferenceWriter {
  return async (object, signal) => {
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
          ...object.metadata,
        },
      });
      // Hash once: the signature's payload hash is the same SHA-256, so the signer need not compute
      // it again (it uses this header when present).
      const payloadHash = object.storedSha256.toString('hex');
      put.middlewareStack.add(
        (next) => (args) => {
          const request = args.request as { headers?: Record<string, string> };
          if (request.headers) request.headers['x-amz-content-sha256'] = payloadHash;
          return next(args);
        },
        { step: 'build', name: 'knownPayloadHash' },
      );
      await s3.send(put, { abortSignal: signal });
      return 'created';
    } catch (e: unknown) {
      if (isPreconditionFailed(e)) return 'existed';
      throw e;
    }
  };
}

/**
 * Whether the worker may write references to `bucket`, proven without leaving anything behind: a
 * conditional put that can never match (If-Match on an ETag no object has). S3 checks the permission
 * first and then answers 404/412 for the missing object — `writable`. An endpoint that ignores the
 * condition writes the empty probe object at `key` — `written` (delete it). A missing bucket, a
 * refused permission and every other answer are thrown as they came. The `_` segment is never a user id.
 */
export async function probeReferenceBucket(s3: S3Client, bucket: string, signal?: AbortSignal): Promise<{ readonly result: 'writable' | 'written'; readonly key: string }> {
  const key = `users/_check/${randomUUID()}`;
  try {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.alloc(0), ContentLength: 0, IfMatch: '"enrollment-worker-check"' }), { abortSignal: signal });
    return { result: 'written', key };
  } catch (e: unknown) {
    // A 404 says the object is missing only when it does not say the bucket is.
    if (isPreconditionFailed(e) || (isNotFound(e) && !isNoSuchBucket(e))) return { result: 'writable', key };
    throw e;
  }
}

/**
 * The reference keys under a prefix (`users/<id>/`), by listing: names only — the role lists
 * `users/*` of the reference bucket but never reads a reference. At most 1,000 keys (one page): a
 * user has a handful of references.
 */
export function s3ReferenceLister(s3: S3Client, bucket: string): ReferenceLister {
  return async (prefix, signal) => {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1000 }), { abortSignal: signal });
    return new Set((page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [o.Key])));
  };
}
