// The SQS batch calls (src/aws/sqs-batches.ts) read on the wire: a real SQS client whose request
// handler records the JSON request it would send and answers as SQS does, entry by entry. An entry
// SQS lists in `Failed` must fail by itself, never be taken as done (a refused dead-letter entry taken
// as sent would let the job's message be deleted). The integration suite proves the same end to end
// (test/integration/partial-batches.test.ts).
import { Readable } from 'node:stream';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { HttpRequest, HttpResponse, RequestHandler } from '@aws-sdk/types';
import { describe, expect, it } from 'vitest';
import { BatchEntryError, deleteBatcher, messageBytes, sendBatcher, visibilityBatcher } from '../../src/aws/sqs-batches.ts';
import { transientReason } from '../../src/job/errors.ts';

const QUEUE = 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs';
const TIMING = { flushAfterMs: 1 };

interface Call {
  readonly target: string;
  readonly input: { QueueUrl?: string; Entries?: Record<string, unknown>[] };
}

/** A real SQSClient that sends nothing: each call is recorded and answered by `answer` (status, JSON body). */
function wireSqs(answer: (call: Call) => { status: number; body: Record<string, unknown> }) {
  const calls: Call[] = [];
  const handler: RequestHandler<HttpRequest, HttpResponse> = {
    handle: async (request) => {
      const sent: unknown = request.body;
      const text = typeof sent === 'string' ? sent : new TextDecoder().decode(sent as Uint8Array);
      const call = { target: String(request.headers['x-amz-target']), input: JSON.parse(text) as Call['input'] };
      calls.push(call);
      const { status, body } = answer(call);
      const headers = { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'test' };
      return { response: { statusCode: status, headers, body: Readable.from([Buffer.from(JSON.stringify(body))]) } };
    },
  };
  // md5: false, as the worker's client (src/aws/clients.ts): these answers carry no real MD5s.
  const client = new SQSClient({ region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, maxAttempts: 1, md5: false, requestHandler: handler });
  return { client, calls };
}

/** Every entry succeeds but those whose Id is in `failed` (with SQS's code and fault). */
const answerFailing =
  (failed: Record<string, { Code: string; SenderFault: boolean }>) =>
  (call: Call): { status: number; body: Record<string, unknown> } => {
    const entries = call.input.Entries ?? [];
    return {
      status: 200,
      body: {
        Successful: entries.filter((e) => !(String(e.Id) in failed)).map((e) => ({ Id: e.Id, MessageId: `sent-${String(e.Id)}`, MD5OfMessageBody: 'x' })),
        Failed: entries.filter((e) => String(e.Id) in failed).map((e) => ({ Id: e.Id, Message: 'refused by the test', ...failed[String(e.Id)] })),
      },
    };
  };

/** Each promise's result or its error, once all have settled. */
const outcomesOf = <T>(promises: Promise<T>[]) => Promise.allSettled(promises);

