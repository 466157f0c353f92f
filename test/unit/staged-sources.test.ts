import { getEventListeners } from 'node:events';
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { s3StagedObjectReader } from '../../src/aws/s3.ts';
import { discardStagedSources, stagedSourcesOf, type StagingRules } from '../../src/enroll/sources.ts';
import { failureKind, SourceChanged, transientReason } from '../../src/job/errors.ts';
import { inline, job, rejectionOf, sdkError, staged } from './helpers.ts';

/** A fake S3 client that routes by command class, as the SDK would. */
function fakeS3(answer: (command: GetObjectCommand | DeleteObjectCommand) => unknown) {
  const sent: (GetObjectCommand | DeleteObjectCommand)[] = [];
  const client = {
    send: async (command: GetObjectCommand | DeleteObjectCommand) => {
      sent.push(command);
      return answer(command);
    },
  } as unknown as S3Client;
  return { client, sent };
}

function body(chunks: Buffer[]) {
  let destroyed = false;
  return {
    stream: {
      async *[Symbol.asyncIterator]() {
        for (const chunk of chunks) yield chunk;
      },
      destroy: () => {
        destroyed = true;
      },
    },
    destroyed: () => destroyed,
  };
}

describe('s3StagedObjectReader', () => {
  it('asks for at most the cap plus one byte, and returns the bytes', async () => {
    // Prepare
    const b = body([Buffer.from('abc'), Buffer.from('def')]);
    const s3 = fakeS3(() => ({ Body: b.stream, ContentLength: 6, ContentRange: 'bytes 0-5/6' }));

    // Act
    const bytes = await s3StagedObjectReader(s3.client)('staging', 'in/1', 100, 'images[0]');

    // Assess
    expect(bytes.toString()).toBe('abcdef');
    expect(s3.sent[0]).toBeInstanceOf(GetObjectCommand);
    expect(s3.sent[0]?.input).toEqual({ Bucket: 'staging', Key: 'in/1', Range: 'bytes=0-100' });
  });

  it('refuses an object whose full size (Content-Range) is over the cap, without reading its body', async () => {
    // Prepare
    const b = body([Buffer.alloc(101)]);
    const s3 = fakeS3(() => ({ Body: b.stream, ContentLength: 101, ContentRange: 'bytes 0-100/52428800' }));

    // Act
    const error = await rejectionOf(() => s3StagedObjectReader(s3.client)('staging', 'in/1', 100, 'images[1]'));

    // Assess
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE', message: 'images[1] is 52428800 bytes; the limit is 100' });
    expect(b.destroyed()).toBe(true);
  });

  it('still caps the read when the server ignores the range', async () => {
    // Prepare
    const b = body([Buffer.alloc(60), Buffer.alloc(60)]);
    const s3 = fakeS3(() => ({ Body: b.stream }));

    // Act
    const error = await rejectionOf(() => s3StagedObjectReader(s3.client)('staging', 'in/1', 100, 'images[0]'));

    // Assess
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE', message: 'images[0] is 120 bytes; the limit is 100' });
  });

  it('reads an empty object (a range S3 cannot satisfy) as empty', async () => {
    // Prepare
    const s3 = fakeS3(() => {
      throw sdkError('InvalidRange', 416);
    });

    // Act
    const bytes = await s3StagedObjectReader(s3.client)('staging', 'in/empty', 100, 'images[0]');

    // Assess
    expect(bytes).toHaveLength(0);
  });

  it('says SOURCE_NOT_FOUND for a missing object, and lets other errors through', async () => {
    // Prepare
    const missing = fakeS3(() => {
      throw sdkError('NoSuchKey', 404);
    });
    const throttled = sdkError('SlowDown', 503);
    const busy = fakeS3(() => {
      throw throttled;
    });

    // Act
    const notFound = await rejectionOf(() => s3StagedObjectReader(missing.client)('staging', 'in/x', 100, 'images[0]'));
    const transient = await rejectionOf(() => s3StagedObjectReader(busy.client)('staging', 'in/x', 100, 'images[0]'));

    // Assess
    expect(notFound).toMatchObject({ code: 'SOURCE_NOT_FOUND', message: 'images[0]: s3://staging/in/x does not exist' });
    expect(transient).toBe(throttled);
  });
});

