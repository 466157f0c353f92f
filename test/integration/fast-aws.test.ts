// The benchmark's fast endpoint (test/support/fast-aws.ts) must answer as AWS does, or the figures
// measured against it mean nothing: the built worker runs a real job mix against it end to end,
// and the protocol details the worker relies on (long polls, visibility, redrive, conditional
// writes, checksums, ranges, MD5s, IMDSv2, STS, batch calls, request billing, injected faults) are
// checked one by one.
import { createHash } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type Message,
} from '@aws-sdk/client-sqs';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromInstanceMetadata } from '@aws-sdk/credential-providers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_AWS_ACCOUNT, md5OfMessageAttributes, startFastAws, type FastAws } from '../support/fast-aws.ts';
import { jpegImage } from '../support/images.ts';
import { inlineJob, outcomes, queueDepth, queueHolds, sendJob, stagedImage } from '../support/jobs.ts';
import { createStack, drainQueue, listKeys, testClients, uniqueName, type Stack } from '../support/resources.ts';
import { until } from '../support/wait.ts';
import { stackEnv, startWorker, workerReaper } from '../support/worker-process.ts';

let aws: FastAws;
const reaper = workerReaper();

beforeAll(async () => {
  aws = await startFastAws({ delayMs: 2 });
});

afterAll(async () => {
  await reaper.killAll();
  await aws.stop();
});

describe('the worker against the fast endpoint', () => {
  it('stores inline and staged jobs, dead-letters a bad one, and drains on SIGTERM', async () => {
    const stack = await createStack(aws.endpoint, uniqueName('fast-e2e'));
    const worker = reaper.track(await startWorker(stackEnv(stack, aws.imdsEndpoint, { LOG_LEVEL: 'info' })));
    // The worker's credentials came from this endpoint's IMDSv2, and it asked STS who it is.
    expect(aws.requests.imds).toBeGreaterThanOrEqual(3);
    expect(aws.requests['sts:GetCallerIdentity']).toBeGreaterThanOrEqual(1);

    const [inline, staged] = await Promise.all([jpegImage({ width: 320, height: 400 }), jpegImage({ width: 400, height: 320 })]);
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: 'uploads/s1/0', Body: staged }));
    await sendJob(stack, inlineJob('Alice@Example.com', [inline], 'fast-inline'));
    await sendJob(stack, { version: 1, jobId: 'fast-staged', userId: 'bob', images: [stagedImage(stack.stagingBucket, 'uploads/s1/0', staged)] });
    await sendJob(stack, { version: 1, jobId: 'fast-bad', userId: 'carol', images: [{ data: Buffer.from('not an image').toString('base64') }] }, {
      source: { DataType: 'String', StringValue: 'test' },
    });

    const results = await outcomes(stack, 3, 30_000);
    const byJob = new Map(results.map((o) => [o.jobId, o]));
    expect(byJob.get('fast-inline')?.status).toBe('succeeded');
    expect(byJob.get('fast-staged')?.status).toBe('succeeded');
    expect(byJob.get('fast-bad')).toMatchObject({ status: 'failed', error: { code: 'INVALID_IMAGE' } });
    const keys = await listKeys(stack.s3, stack.bucket);
    expect(keys.sort()).toEqual(
      [...(byJob.get('fast-inline')?.references ?? []), ...(byJob.get('fast-staged')?.references ?? [])].map((r) => r.key).sort(),
    );
    const dead = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 1, timeoutMs: 10_000 });
    expect(dead).toHaveLength(1);
    expect(dead[0]?.MessageAttributes?.ErrorCode?.StringValue).toBe('INVALID_IMAGE');
    expect(dead[0]?.MessageAttributes?.source?.StringValue).toBe('test');
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 });

    // The idle long polls are answered at once, so the drain need not wait them out.
    const stopping = worker.stop('SIGTERM');
    aws.releaseWaits();
    expect((await stopping).code).toBe(0);
  });
});