describe('deleteBatcher', () => {
  it('deletes in one call, by receipt handle, and fails only the entry SQS refused, with its code and fault', async () => {
    // Prepare
    const sqs = wireSqs(answerFailing({ '1': { Code: 'InternalError', SenderFault: false } }));
    const deletes = deleteBatcher(sqs.client, QUEUE, TIMING);

    // Act
    const results = outcomesOf(['r-a', 'r-b', 'r-c'].map((r) => deletes.add(r)));
    await deletes.flush();
    const [a, b, c] = await results;

    // Assess
    expect(sqs.calls).toEqual([
      {
        target: 'AmazonSQS.DeleteMessageBatch',
        input: { QueueUrl: QUEUE, Entries: [{ Id: '0', ReceiptHandle: 'r-a' }, { Id: '1', ReceiptHandle: 'r-b' }, { Id: '2', ReceiptHandle: 'r-c' }] },
      },
    ]);
    expect([a?.status, c?.status]).toEqual(['fulfilled', 'fulfilled']);
    expect(b?.status).toBe('rejected');
    const error = (b as PromiseRejectedResult).reason as BatchEntryError;
    expect(error).toBeInstanceOf(BatchEntryError);
    expect([error.name, error.message, error.senderFault, error.$fault]).toEqual(['InternalError', 'refused by the test', false, 'server']);
    expect(transientReason(error)).toBe('server');
  });

  it('fails every entry when the whole call fails', async () => {
    // Prepare
    const sqs = wireSqs(() => ({ status: 500, body: { __type: 'com.amazonaws.sqs#InternalError', message: 'down' } }));
    const deletes = deleteBatcher(sqs.client, QUEUE, TIMING);

    // Act
    const results = outcomesOf(['r-a', 'r-b'].map((r) => deletes.add(r)));
    await deletes.flush();

    // Assess
    expect((await results).map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});

describe('visibilityBatcher', () => {
  it('changes each entry\'s visibility by its own seconds, and fails only the refused entry (a sender fault)', async () => {
    // Prepare
    const sqs = wireSqs(answerFailing({ '0': { Code: 'ReceiptHandleIsInvalid', SenderFault: true } }));
    const visibility = visibilityBatcher(sqs.client, QUEUE, TIMING);

    // Act
    const results = outcomesOf([visibility.add({ receiptHandle: 'r-a', seconds: 0 }), visibility.add({ receiptHandle: 'r-b', seconds: 60 })]);
    await visibility.flush();
    const [a, b] = await results;

    // Assess
    expect(sqs.calls).toEqual([
      {
        target: 'AmazonSQS.ChangeMessageVisibilityBatch',
        input: { QueueUrl: QUEUE, Entries: [{ Id: '0', ReceiptHandle: 'r-a', VisibilityTimeout: 0 }, { Id: '1', ReceiptHandle: 'r-b', VisibilityTimeout: 60 }] },
      },
    ]);
    expect(b?.status).toBe('fulfilled');
    const error = (a as PromiseRejectedResult).reason as BatchEntryError;
    expect([error.name, error.senderFault, error.$fault]).toEqual(['ReceiptHandleIsInvalid', true, 'client']);
  });
});

describe('sendBatcher', () => {
  it('sends bodies and attributes (none when there are none), resolves each with its message id, and fails the refused one', async () => {
    // Prepare
    const sqs = wireSqs(answerFailing({ '1': { Code: 'InternalError', SenderFault: false } }));
    const sends = sendBatcher(sqs.client, QUEUE, TIMING);
    const attributes = { ErrorCode: { DataType: 'String', StringValue: 'INVALID_IMAGE' } };

    // Act
    const results = outcomesOf([sends.add({ body: 'outcome', attributes: {} }), sends.add({ body: 'dead letter', attributes }), sends.add({ body: 'third', attributes })]);
    await sends.flush();
    const [a, b, c] = await results;

    // Assess
    expect(sqs.calls.map((call) => [call.target, call.input.Entries])).toEqual([
      [
        'AmazonSQS.SendMessageBatch',
        [
          { Id: '0', MessageBody: 'outcome' },
          { Id: '1', MessageBody: 'dead letter', MessageAttributes: attributes },
          { Id: '2', MessageBody: 'third', MessageAttributes: attributes },
        ],
      ],
    ]);
    expect([a, c]).toEqual([
      { status: 'fulfilled', value: 'sent-0' },
      { status: 'fulfilled', value: 'sent-2' },
    ]);
    expect((b as PromiseRejectedResult).reason).toMatchObject({ name: 'InternalError', $fault: 'server' });
  });

  it('starts a new call before a message would take the batch over 1 MiB', async () => {
    // Prepare
    const sqs = wireSqs(answerFailing({}));
    const sends = sendBatcher(sqs.client, QUEUE, TIMING);
    const big = 'x'.repeat(600_000);

    // Act
    const results = outcomesOf([sends.add({ body: big, attributes: {} }), sends.add({ body: big, attributes: {} })]);
    await sends.flush();

    // Assess
    expect((await results).map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(sqs.calls.map((call) => call.input.Entries?.length)).toEqual([1, 1]);
  });
});

describe('messageBytes', () => {
  it('counts the body and each attribute\'s name, type and value, as SQS does', () => {
    // Act
    const bytes = messageBytes({
      body: 'héllo',
      attributes: { code: { DataType: 'String', StringValue: 'ABC' }, blob: { DataType: 'Binary', BinaryValue: new Uint8Array(4) }, none: { DataType: 'String' } },
    });

    // Assess: 6 + (4 + 6 + 3) + (4 + 6 + 4) + (4 + 6 + 0)
    expect(bytes).toBe(6 + 13 + 14 + 10);
  });

  it('counts an attribute without a type by its name and value', () => {
    expect(messageBytes({ body: '', attributes: { code: { DataType: undefined, StringValue: 'ABC' } } })).toBe(4 + 3);
  });
});

describe('BatchEntryError', () => {
  it("takes SQS's message and code, and says what it can when SQS gives neither", () => {
    // Act
    const full = new BatchEntryError({ Id: '0', Code: 'InternalError', Message: 'try again', SenderFault: false });
    const codeOnly = new BatchEntryError({ Id: '0', Code: 'InternalError', SenderFault: false });
    const bare = new BatchEntryError({ Id: '0', SenderFault: undefined, Code: undefined });

    // Assess
    expect([full.name, full.message]).toEqual(['InternalError', 'try again']);
    expect([codeOnly.name, codeOnly.message]).toEqual(['InternalError', 'the entry failed: InternalError']);
    expect([bare.name, bare.message, bare.senderFault, bare.$fault]).toEqual(['BatchEntryError', 'the entry failed: unknown error', false, 'server']);
  });
});