describe('s3StagedObjectReader and the job\'s signal', () => {
  /** A body that yields `first`, then waits until it is destroyed, and fails with the destroy's error. */
  function stalledBody(first: Buffer) {
    const destroyedWith: (Error | undefined)[] = [];
    let fail: (e: Error) => void = () => undefined;
    const stream = {
      async *[Symbol.asyncIterator]() {
        yield first;
        await new Promise<never>((_, reject) => (fail = reject));
      },
      destroy: (error?: Error) => {
        destroyedWith.push(error);
        fail(error ?? new Error('destroyed'));
      },
    };
    return { stream, destroyedWith };
  }

  it('destroys a body under way when the job is cancelled, with the reason the job was given', async () => {
    // Prepare
    const b = stalledBody(Buffer.alloc(10));
    const s3 = fakeS3(() => ({ Body: b.stream, ContentLength: 100 }));
    const job = new AbortController();
    const reason = new Error('job cancelled');
    const reading = rejectionOf(() => s3StagedObjectReader(s3.client)('staging', 'in/1', 100, 'images[0]', job.signal));
    await new Promise((resolve) => setImmediate(resolve));

    // Act
    job.abort(reason);

    // Assess
    expect(await reading).toBe(reason);
    expect(b.destroyedWith).toEqual([reason]);
  });

  it("destroys it with an Error saying 'cancelled' when the job's reason is not an Error", async () => {
    // Prepare
    const b = stalledBody(Buffer.alloc(10));
    const s3 = fakeS3(() => ({ Body: b.stream, ContentLength: 100 }));
    const job = new AbortController();
    const reading = rejectionOf(() => s3StagedObjectReader(s3.client)('staging', 'in/1', 100, 'images[0]', job.signal));
    await new Promise((resolve) => setImmediate(resolve));

    // Act
    job.abort('shutdown');

    // Assess
    expect(await reading).toMatchObject({ message: 'cancelled' });
  });

  it("lets go of the job's signal once a read is done, whether it succeeded or failed", async () => {
    // Prepare
    const job = new AbortController();
    const done = body([Buffer.from('abcdef')]);
    const tooLong = body([Buffer.alloc(60), Buffer.alloc(60)]);

    // Act
    await s3StagedObjectReader(fakeS3(() => ({ Body: done.stream })).client)('staging', 'in/1', 100, 'images[0]', job.signal);
    await rejectionOf(() => s3StagedObjectReader(fakeS3(() => ({ Body: tooLong.stream })).client)('staging', 'in/2', 100, 'images[1]', job.signal));
    const listeners = getEventListeners(job.signal, 'abort').length;
    const destroyedBefore = tooLong.destroyed();
    job.abort(new Error('job cancelled'));

    // Assess: a later cancellation touches neither body
    expect(listeners).toBe(0);
    expect(done.destroyed()).toBe(false);
    expect(destroyedBefore).toBe(true);
  });
});

describe('s3StagedObjectReader, given a response without a body or with one that cannot be destroyed (as the SDK\'s types allow)', () => {
  /** An async iterable with no destroy(), like a web ReadableStream. */
  const undestroyable = (chunks: Buffer[]) => ({
    async *[Symbol.asyncIterator]() {
      for (const chunk of chunks) yield chunk;
    },
  });

  it.each([
    ['no body, a size other than admitted', () => ({ ContentRange: 'bytes 0-5/90' }), { size: 6, etag: undefined }, '(90 bytes, not 6)'],
    ['no body, a size over the limit', () => ({ ContentLength: 101 }), undefined, 'images[0] is 101 bytes; the limit is 100'],
    ['no body where bytes were admitted', () => ({ ContentLength: 6 }), { size: 6, etag: undefined }, '(no body, not 6 bytes)'],
    ['an undestroyable body, a size other than admitted', () => ({ Body: undestroyable([Buffer.alloc(6)]), ContentRange: 'bytes 0-5/90' }), { size: 6, etag: undefined }, '(90 bytes, not 6)'],
    ['an undestroyable body, a size over the limit', () => ({ Body: undestroyable([Buffer.alloc(6)]), ContentLength: 101 }), undefined, 'images[0] is 101 bytes; the limit is 100'],
    ['an undestroyable body longer than the limit', () => ({ Body: undestroyable([Buffer.alloc(60), Buffer.alloc(60)]) }), undefined, 'images[0] is 120 bytes; the limit is 100'],
  ])('refuses %s', async (_, answer, admitted, message) => {
    // Act
    const error = await rejectionOf(() => s3StagedObjectReader(fakeS3(answer).client)('staging', 'in/1', 100, 'images[0]', undefined, admitted));

    // Assess
    expect(error).toMatchObject({ message: expect.stringContaining(message) });
  });

  it('reads no body, where nothing was admitted, as empty', async () => {
    expect(await s3StagedObjectReader(fakeS3(() => ({})).client)('staging', 'in/1', 100, 'images[0]')).toHaveLength(0);
  });
});

