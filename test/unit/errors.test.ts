import { BatchEntryError } from '../../src/aws/sqs-batches.ts';
import { describe, expect, it } from 'vitest';
import {
  describeError,
  failureKind,
  isJobError,
  JOB_ERROR_CODES,
  JOB_ERROR_MESSAGE_MAX,
  JobError,
  RETRIES_EXHAUSTED,
  transientReason,
  WorkerMisconfigured,
} from '../../src/job/errors.ts';
import { networkError, sdkError } from './helpers.ts';

describe('JobError', () => {
  it('carries a literal name, its code, its message and a cause', () => {
    // Prepare
    const cause = new Error('inner');

    // Act
    const error = new JobError('SOURCE_NOT_FOUND', 'images[0]: s3://b/k does not exist', { cause });

    // Assess
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('JobError');
    expect(error.code).toBe('SOURCE_NOT_FOUND');
    expect(error.message).toBe('images[0]: s3://b/k does not exist');
    expect(error.cause).toBe(cause);
  });

  it('has the contract v1 codes, exactly', () => {
    // Assess
    expect(JOB_ERROR_CODES).toEqual([
      'INVALID_SIGNATURE',
      'INVALID_MESSAGE',
      'UNSUPPORTED_VERSION',
      'INVALID_USER_ID',
      'TOO_MANY_IMAGES',
      'INVALID_IMAGE',
      'IMAGE_TOO_LARGE',
      'IMAGE_TOO_SMALL',
      'SOURCE_NOT_ALLOWED',
      'SOURCE_NOT_FOUND',
      'SOURCE_MISMATCH',
      'JOB_EXPIRED',
      'NO_FACE',
      'MULTIPLE_FACES',
      'FACE_TOO_SMALL',
    ]);
    expect(RETRIES_EXHAUSTED).toBe('RETRIES_EXHAUSTED');
  });
});

describe('WorkerMisconfigured', () => {
  it('is transient: the job is good, the worker\'s setting is not', () => {
    // Act
    const error = new WorkerMisconfigured('STAGING_BUCKET', 'the staging bucket "x" does not exist (STAGING_BUCKET)');

    // Assess
    expect(failureKind(error)).toBe('transient');
    expect(error).toMatchObject({ name: 'WorkerMisconfigured', variable: 'STAGING_BUCKET' });
  });
});

describe('failureKind', () => {
  it('is permanent for a JobError', () => {
    // Act
    const kind = failureKind(new JobError('INVALID_IMAGE', 'images[0] is empty'));

    // Assess
    expect(kind).toBe('permanent');
    expect(isJobError(new JobError('INVALID_IMAGE', 'x'))).toBe(true);
  });

  it.each([
    ['a plain Error', new Error('boom')],
    ['a TypeError (our own bug)', new TypeError('x is undefined')],
    ['an SDK throttling error', sdkError('ThrottlingException', 400)],
    ['an SDK 404', sdkError('NoSuchKey', 404)],
    ['a string', 'boom'],
    ['undefined', undefined],
    ['null', null],
    ['an object that only looks like a JobError', { name: 'JobError', code: 'INVALID_IMAGE', message: 'x' }],
  ])('is transient for %s', (_name, error) => {
    // Act
    const kind = failureKind(error);

    // Assess
    expect(kind).toBe('transient');
  });
});