describe('the fast endpoint speaks the protocol', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await createStack(aws.endpoint, uniqueName('fast-proto'), { maxReceiveCount: 2 });
  });

  it('holds a long poll until a message arrives, and hides a received message for its visibility timeout', async () => {
    // Hidden for 3 s: the check that it is hidden comes at once, even on a busy machine.
    const queueName = stack.jobsQueueUrl.split('/').pop() ?? '';
    const polling = stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.jobsQueueUrl, WaitTimeSeconds: 20, VisibilityTimeout: 3, MessageSystemAttributeNames: ['All'] }));
    // The poll is held open at the endpoint (not answered empty) until the message arrives.
    await until('the long poll to wait at the endpoint', () => aws.waitingPolls(queueName) === 1, 10_000);
    await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.jobsQueueUrl, MessageBody: 'hello' }));
    const first = (await polling).Messages ?? [];
    expect(first).toHaveLength(1);
    expect(aws.waitingPolls(queueName)).toBe(0);
    expect(first[0]?.Attributes?.ApproximateReceiveCount).toBe('1');

    const hidden = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.jobsQueueUrl, WaitTimeSeconds: 0 }));
    expect(hidden.Messages ?? []).toHaveLength(0);
    // Visible again once its 3 s are up: a long poll is answered when that happens.
    const again = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.jobsQueueUrl, WaitTimeSeconds: 20, VisibilityTimeout: 30, MessageSystemAttributeNames: ['ApproximateReceiveCount'] }));
    expect(again.Messages?.[0]?.MessageId).toBe(first[0]?.MessageId);
    expect(again.Messages?.[0]?.Attributes?.ApproximateReceiveCount).toBe('2');

    // The old receipt handle is stale: its delete succeeds but leaves the message.
    await stack.sqs.send(new DeleteMessageCommand({ QueueUrl: stack.jobsQueueUrl, ReceiptHandle: first[0]?.ReceiptHandle }));
    expect(await queueDepth(stack, stack.jobsQueueUrl)).toEqual({ visible: 0, inFlight: 1 });
    await expect(
      stack.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: stack.jobsQueueUrl, ReceiptHandle: first[0]?.ReceiptHandle, VisibilityTimeout: 0 })),
    ).rejects.toThrow(/expired/);

    // Received twice with maxReceiveCount 2: made visible, it moves to the dead-letter queue.
    await stack.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: stack.jobsQueueUrl, ReceiptHandle: again.Messages?.[0]?.ReceiptHandle, VisibilityTimeout: 0 }));
    const none = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.jobsQueueUrl, WaitTimeSeconds: 1 }));
    expect(none.Messages ?? []).toHaveLength(0);
    const dead = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 1, timeoutMs: 10_000 });
    expect(dead.map((m) => m.Body)).toEqual(['hello']);
  });

  it('answers with the MD5s SQS computes, and refuses a message over 1 MiB', async () => {
    const attributes = { b: { DataType: 'Binary', BinaryValue: new Uint8Array([1, 2, 3]) }, a: { DataType: 'String', StringValue: 'x' } };
    const sent = await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.resultQueueUrl, MessageBody: 'body', MessageAttributes: attributes }));
    expect(sent.MD5OfMessageBody).toBe(createHash('md5').update('body').digest('hex'));
    // By hand, as the SQS documentation describes it: names sorted; each of name, type and value
    // length-prefixed (4 bytes, big-endian); a transport byte 1 (string) or 2 (binary) before the value.
    const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
    const expected = createHash('md5')
      .update(Buffer.concat([field(Buffer.from('a')), field(Buffer.from('String')), Buffer.from([1]), field(Buffer.from('x'))]))
      .update(Buffer.concat([field(Buffer.from('b')), field(Buffer.from('Binary')), Buffer.from([2]), field(Buffer.from([1, 2, 3]))]))
      .digest('hex');
    expect(sent.MD5OfMessageAttributes).toBe(expected);
    expect(md5OfMessageAttributes({ a: { DataType: 'String', StringValue: 'x' }, b: { DataType: 'Binary', BinaryValue: 'AQID' } })).toBe(expected);
    const received = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.resultQueueUrl, MessageAttributeNames: ['All'], WaitTimeSeconds: 1 }));
    expect(received.Messages?.[0]?.MD5OfMessageAttributes).toBe(expected);
    expect(received.Messages?.[0]?.MessageAttributes?.b?.BinaryValue).toEqual(new Uint8Array([1, 2, 3]));

    await expect(stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.resultQueueUrl, MessageBody: 'x'.repeat(1_048_577) }))).rejects.toThrow(/shorter than/);
    await expect(stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: `${aws.endpoint}/${FAST_AWS_ACCOUNT}/no-such-queue`, AttributeNames: ['All'] }))).rejects.toMatchObject({
      name: 'QueueDoesNotExist',
    });
    const created = await stack.sqs.send(new CreateQueueCommand({ QueueName: 'fast-proto-extra' }));
    expect(created.QueueUrl).toBe(`${aws.endpoint}/${FAST_AWS_ACCOUNT}/fast-proto-extra`);
  });

  it('refuses bodies and attribute values with characters SQS refuses (which moto lets through)', async () => {
    const send = (body: string, value = 'ok') =>
      stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.resultQueueUrl, MessageBody: body, MessageAttributes: { a: { DataType: 'String', StringValue: value } } }));

    for (const bad of ['\u0001', '\u0000', '\u001f', '\uFFFE', '\uFFFF', '\uD800', '\uDC00x']) {
      await expect(send(`x${bad}y`)).rejects.toMatchObject({ name: 'InvalidMessageContents' });
      await expect(send('x', `v${bad}`)).rejects.toMatchObject({ name: 'InvalidParameterValue', message: expect.stringMatching(/attribute 'a' value contains invalid binary character/) });
    }
    // The edges of the allowed set, and a whole surrogate pair, are accepted.
    await expect(send('\t\n\r \uD7FF\uE000\uFFFD\u{10000}\u{10FFFF}😀')).resolves.toMatchObject({ MessageId: expect.any(String) });
    await drainQueue(stack.sqs, stack.resultQueueUrl ?? '', { timeoutMs: 2_000 });
  });

  it('writes conditionally, verifies ChecksumSHA256, and serves ranges and checksums', async () => {
    const body = Buffer.from('reference bytes');
    const sha256 = createHash('sha256').update(body).digest('base64');
    const put = (checksum: string) =>
      stack.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: 'users/u/ref.jpg', Body: body, ChecksumSHA256: checksum, IfNoneMatch: '*', Metadata: { 'job-id': 'j' } }));
    await expect(put(createHash('sha256').update('other').digest('base64'))).rejects.toMatchObject({ name: 'BadDigest' });
    await put(sha256);
    await expect(put(sha256)).rejects.toMatchObject({ name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } });

    const whole = await stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: 'users/u/ref.jpg', ChecksumMode: 'ENABLED' }));
    expect(whole.ChecksumSHA256).toBe(sha256);
    expect(whole.Metadata).toEqual({ 'job-id': 'j' });
    expect(Buffer.from((await whole.Body?.transformToByteArray()) ?? [])).toEqual(body);
    const part = await stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: 'users/u/ref.jpg', Range: 'bytes=0-8' }));
    expect(part.ContentRange).toBe(`bytes 0-8/${body.length}`);
    expect(await part.Body?.transformToString()).toBe('reference');
    // A read held to one version (If-Match on the ETag a HEAD gave), as S3 and moto do.
    const { ETag } = await stack.s3.send(new HeadObjectCommand({ Bucket: stack.bucket, Key: 'users/u/ref.jpg' }));
    const held = await stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: 'users/u/ref.jpg', IfMatch: ETag, Range: 'bytes=0-8' }));
    expect(await held.Body?.transformToString()).toBe('reference');
    await expect(stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: 'users/u/ref.jpg', IfMatch: '"0123456789abcdef0123456789abcdef"' }))).rejects.toMatchObject({
      name: 'PreconditionFailed',
      $metadata: { httpStatusCode: 412 },
    });

    await stack.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: 'empty', Body: Buffer.alloc(0) }));
    await expect(stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: 'empty', Range: 'bytes=0-10' }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 416 } });
    await expect(stack.s3.send(new HeadObjectCommand({ Bucket: stack.bucket, Key: 'missing' }))).rejects.toMatchObject({ name: 'NotFound' });
    await expect(stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: 'missing' }))).rejects.toMatchObject({ name: 'NoSuchKey' });
    await expect(stack.s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'k' }))).rejects.toMatchObject({ name: 'NoSuchBucket' });
    expect(await listKeys(stack.s3, stack.bucket)).toEqual(['empty', 'users/u/ref.jpg']);
  });

  it('hands out instance-role credentials over IMDSv2 only, and answers STS', async () => {
    const unsigned = await fetch(`${aws.imdsEndpoint}/latest/meta-data/iam/security-credentials/`);
    expect(unsigned.status).toBe(401);
    const saved = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = aws.imdsEndpoint;
    const credentials = await fromInstanceMetadata({ ec2MetadataV1Disabled: true })().finally(() => {
      if (saved === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
      else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = saved;
    });
    expect(credentials.accessKeyId).toBe('test');
    const sts = new STSClient({ region: 'us-east-1', endpoint: aws.endpoint, credentials });
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    expect(identity.Account).toBe(FAST_AWS_ACCOUNT);
    sts.destroy();
  });
});