describe('s3StagedObjectReader, held to what the HEAD admitted', () => {
  const admitted = { size: 6, etag: '"v1"' };

  it('asks for exactly the admitted bytes of the admitted version (If-Match)', async () => {
    // Prepare
    const b = body([Buffer.from('abcdef')]);
    const s3 = fakeS3(() => ({ Body: b.stream, ContentLength: 6, ContentRange: 'bytes 0-5/6' }));

    // Act
    const bytes = await s3StagedObjectReader(s3.client)('staging', 'in/1', 100, 'images[0]', undefined, admitted);

    // Assess
    expect(bytes.toString()).toBe('abcdef');
    expect(s3.sent[0]?.input).toEqual({ Bucket: 'staging', Key: 'in/1', Range: 'bytes=0-5', IfMatch: '"v1"' });
  });

  it('says SourceChanged (transient, reason "changed") when the version is no longer the one admitted', async () => {
    // Prepare
    const s3 = fakeS3(() => {
      throw sdkError('PreconditionFailed', 412);
    });

    // Act
    const error = await rejectionOf(() => s3StagedObjectReader(s3.client)('staging', 'in/1', 100, 'images[2]', undefined, admitted));

    // Assess
    expect(error).toBeInstanceOf(SourceChanged);
    expect(failureKind(error)).toBe('transient');
    expect(transientReason(error)).toBe('changed');
    expect(error).toMatchObject({ message: 'images[2]: s3://staging/in/1 changed after it was admitted (another ETag); the next attempt reads it anew' });
  });

  it('refuses an object whose full size is not the admitted one, without reading its body', async () => {
    // Prepare
    const b = body([Buffer.alloc(6)]);
    const s3 = fakeS3(() => ({ Body: b.stream, ContentLength: 6, ContentRange: 'bytes 0-5/90' }));

    // Act
    const error = await rejectionOf(() => s3StagedObjectReader(s3.client)('staging', 'in/1', 100, 'images[0]', undefined, { size: 6, etag: undefined }));

    // Assess
    expect(error).toBeInstanceOf(SourceChanged);
    expect(String(error)).toContain('90 bytes, not 6');
    expect(b.destroyed()).toBe(true);
  });

  it('stops reading as soon as the body passes the admitted size, when the server ignores the range', async () => {
    // Prepare
    let pulled = 0;
    const stream = {
      async *[Symbol.asyncIterator]() {
        for (let i = 0; i < 100; i += 1) {
          pulled += 1;
          yield Buffer.alloc(4);
        }
      },
      destroy: () => {},
    };
    const s3 = fakeS3(() => ({ Body: stream }));

    // Act
    const error = await rejectionOf(() => s3StagedObjectReader(s3.client)('staging', 'in/1', 100, 'images[0]', undefined, admitted));

    // Assess
    expect(error).toBeInstanceOf(SourceChanged);
    expect(error).toMatchObject({ message: 'images[0]: s3://staging/in/1 changed after it was admitted (more than 6 bytes); the next attempt reads it anew' });
    expect(pulled).toBe(2);
  });

  it('refuses a body shorter than admitted', async () => {
    // Prepare
    const b = body([Buffer.alloc(4)]);
    const s3 = fakeS3(() => ({ Body: b.stream }));

    // Act
    const error = await rejectionOf(() => s3StagedObjectReader(s3.client)('staging', 'in/1', 100, 'images[0]', undefined, admitted));

    // Assess
    expect(error).toBeInstanceOf(SourceChanged);
    expect(String(error)).toContain('4 bytes, not 6');
  });
});

describe('discardStagedSources', () => {
  const RULES: StagingRules = { stagingBucket: 'staging', stagingPrefix: 'in/', maxImageBytes: 100 };

  it('deletes each staged source of the job once, and nothing else', async () => {
    // Prepare
    const removed: string[] = [];
    const theJob = job([inline(Buffer.from('x')), staged('staging', 'in/1'), staged('staging', 'in/1'), staged('staging', 'in/2')]);

    // Act
    const count = await discardStagedSources(theJob, RULES, async (bucket, key) => void removed.push(`${bucket}/${key}`));

    // Assess
    expect(count).toBe(2);
    expect(removed).toEqual(['staging/in/1', 'staging/in/2']);
  });

  it('never deletes outside the staging bucket and prefix', async () => {
    // Prepare
    const removed: string[] = [];
    const theJob = job([staged('face-references', 'users/bob/ref_0123456789ab.jpg'), staged('staging', 'other/1')]);

    // Act
    const count = await discardStagedSources(theJob, RULES, async (bucket, key) => void removed.push(`${bucket}/${key}`));

    // Assess
    expect(count).toBe(0);
    expect(removed).toEqual([]);
  });

  it('lists the staged sources of a job', () => {
    // Assess
    expect(stagedSourcesOf(job([inline(Buffer.from('x')), staged('staging', 'in/1')]))).toEqual([{ bucket: 'staging', key: 'in/1' }]);
  });
});