describe('transientReason', () => {
  it.each([
    ['ThrottlingException', sdkError('ThrottlingException', 400), 'throttled'],
    ['S3 SlowDown', sdkError('SlowDown', 503), 'throttled'],
    ['RequestThrottled', sdkError('RequestThrottled'), 'throttled'],
    ['AWS.SimpleQueueService.RequestThrottled', sdkError('AWS.SimpleQueueService.RequestThrottled', 400), 'throttled'],
    ['an unnamed 429', sdkError('UnknownError', 429), 'throttled'],
    ['a 503', sdkError('ServiceUnavailable', 503), 'server'],
    ['a 500', sdkError('InternalError', 500), 'server'],
    ['a 502', sdkError('UnknownError', 502), 'server'],
    ['ECONNRESET', networkError('ECONNRESET'), 'network'],
    ['ECONNREFUSED', networkError('ECONNREFUSED'), 'network'],
    ['ENOTFOUND', networkError('ENOTFOUND'), 'network'],
    ['ETIMEDOUT', networkError('ETIMEDOUT'), 'network'],
    ['EAI_AGAIN', networkError('EAI_AGAIN'), 'network'],
    ['CredentialsProviderError', sdkError('CredentialsProviderError'), 'credentials'],
    ['ExpiredTokenException', sdkError('ExpiredTokenException', 400), 'credentials'],
    ['TimeoutError', sdkError('TimeoutError'), 'timeout'],
    ['RequestTimeout', sdkError('RequestTimeout', 400), 'timeout'],
    ['a batch entry SQS failed on its side', new BatchEntryError({ Id: '0', Code: 'InternalError', SenderFault: false }), 'server'],
    ['a batch entry SQS refused as the sender\'s fault', new BatchEntryError({ Id: '0', Code: 'InvalidParameterValue', SenderFault: true }), 'other'],
    ['a throttled batch entry', new BatchEntryError({ Id: '0', Code: 'RequestThrottled', SenderFault: false }), 'throttled'],
    ['a setting of the worker that is wrong', new WorkerMisconfigured('STAGING_BUCKET', 'no such bucket'), 'configuration'],
    ['AccessDenied (403)', sdkError('AccessDenied', 403), 'other'],
    ['NoSuchKey (404)', sdkError('NoSuchKey', 404), 'other'],
    ['a plain Error', new Error('boom'), 'other'],
    ['an unknown network code', networkError('EWHATEVER'), 'other'],
  ])('%s is %s', (_name, error, reason) => {
    // Act
    const result = transientReason(error);

    // Assess
    expect(result).toBe(reason);
  });

  it('reads a throttling name before a 5xx status', () => {
    // Act
    const reason = transientReason(sdkError('ThrottlingException', 503));

    // Assess
    expect(reason).toBe('throttled');
  });

  it('does not match on the message text', () => {
    // Act
    const reason = transientReason(new Error('ThrottlingException: ECONNRESET while fetching credentials'));

    // Assess
    expect(reason).toBe('other');
  });


  it.each([['a string', 'ECONNRESET'], ['a number', 503], ['null', null], ['undefined', undefined]])(
    'is other for %s',
    (_name, value) => {
      // Act
      const result = transientReason(value);

      // Assess
      expect(result).toBe('other');
    },
  );
});

describe('describeError', () => {
  it('gives the name and message of an Error, and nothing else', () => {
    // Prepare
    const error = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', payload: 'secret' });

    // Act
    const described = describeError(error);

    // Assess
    expect(described).toEqual({ name: 'ThrottlingException', message: 'Rate exceeded' });
  });

  it('describes a thrown non-Error by its type', () => {
    // Act
    const described = describeError('boom');

    // Assess
    expect(described).toEqual({ name: 'string', message: 'boom' });
  });
});

describe('JobError messages are bounded', () => {
  it('cuts a message over JOB_ERROR_MESSAGE_MAX characters, so no input can make a log line or outcome huge', () => {
    const error = new JobError('SOURCE_NOT_ALLOWED', `bucket "${'x'.repeat(5000)}"`);
    expect(error.message).toHaveLength(JOB_ERROR_MESSAGE_MAX + 1);
    expect(error.message.endsWith('…')).toBe(true);
  });

  it('keeps a message of exactly JOB_ERROR_MESSAGE_MAX characters whole', () => {
    // Prepare
    const message = 'y'.repeat(JOB_ERROR_MESSAGE_MAX);

    // Act
    const error = new JobError('INVALID_MESSAGE', message);

    // Assess
    expect(error.message).toBe(message);
  });
});
