// The S3 adapters (src/aws/s3.ts) with the worker's real S3 client over HTTP: against the
// in-process endpoint (test/support/fast-aws.ts) for what S3 answers (sizes, ETags, ranges, If-Match,
// missing keys and buckets), and against a loopback server answered by hand
// (test/support/loopback-http.ts) for what must be read on the wire (the Range and If-Match sent) or
// what S3 answers only in a race (an object that appears between the HEAD and the GET, a request
// that hangs until the job is cancelled).
import { createHash } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { s3Client } from '../../src/aws/clients.ts';
import { probeReferenceBucket, s3ReferenceLister, s3ReferenceWriter, s3StagedObjectReader, s3StagedObjectRemover, s3StagedObjectSizer } from '../../src/aws/s3.ts';
import type { ReferenceObject } from '../../src/enroll/references.ts';
import { JobError, SourceChanged, WorkerMisconfigured } from '../../src/job/errors.ts';
import { startFastAws, type FastAws } from '../support/fast-aws.ts';
import { reply, startLoopbackHttp, type LoopbackHttp } from '../support/loopback-http.ts';
import { rejectionOf } from './helpers.ts';

const clientFor = (endpoint: string): S3Client => s3Client({ region: 'us-east-1', endpoint }, async () => ({ accessKeyId: 'test', secretAccessKey: 'test' }));
const s3ErrorXml = (code: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>from the test</Message><RequestId>r-1</RequestId></Error>`;
const xmlError = (code: string) => ({ 'content-type': 'application/xml', body: s3ErrorXml(code) });
const IMAGE = Buffer.from('0123456789'.repeat(10)); // 100 bytes

let aws: FastAws;
let s3: S3Client;
let etag: string;
beforeAll(async () => {
  aws = await startFastAws({ delayMs: 0 });
  s3 = clientFor(aws.endpoint);
  await s3.send(new CreateBucketCommand({ Bucket: 'staging' }));
  await s3.send(new CreateBucketCommand({ Bucket: 'references' }));
  etag = (await s3.send(new PutObjectCommand({ Bucket: 'staging', Key: 'in/image', Body: IMAGE }))).ETag ?? '';
  await s3.send(new PutObjectCommand({ Bucket: 'staging', Key: 'in/empty', Body: Buffer.alloc(0) }));
});
afterAll(async () => {
  s3.destroy();
  await aws.stop();
});

// A loopback server per test, for the answers given by hand.
let server: LoopbackHttp;
let wire: S3Client;
beforeEach(async () => {
  server = await startLoopbackHttp((_request, res) => reply(res, 500));
  wire = clientFor(server.endpoint);
});
afterEach(async () => {
  wire.destroy();
  await server.close();
});

describe('s3StagedObjectReader', () => {
  const read = s3StagedObjectReader;

  it('reads an object of exactly the limit', async () => {
    expect(await read(s3)('staging', 'in/image', 100, 'images[0]')).toEqual(IMAGE);
  });

  it('reads an object of exactly the limit that a HEAD admitted, held to its ETag', async () => {
    expect(await read(s3)('staging', 'in/image', 100, 'images[0]', undefined, { size: 100, etag })).toEqual(IMAGE);
  });

  it('refuses an object one byte over the limit, by its size', async () => {
    const error = await rejectionOf(() => read(s3)('staging', 'in/image', 99, 'images[0]'));
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE', message: 'images[0] is 100 bytes; the limit is 99' });
  });

  it('reads an empty object as empty', async () => {
    expect(await read(s3)('staging', 'in/empty', 100, 'images[0]')).toHaveLength(0);
  });

  it('says SourceChanged for an object admitted with bytes that is now empty', async () => {
    const error = await rejectionOf(() => read(s3)('staging', 'in/empty', 100, 'images[0]', undefined, { size: 6, etag: undefined }));
    expect(error).toBeInstanceOf(SourceChanged);
    expect(error).toMatchObject({ message: 'images[0]: s3://staging/in/empty changed after it was admitted (empty, not 6 bytes); the next attempt reads it anew' });
  });

  it('says SourceChanged for an object whose ETag is no longer the one admitted', async () => {
    const error = await rejectionOf(() => read(s3)('staging', 'in/image', 100, 'images[0]', undefined, { size: 100, etag: '"another"' }));
    expect(error).toBeInstanceOf(SourceChanged);
  });

  it('says SOURCE_NOT_FOUND for a missing object, with the SDK error as its cause', async () => {
    const error = await rejectionOf(() => read(s3)('staging', 'in/missing', 100, 'images[1]'));
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({ code: 'SOURCE_NOT_FOUND', message: 'images[1]: s3://staging/in/missing does not exist', cause: { name: 'NoSuchKey' } });
  });

  it("reports a missing staging bucket as the worker's setting (STAGING_BUCKET), not the job's fault", async () => {
    const error = await rejectionOf(() => read(s3)('no-such-staging', 'in/image', 100, 'images[0]'));
    expect(error).toBeInstanceOf(WorkerMisconfigured);
    expect(error).toMatchObject({ variable: 'STAGING_BUCKET', message: 'the staging bucket "no-such-staging" does not exist (STAGING_BUCKET)', cause: { name: 'NoSuchBucket' } });
  });

  it.each([
    ['nothing admitted: the limit plus one byte', 100, undefined, 'bytes=0-100', undefined],
    ['admitted at the limit: exactly its bytes, of its version', 100, { size: 100, etag: '"v1"' }, 'bytes=0-99', '"v1"'],
    ['admitted over the limit: still the limit plus one byte', 100, { size: 5000, etag: '"v1"' }, 'bytes=0-100', '"v1"'],
    ['admitted without an ETag: no condition', 100, { size: 10, etag: undefined }, 'bytes=0-9', undefined],
  ] as const)('asks S3 for a range, %s', async (_, maxBytes, admitted, range, ifMatch) => {
    // Act: the answer (500) does not matter here
    await read(wire)('staging', 'in/1', maxBytes, 'images[0]', undefined, admitted).catch(() => undefined);

    // Assess
    expect({ range: server.requests[0]?.headers.range, ifMatch: server.requests[0]?.headers['if-match'] }).toEqual({ range, ifMatch });
  });

  it('asks nothing for an object admitted empty', async () => {
    expect(await read(wire)('staging', 'in/1', 100, 'images[0]', undefined, { size: 0, etag: '"e"' })).toHaveLength(0);
    expect(server.requests).toHaveLength(0);
  });

  it('takes the size from Content-Length when Content-Range does not say the whole length', async () => {
    // Prepare
    server.answerWith((_request, res) => reply(res, 206, { 'content-range': 'bytes 0-5/*', etag: '"v1"' }, 'abcdef'));

    // Act
    const error = await rejectionOf(() => read(wire)('staging', 'in/1', 100, 'images[0]', undefined, { size: 8, etag: '"v1"' }));

    // Assess
    expect(error).toMatchObject({ message: expect.stringContaining('(6 bytes, not 8)') });
  });

  it('stops a GET that has no answer yet when the job is cancelled', async () => {
    // Prepare
    server.answerWith(() => undefined);
    const job = new AbortController();
    const reading = rejectionOf(() => read(wire)('staging', 'in/1', 100, 'images[0]', job.signal));
    const request = await server.received(1);

    // Act
    job.abort(new Error('job cancelled'));

    // Assess
    expect(await reading).toMatchObject({ name: 'AbortError' });
    await request.dropped;
  });

  it('stops reading a body under way when the job is cancelled', async () => {
    // Prepare: half the object now, the rest never
    server.answerWith((_request, res) => {
      res.writeHead(200, { 'content-length': '100', etag: '"v1"' });
      res.write(IMAGE.subarray(0, 50));
    });
    const job = new AbortController();
    const reading = rejectionOf(() => read(wire)('staging', 'in/1', 100, 'images[0]', job.signal));
    const request = await server.received(1);

    // Act
    job.abort(new Error('job cancelled'));

    // Assess
    expect(await reading).toBeInstanceOf(Error);
    await request.dropped;
  });
});

describe('s3StagedObjectSizer', () => {
  const size = s3StagedObjectSizer;

  it("gives an object's size and ETag from its HEAD", async () => {
    expect(await size(s3)('staging', 'in/image', 'images[0]')).toEqual({ size: 100, etag });
  });

  it('says SOURCE_NOT_FOUND for a missing object (a one-byte GET tells it from a missing bucket)', async () => {
    const error = await rejectionOf(() => size(s3)('staging', 'in/missing', 'images[2]'));
    expect(error).toMatchObject({ code: 'SOURCE_NOT_FOUND', message: 'images[2]: s3://staging/in/missing does not exist' });
  });

  it('reports a missing staging bucket as the setting STAGING_BUCKET', async () => {
    const error = await rejectionOf(() => size(s3)('no-such-staging', 'in/image', 'images[0]'));
    expect(error).toMatchObject({ name: 'WorkerMisconfigured', variable: 'STAGING_BUCKET' });
  });

  it('gives the size and ETag of an object that appeared between its HEAD and the one-byte GET', async () => {
    // Prepare
    server.answerWith((request, res) =>
      request.method === 'HEAD' ? reply(res, 404) : reply(res, 206, { 'content-range': 'bytes 0-0/1234', etag: '"v2"' }, 'x'),
    );

    // Act
    const facts = await size(wire)('staging', 'in/1', 'images[0]');

    // Assess
    expect(facts).toEqual({ size: 1234, etag: '"v2"' });
    expect(server.requests.map((r) => [r.method, r.headers.range])).toEqual([
      ['HEAD', undefined],
      ['GET', 'bytes=0-0'],
    ]);
  });

  it('gives size 0 for an object that appeared empty (no byte to ask for)', async () => {
    // Prepare
    server.answerWith((request, res) => {
      if (request.method === 'HEAD') return reply(res, 404);
      const { body, ...headers } = xmlError('InvalidRange');
      return reply(res, 416, headers, body);
    });

    // Act
    const facts = await size(wire)('staging', 'in/1', 'images[0]');

    // Assess
    expect(facts).toEqual({ size: 0, etag: undefined });
  });

  it('lets any other answer to the HEAD through as it came, without a GET', async () => {
    // Prepare
    server.answerWith((_request, res) => reply(res, 403));

    // Act
    const error = await rejectionOf(() => size(wire)('staging', 'in/1', 'images[0]'));

    // Assess
    expect(error).toMatchObject({ $metadata: { httpStatusCode: 403 } });
    expect(server.requests.map((r) => r.method)).toEqual(['HEAD']);
  });

  it('lets any other answer to the GET through as it came', async () => {
    // Prepare
    server.answerWith((request, res) => {
      if (request.method === 'HEAD') return reply(res, 404);
      const { body, ...headers } = xmlError('AccessDenied');
      return reply(res, 403, headers, body);
    });

    // Act
    const error = await rejectionOf(() => size(wire)('staging', 'in/1', 'images[0]'));

    // Assess
    expect(error).toMatchObject({ name: 'AccessDenied' });
  });

  it.each([
    ['the HEAD', 1],
    ['the one-byte GET', 2],
  ])('stops %s when the job is cancelled', async (_, n) => {
    // Prepare: a 404 to the HEAD, no answer to the request the test waits on
    server.answerWith((request, res) => (server.requests.length < n ? reply(res, 404) : undefined));
    const job = new AbortController();
    const sizing = rejectionOf(() => size(wire)('staging', 'in/1', 'images[0]', job.signal));
    const request = await server.received(n);

    // Act
    job.abort(new Error('job cancelled'));

    // Assess
    expect(await sizing).toMatchObject({ name: 'AbortError' });
    await request.dropped;
  });
});

describe('s3StagedObjectRemover', () => {
  it('deletes the object', async () => {
    // Prepare
    await s3.send(new PutObjectCommand({ Bucket: 'staging', Key: 'in/to-remove', Body: 'x' }));

    // Act
    await s3StagedObjectRemover(s3)('staging', 'in/to-remove');

    // Assess
    expect(await rejectionOf(() => s3.send(new GetObjectCommand({ Bucket: 'staging', Key: 'in/to-remove' })))).toMatchObject({ name: 'NoSuchKey' });
  });
});

describe('s3ReferenceWriter', () => {
  const reference = (body: Buffer, storedSha256: Buffer): ReferenceObject => ({
    key: 'users/alice/ref_0123456789ab.jpg',
    body,
    contentType: 'image/jpeg',
    sha256: Buffer.alloc(32, 1),
    storedSha256,
    jobId: 'job-1',
  });

  it('signs with the SHA-256 it was given, without hashing the body again', async () => {
    // Prepare: a hash that is not the body's shows which one the signer used
    server.answerWith((_request, res) => reply(res, 200, { etag: '"v1"' }));
    const given = Buffer.alloc(32, 7);

    // Act
    const result = await s3ReferenceWriter(wire, 'references')(reference(Buffer.from('image bytes'), given));

    // Assess
    expect(result).toBe('created');
    expect(server.requests[0]?.headers['x-amz-content-sha256']).toBe(given.toString('hex'));
    expect(server.requests[0]?.headers['x-amz-content-sha256']).not.toBe(createHash('sha256').update('image bytes').digest('hex'));
  });

  it('stops a write that has no answer yet when the job is cancelled', async () => {
    // Prepare
    server.answerWith(() => undefined);
    const job = new AbortController();
    const body = Buffer.from('image bytes');
    const writing = rejectionOf(() => s3ReferenceWriter(wire, 'references')(reference(body, createHash('sha256').update(body).digest()), job.signal));
    const request = await server.received(1);

    // Act
    job.abort(new Error('job cancelled'));

    // Assess
    expect(await writing).toMatchObject({ name: 'AbortError' });
    await request.dropped;
  });
});

describe('probeReferenceBucket', () => {
  it('finds a bucket writable when S3 answers the impossible condition with 404 for the missing object', async () => {
    // Act
    const probe = await probeReferenceBucket(s3, 'references');

    // Assess: and nothing was written
    expect(probe).toEqual({ result: 'writable', key: expect.stringMatching(/^users\/_check\/[0-9a-f-]{36}$/) });
    expect(await rejectionOf(() => s3.send(new GetObjectCommand({ Bucket: 'references', Key: probe.key })))).toMatchObject({ name: 'NoSuchKey' });
  });

  it('lets a missing bucket through as it came', async () => {
    expect(await rejectionOf(() => probeReferenceBucket(s3, 'no-such-references'))).toMatchObject({ name: 'NoSuchBucket' });
  });

  it('puts an empty object conditional on an ETag no object has, under users/_check/', async () => {
    // Prepare
    server.answerWith((_request, res) => {
      const { body, ...headers } = xmlError('PreconditionFailed');
      reply(res, 412, headers, body);
    });

    // Act
    const probe = await probeReferenceBucket(wire, 'references');

    // Assess
    const request = server.requests[0];
    expect(probe.result).toBe('writable');
    expect({ method: request?.method, path: request?.url.split('?')[0], ifMatch: request?.headers['if-match'], length: request?.body.length }).toEqual({
      method: 'PUT',
      path: `/references/${probe.key}`,
      ifMatch: '"enrollment-worker-check"',
      length: 0,
    });
  });

  it("says 'written' when the endpoint ignored the condition (the caller deletes the probe object)", async () => {
    // Prepare
    server.answerWith((_request, res) => reply(res, 200, { etag: '"d41d8cd98f00b204e9800998ecf8427e"' }));

    // Act
    const probe = await probeReferenceBucket(wire, 'references');

    // Assess
    expect(probe).toEqual({ result: 'written', key: expect.stringMatching(/^users\/_check\//) });
  });

  it('lets a refused permission through as it came', async () => {
    // Prepare
    server.answerWith((_request, res) => {
      const { body, ...headers } = xmlError('AccessDenied');
      reply(res, 403, headers, body);
    });

    // Act
    const error = await rejectionOf(() => probeReferenceBucket(wire, 'references'));

    // Assess
    expect(error).toMatchObject({ name: 'AccessDenied' });
  });

  it('stops when its signal aborts', async () => {
    // Prepare
    server.answerWith(() => undefined);
    const stop = new AbortController();
    const probing = rejectionOf(() => probeReferenceBucket(wire, 'references', stop.signal));
    const request = await server.received(1);

    // Act
    stop.abort();

    // Assess
    expect(await probing).toMatchObject({ name: 'AbortError' });
    await request.dropped;
  });
});

describe('s3ReferenceLister', () => {
  it("lists the keys under a user's prefix, and nothing else", async () => {
    // Prepare
    for (const key of ['users/lister/ref_000000000001.jpg', 'users/lister/ref_000000000002.png', 'users/lister2/ref_000000000003.jpg']) {
      await s3.send(new PutObjectCommand({ Bucket: 'references', Key: key, Body: 'x' }));
    }

    // Act
    const keys = await s3ReferenceLister(s3, 'references')('users/lister/');

    // Assess
    expect([...keys].sort()).toEqual(['users/lister/ref_000000000001.jpg', 'users/lister/ref_000000000002.png']);
  });

  it('lists nothing for a user without references', async () => {
    expect((await s3ReferenceLister(s3, 'references')('users/nobody/')).size).toBe(0);
  });

  it('asks for one page of up to 1,000 keys under the prefix, and skips an entry without a key', async () => {
    // Prepare
    server.answerWith((_request, res) =>
      reply(
        res,
        200,
        { 'content-type': 'application/xml' },
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>references</Name><Prefix>users/alice/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>' +
          '<Contents><Key>users/alice/ref_000000000001.jpg</Key><Size>1</Size></Contents><Contents><Size>2</Size></Contents></ListBucketResult>',
      ),
    );

    // Act
    const keys = await s3ReferenceLister(wire, 'references')('users/alice/');

    // Assess
    expect([...keys]).toEqual(['users/alice/ref_000000000001.jpg']);
    const query = new URL(server.requests[0]?.url ?? '', 'http://x').searchParams;
    expect({ prefix: query.get('prefix'), maxKeys: query.get('max-keys') }).toEqual({ prefix: 'users/alice/', maxKeys: '1000' });
  });

  it('stops when the job is cancelled', async () => {
    // Prepare
    server.answerWith(() => undefined);
    const job = new AbortController();
    const listing = rejectionOf(() => s3ReferenceLister(wire, 'references')('users/alice/', job.signal));
    const request = await server.received(1);

    // Act
    job.abort();

    // Assess
    expect(await listing).toMatchObject({ name: 'AbortError' });
    await request.dropped;
  });
});