describe('the fast endpoint answers batch calls entry by entry, bills as SQS does, and fails on request', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await createStack(aws.endpoint, uniqueName('fast-batch'), { withStaging: false });
  });

  /** Sends `n` messages and receives them all in one call (up to 10), in flight for 60 s. */
  async function inFlight(n: number): Promise<Message[]> {
    await stack.sqs.send(
      new SendMessageBatchCommand({ QueueUrl: stack.jobsQueueUrl, Entries: Array.from({ length: n }, (_, i) => ({ Id: `m${i}`, MessageBody: `body ${i}` })) }),
    );
    const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.jobsQueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60, WaitTimeSeconds: 1 }));
    expect(got.Messages ?? []).toHaveLength(n);
    return got.Messages ?? [];
  }

  it('refuses a whole batch that is empty, over 10 entries, with repeated or malformed ids, or over 1 MiB', async () => {
    const q = stack.jobsQueueUrl;
    const handle = 'x';
    await expect(stack.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: q, Entries: [] }))).rejects.toMatchObject({ name: 'EmptyBatchRequest' });
    await expect(
      stack.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: q, Entries: Array.from({ length: 11 }, (_, i) => ({ Id: `e${i}`, ReceiptHandle: handle })) })),
    ).rejects.toMatchObject({ name: 'TooManyEntriesInBatchRequest' });
    await expect(
      stack.sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: q, Entries: [{ Id: 'a', ReceiptHandle: handle, VisibilityTimeout: 5 }, { Id: 'a', ReceiptHandle: handle, VisibilityTimeout: 5 }] })),
    ).rejects.toMatchObject({ name: 'BatchEntryIdsNotDistinct' });
    await expect(stack.sqs.send(new SendMessageBatchCommand({ QueueUrl: q, Entries: [{ Id: 'no.dots', MessageBody: 'x' }] }))).rejects.toMatchObject({
      name: 'InvalidBatchEntryId',
    });
    // Each message under 1 MiB, together over it.
    const big = 'x'.repeat(600_000);
    await expect(
      stack.sqs.send(new SendMessageBatchCommand({ QueueUrl: q, Entries: [{ Id: 'a', MessageBody: big }, { Id: 'b', MessageBody: big }] })),
    ).rejects.toMatchObject({ name: 'BatchRequestTooLong' });
    // None of those acted: the queue is still empty.
    expect(aws.queueDepth(`${stack.jobsQueueUrl.split('/').pop()}`)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it('deletes and changes visibility entry by entry; a deleted message cannot have its visibility changed', async () => {
    const q = stack.jobsQueueUrl;
    const [a, b, c] = await inFlight(3);
    await stack.sqs.send(new DeleteMessageCommand({ QueueUrl: q, ReceiptHandle: a?.ReceiptHandle }));
    await expect(stack.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: q, ReceiptHandle: a?.ReceiptHandle, VisibilityTimeout: 30 }))).rejects.toMatchObject({
      name: 'InvalidParameterValue',
      message: expect.stringMatching(/Message does not exist or is not available for visibility timeout change/),
    });

    const changed = await stack.sqs.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: q,
        Entries: [
          { Id: 'deleted', ReceiptHandle: a?.ReceiptHandle, VisibilityTimeout: 30 },
          { Id: 'b', ReceiptHandle: b?.ReceiptHandle, VisibilityTimeout: 0 },
          { Id: 'foreign', ReceiptHandle: Buffer.from('other-queue\nid\nnonce').toString('base64url'), VisibilityTimeout: 30 },
        ],
      }),
    );
    expect(changed.Successful?.map((e) => e.Id)).toEqual(['b']);
    expect(Object.fromEntries((changed.Failed ?? []).map((e) => [e.Id, [e.Code, e.SenderFault]]))).toEqual({
      deleted: ['InvalidParameterValue', true],
      foreign: ['ReceiptHandleIsInvalid', true],
    });
    // b was made visible at once (timeout 0); c is still in flight.
    expect(await queueDepth(stack, q)).toEqual({ visible: 1, inFlight: 1 });

    // Deleting an already deleted message succeeds, as on SQS; a foreign handle fails by itself.
    const deleted = await stack.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: q,
        Entries: [
          { Id: 'again', ReceiptHandle: a?.ReceiptHandle },
          { Id: 'c', ReceiptHandle: c?.ReceiptHandle },
          { Id: 'foreign', ReceiptHandle: Buffer.from('other-queue\nid\nnonce').toString('base64url') },
        ],
      }),
    );
    expect(deleted.Successful?.map((e) => e.Id).sort()).toEqual(['again', 'c']);
    expect(deleted.Failed?.map((e) => [e.Id, e.Code])).toEqual([['foreign', 'ReceiptHandleIsInvalid']]);
    await drainQueue(stack.sqs, q, { expected: 1, timeoutMs: 10_000 });
    expect(await queueDepth(stack, q)).toEqual({ visible: 0, inFlight: 0 });
  });

  it('fails chosen batch entries without acting on them, and whole calls, when told to', async () => {
    const q = stack.jobsQueueUrl;
    const [a, b] = await inFlight(2);
    aws.failBatchEntries({ action: 'DeleteMessageBatch', match: (e) => e.Id === 'b' });
    const first = await stack.sqs.send(
      new DeleteMessageBatchCommand({ QueueUrl: q, Entries: [{ Id: 'a', ReceiptHandle: a?.ReceiptHandle }, { Id: 'b', ReceiptHandle: b?.ReceiptHandle }] }),
    );
    expect(first.Successful?.map((e) => e.Id)).toEqual(['a']);
    expect(first.Failed).toEqual([{ Id: 'b', Code: 'InternalError', SenderFault: false, Message: expect.stringMatching(/injected/) }]);
    // b was not deleted; the fault is used up, so the retry of that one entry succeeds.
    expect(await queueDepth(stack, q)).toEqual({ visible: 0, inFlight: 1 });
    const retry = await stack.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: q, Entries: [{ Id: 'b', ReceiptHandle: b?.ReceiptHandle }] }));
    expect(retry.Failed ?? []).toEqual([]);

    aws.failBatchEntries({ action: 'SendMessageBatch', entries: 1, code: 'InvalidParameterValue', senderFault: true });
    const sent = await stack.sqs.send(new SendMessageBatchCommand({ QueueUrl: q, Entries: [{ Id: 'x', MessageBody: 'x' }, { Id: 'y', MessageBody: 'y' }] }));
    expect([sent.Successful?.map((e) => e.Id), sent.Failed?.map((e) => [e.Id, e.Code, e.SenderFault])]).toEqual([['y'], [['x', 'InvalidParameterValue', true]]]);
    await drainQueue(stack.sqs, q, { expected: 1, timeoutMs: 10_000 });

    // A whole call fails with a 500 before it acts (no SDK retry here, so one fault is one failure).
    const once = testClients(aws.endpoint, { maxAttempts: 1 });
    aws.failRequests({ action: 'SendMessage' });
    await expect(once.sqs.send(new SendMessageCommand({ QueueUrl: q, MessageBody: 'lost' }))).rejects.toMatchObject({ name: 'InternalError', $metadata: { httpStatusCode: 500 } });
    expect(await queueDepth(stack, q)).toEqual({ visible: 0, inFlight: 0 });
    await once.sqs.send(new SendMessageCommand({ QueueUrl: q, MessageBody: 'kept' }));
    expect((await drainQueue(stack.sqs, q, { expected: 1, timeoutMs: 10_000 })).map((m) => m.Body)).toEqual(['kept']);
    aws.failRequests({ action: 'ReceiveMessage', times: 5 });
    aws.clearFaults();
    await once.sqs.send(new ReceiveMessageCommand({ QueueUrl: q, WaitTimeSeconds: 0 }));
    once.sqs.destroy();
    once.s3.destroy();
  });

  it('counts requests by action and bills each 64 KiB of payload as one more request', async () => {
    const q = stack.resultQueueUrl ?? '';
    aws.resetCounts();
    // 10 messages of 100 KiB in two SendMessageBatch calls (5 × 100 KiB = 500 KiB: 8 chunks each).
    for (const batch of [0, 1]) {
      await stack.sqs.send(
        new SendMessageBatchCommand({ QueueUrl: q, Entries: Array.from({ length: 5 }, (_, i) => ({ Id: `m${batch}${i}`, MessageBody: 'x'.repeat(100 * 1024) })) }),
      );
    }
    await stack.sqs.send(new SendMessageCommand({ QueueUrl: q, MessageBody: 'small' }));
    const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: q, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60 }));
    const messages = got.Messages ?? [];
    const bytes = messages.reduce((sum, m) => sum + Buffer.byteLength(m.Body ?? ''), 0);
    await stack.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: q, Entries: messages.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle })) }));
    // An empty receive is still one request.
    await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.jobsQueueUrl, WaitTimeSeconds: 0 }));

    expect(aws.requests).toMatchObject({ 'sqs:SendMessageBatch': 2, 'sqs:SendMessage': 1, 'sqs:ReceiveMessage': 2, 'sqs:DeleteMessageBatch': 1 });
    expect(aws.billedRequests).toEqual({
      'sqs:SendMessageBatch': 16,
      'sqs:SendMessage': 1,
      'sqs:ReceiveMessage': Math.ceil(bytes / 65_536) + 1,
      'sqs:DeleteMessageBatch': 1,
    });
    expect(messages.length).toBe(10);
  });
});
