// What the worker reads about a queue (src/aws/queues.ts): the redrive policy's JSON, and the
// attributes as the real SQS client gets them from a loopback server that answers GetQueueAttributes
// as SQS does (only the attributes asked for).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sqsClient } from '../../src/aws/clients.ts';
import { parseRedrivePolicy, queueAttributes } from '../../src/aws/queues.ts';
import { reply, startLoopbackHttp, type LoopbackHttp } from '../support/loopback-http.ts';

const DLQ_ARN = 'arn:aws:sqs:eu-west-3:123456789012:enrollment-dlq';

describe('parseRedrivePolicy', () => {
  it('reads the dead-letter queue and the receive count', () => {
    expect(parseRedrivePolicy(JSON.stringify({ deadLetterTargetArn: DLQ_ARN, maxReceiveCount: '5' }))).toEqual({
      deadLetterQueue: { account: '123456789012', name: 'enrollment-dlq' },
      maxReceiveCount: 5,
    });
  });

  it.each([
    ['a target that is not an ARN', { deadLetterTargetArn: 'enrollment-dlq', maxReceiveCount: 5 }, { deadLetterQueue: undefined, maxReceiveCount: 5 }],
    ['a target that is not a string', { deadLetterTargetArn: 7, maxReceiveCount: 5 }, { deadLetterQueue: undefined, maxReceiveCount: 5 }],
    ['a count of 0', { deadLetterTargetArn: DLQ_ARN, maxReceiveCount: 0 }, { deadLetterQueue: { account: '123456789012', name: 'enrollment-dlq' }, maxReceiveCount: undefined }],
    ['a count that is not whole', { maxReceiveCount: 2.5 }, { deadLetterQueue: undefined, maxReceiveCount: undefined }],
    ['nothing in it', {}, { deadLetterQueue: undefined, maxReceiveCount: undefined }],
  ])('leaves out what it cannot read: %s', (_, policy, read) => {
    expect(parseRedrivePolicy(JSON.stringify(policy))).toEqual(read);
  });

  it.each([
    ['not JSON', '{deadLetterTargetArn:'],
    ['JSON null', 'null'],
    ['a JSON number', '5'],
    ['a JSON string', '"arn:aws:sqs:eu-west-3:123456789012:enrollment-dlq"'],
  ])('is undefined for %s', (_, text) => {
    expect(parseRedrivePolicy(text)).toBeUndefined();
  });
});

describe('queueAttributes', () => {
  let server: LoopbackHttp;
  let attributes: Record<string, string>;
  beforeEach(async () => {
    attributes = {};
    server = await startLoopbackHttp((request, res) => {
      const asked = (JSON.parse(request.body.toString()) as { AttributeNames?: string[] }).AttributeNames ?? [];
      const answered = Object.fromEntries(Object.entries(attributes).filter(([name]) => asked.includes(name) || asked.includes('All')));
      reply(res, 200, { 'content-type': 'application/x-amz-json-1.0' }, JSON.stringify({ Attributes: answered }));
    });
  });
  afterEach(async () => {
    await server.close();
  });
  const read = async () => {
    const sqs = sqsClient({ region: 'eu-west-3', endpoint: server.endpoint }, async () => ({ accessKeyId: 'test', secretAccessKey: 'test' }));
    try {
      return await queueAttributes(sqs, `${server.endpoint}/123456789012/enrollment-jobs`);
    } finally {
      sqs.destroy();
    }
  };

  it("reads the queue's ARN, visibility timeout and redrive policy", async () => {
    // Prepare
    attributes = {
      QueueArn: 'arn:aws:sqs:eu-west-3:123456789012:enrollment-jobs',
      VisibilityTimeout: '120',
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: DLQ_ARN, maxReceiveCount: 5 }),
      DelaySeconds: '0',
    };

    // Act
    const queue = await read();

    // Assess
    expect(queue).toEqual({
      arn: 'arn:aws:sqs:eu-west-3:123456789012:enrollment-jobs',
      visibilityTimeoutSeconds: 120,
      redrive: { deadLetterQueue: { account: '123456789012', name: 'enrollment-dlq' }, maxReceiveCount: 5 },
      redriveMalformed: false,
    });
    expect(JSON.parse(server.requests[0]?.body.toString() ?? '{}')).toMatchObject({ QueueUrl: `${server.endpoint}/123456789012/enrollment-jobs` });
  });

  it('says what is missing as undefined, and a queue without a redrive policy is not malformed', async () => {
    // Act
    const queue = await read();

    // Assess
    expect(queue).toEqual({ arn: undefined, visibilityTimeoutSeconds: undefined, redrive: undefined, redriveMalformed: false });
  });

  it('takes a visibility timeout that is not a number as unknown, and tells a malformed redrive policy apart', async () => {
    // Prepare
    attributes = { VisibilityTimeout: 'thirty', RedrivePolicy: '{not json' };

    // Act
    const queue = await read();

    // Assess
    expect(queue).toMatchObject({ visibilityTimeoutSeconds: undefined, redrive: undefined, redriveMalformed: true });
  });

  it('reads a visibility timeout of 0 as 0', async () => {
    // Prepare
    attributes = { VisibilityTimeout: '0' };

    // Act
    const queue = await read();

    // Assess
    expect(queue.visibilityTimeoutSeconds).toBe(0);
  });
});
