// Reading AWS SDK errors (src/aws/errors.ts): first as values of any shape, then as the real S3
// client raises them for the answers the worker acts on, from the in-process endpoint
// (test/support/fast-aws.ts, which answers these as S3 does).
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Client } from '../../src/aws/clients.ts';
import { awsErrorName, httpStatusOf, isAborted, isInvalidRange, isNoSuchBucket, isNotFound, isPreconditionFailed } from '../../src/aws/errors.ts';
import { startFastAws, type FastAws } from '../support/fast-aws.ts';

const sdkLike = (name: unknown, status?: unknown) => ({ name, ...(status === undefined ? {} : { $metadata: { httpStatusCode: status } }) });

describe('awsErrorName', () => {
  it('is the error name', () => {
    expect(awsErrorName(sdkLike('NoSuchKey', 404))).toBe('NoSuchKey');
    expect(awsErrorName(new TypeError('x'))).toBe('TypeError');
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a string', 'NoSuchKey'],
    ['a number', 404],
    ['an object whose name is not a string', { name: 404 }],
    ['an object without a name', {}],
  ])("is '' for %s", (_, value) => {
    expect(awsErrorName(value)).toBe('');
  });
});

describe('httpStatusOf', () => {
  it("is the status of the service's answer", () => {
    expect(httpStatusOf(sdkLike('NoSuchKey', 404))).toBe(404);
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a string', '404'],
    ['an error without $metadata', new Error('socket hang up')],
    ['$metadata without a status', { $metadata: {} }],
    ['a status that is not a number', sdkLike('X', '404')],
  ])('is undefined for %s', (_, value) => {
    expect(httpStatusOf(value)).toBeUndefined();
  });
});

describe('the answers the worker acts on', () => {
  it.each([
    ['isNotFound', isNotFound, [sdkLike('NoSuchKey'), sdkLike('NotFound'), sdkLike('UnknownError', 404)], [sdkLike('NoSuchUpload', 400), sdkLike('AccessDenied', 403), null]],
    ['isNoSuchBucket', isNoSuchBucket, [sdkLike('NoSuchBucket', 404)], [sdkLike('NoSuchKey', 404), sdkLike('NotFound', 404)]],
    ['isPreconditionFailed', isPreconditionFailed, [sdkLike('PreconditionFailed'), sdkLike('UnknownError', 412)], [sdkLike('ConditionalRequestConflict', 409), null]],
    ['isInvalidRange', isInvalidRange, [sdkLike('InvalidRange'), sdkLike('UnknownError', 416)], [sdkLike('InvalidArgument', 400), null]],
    ['isAborted', isAborted, [sdkLike('AbortError')], [sdkLike('TimeoutError'), new Error('aborted'), null]],
  ] as const)('%s: by the name, or by the status alone (a HEAD has no body to name it)', (_, is, yes, no) => {
    expect(yes.map((e) => is(e))).toEqual(yes.map(() => true));
    expect(no.map((e) => is(e))).toEqual(no.map(() => false));
  });
});

describe('as the S3 client raises them', () => {
  let aws: FastAws;
  let s3: S3Client;
  const errorOf = (send: () => Promise<unknown>) =>
    send().then(
      () => {
        throw new Error('the call succeeded');
      },
      (e: unknown) => e,
    );

  beforeAll(async () => {
    aws = await startFastAws({ delayMs: 0 });
    s3 = s3Client({ region: 'us-east-1', endpoint: aws.endpoint }, async () => ({ accessKeyId: 'test', secretAccessKey: 'test' }));
    await s3.send(new CreateBucketCommand({ Bucket: 'errors' }));
    await s3.send(new PutObjectCommand({ Bucket: 'errors', Key: 'there', Body: 'x' }));
    await s3.send(new PutObjectCommand({ Bucket: 'errors', Key: 'empty', Body: '' }));
  });
  afterAll(async () => {
    s3.destroy();
    await aws.stop();
  });

  it('a GET of a missing object is not found, and says nothing of the bucket', async () => {
    const e = await errorOf(() => s3.send(new GetObjectCommand({ Bucket: 'errors', Key: 'missing' })));
    expect([isNotFound(e), isNoSuchBucket(e), awsErrorName(e), httpStatusOf(e)]).toEqual([true, false, 'NoSuchKey', 404]);
  });

  it('a HEAD of a missing object is not found by its status alone', async () => {
    const e = await errorOf(() => s3.send(new HeadObjectCommand({ Bucket: 'errors', Key: 'missing' })));
    expect([isNotFound(e), isNoSuchBucket(e), httpStatusOf(e)]).toEqual([true, false, 404]);
  });

  it('a GET in a missing bucket is a missing bucket', async () => {
    const e = await errorOf(() => s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'x' })));
    expect([isNoSuchBucket(e), awsErrorName(e)]).toEqual([true, 'NoSuchBucket']);
  });

  it('a conditional write over an existing object is a failed precondition', async () => {
    const e = await errorOf(() => s3.send(new PutObjectCommand({ Bucket: 'errors', Key: 'there', Body: 'y', IfNoneMatch: '*' })));
    expect([isPreconditionFailed(e), isNotFound(e)]).toEqual([true, false]);
  });

  it('a range of an empty object is an invalid range', async () => {
    const e = await errorOf(() => s3.send(new GetObjectCommand({ Bucket: 'errors', Key: 'empty', Range: 'bytes=0-9' })));
    expect([isInvalidRange(e), isNotFound(e)]).toEqual([true, false]);
  });

  it('a call cancelled through its signal is aborted', async () => {
    const e = await errorOf(() => s3.send(new GetObjectCommand({ Bucket: 'errors', Key: 'there' }), { abortSignal: AbortSignal.abort() }));
    expect([isAborted(e), httpStatusOf(e)]).toEqual([true, undefined]);
  });
});
