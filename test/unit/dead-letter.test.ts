import { CreateQueueCommand, ReceiveMessageCommand, type MessageAttributeValue } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { sqsClient } from '../../src/aws/clients.ts';
import { SQS_MAX_ATTRIBUTES, SQS_MAX_MESSAGE_BYTES } from '../../src/aws/sqs-rules.ts';
import { deadLetterEntry, sqsDeadLetterSender } from '../../src/worker/dead-letter.ts';
import { binaryAttribute, sqsMessage, stringAttribute } from './helpers.ts';
// Whether an entry fills SQS's limit exactly is judged by the test endpoint's own rule, not the code's.
import { sqsMessageBytes as sqsSize, startFastAws } from '../support/fast-aws.ts';

const ERROR = { code: 'INVALID_IMAGE', message: 'images[0] is not a JPEG or PNG image' } as const;

/**
 * Bytes the error attributes take beside the body, with a message of `messageBytes`: to build
 * bodies that leave a chosen room. Whether an entry really fits is not judged here but by an
 * endpoint that enforces SQS's limits (test/integration/queues.test.ts, "dead-letter entries near
 * SQS's limits").
 */
const errorBytes = (code: string, messageBytes: number) =>
  'ErrorCode'.length + 'String'.length + code.length + 'ErrorMessage'.length + 'String'.length + messageBytes;

describe('deadLetterEntry: body and attributes', () => {
  it('keeps the body unchanged and adds ErrorCode and ErrorMessage', () => {
    // Prepare
    const message = sqsMessage({ Body: '{"version":1,"jobId":"j","userId":"ü","images":[]}' });

    // Act
    const entry = deadLetterEntry(message, ERROR);

    // Assess
    expect(entry).toEqual({
      body: message.Body,
      attributes: {
        ErrorCode: { DataType: 'String', StringValue: 'INVALID_IMAGE' },
        ErrorMessage: { DataType: 'String', StringValue: 'images[0] is not a JPEG or PNG image' },
      },
      droppedAttributes: [],
      errorOmitted: false,
    });
  });

  it('keeps String, Number and Binary attributes as SendMessage accepts them', () => {
    // Prepare
    const bytes = new Uint8Array([0, 1, 2, 255]);
    const message = sqsMessage({
      MessageAttributes: {
        traceId: stringAttribute('abc-123'),
        attempt: stringAttribute('2', 'Number'),
        signature: binaryAttribute(bytes),
        tagged: { DataType: 'String.custom', StringValue: 'x', StringListValues: [] },
      },
    });

    // Act
    const entry = deadLetterEntry(message, ERROR);

    // Assess
    expect(entry.attributes).toEqual({
      traceId: { DataType: 'String', StringValue: 'abc-123' },
      attempt: { DataType: 'Number', StringValue: '2' },
      signature: { DataType: 'Binary', BinaryValue: bytes },
      tagged: { DataType: 'String.custom', StringValue: 'x' },
      ErrorCode: { DataType: 'String', StringValue: 'INVALID_IMAGE' },
      ErrorMessage: { DataType: 'String', StringValue: ERROR.message },
    });
    expect(entry.droppedAttributes).toEqual([]);
  });

  it('treats a message without a body as an empty body', () => {
    // Act
    const entry = deadLetterEntry({ MessageId: 'm' }, ERROR);

    // Assess
    expect(entry.body).toBe('');
    expect(entry.attributes.ErrorCode?.StringValue).toBe('INVALID_IMAGE');
  });

  it('replaces ErrorCode and ErrorMessage attributes the message already had', () => {
    // Prepare
    const message = sqsMessage({
      MessageAttributes: {
        ErrorCode: stringAttribute('OLD_CODE'),
        ErrorMessage: stringAttribute('an old failure'),
        traceId: stringAttribute('t-1'),
      },
    });

    // Act
    const entry = deadLetterEntry(message, ERROR);

    // Assess
    expect(entry.attributes).toEqual({
      traceId: { DataType: 'String', StringValue: 't-1' },
      ErrorCode: { DataType: 'String', StringValue: 'INVALID_IMAGE' },
      ErrorMessage: { DataType: 'String', StringValue: ERROR.message },
    });
    expect(entry.droppedAttributes).toEqual([]);
  });

  it('with 10 original attributes keeps the first 8 by name and reports the rest', () => {
    // Prepare: names deliberately out of order.
    const names = ['k07', 'k02', 'k10', 'k05', 'k01', 'k09', 'k04', 'k08', 'k03', 'k06'];
    const message = sqsMessage({ MessageAttributes: Object.fromEntries(names.map((n) => [n, stringAttribute(`v-${n}`)])) });

    // Act
    const entry = deadLetterEntry(message, ERROR);

    // Assess
    expect(Object.keys(entry.attributes).sort()).toEqual(['ErrorCode', 'ErrorMessage', 'k01', 'k02', 'k03', 'k04', 'k05', 'k06', 'k07', 'k08']);
    expect(entry.attributes.k03).toEqual({ DataType: 'String', StringValue: 'v-k03' });
    expect(entry.droppedAttributes).toEqual(['k09', 'k10']);
    expect(Object.keys(entry.attributes)).toHaveLength(SQS_MAX_ATTRIBUTES);
  });

  it('does not count an old ErrorCode among the attributes it must drop', () => {
    // Prepare: 9 attributes of the job plus an ErrorCode from an earlier failure.
    const attributes: Record<string, MessageAttributeValue> = { ErrorCode: stringAttribute('OLD') };
    for (let i = 1; i <= 9; i += 1) attributes[`a${i}`] = stringAttribute(String(i));

    // Act
    const entry = deadLetterEntry(sqsMessage({ MessageAttributes: attributes }), ERROR);

    // Assess
    expect(entry.droppedAttributes).toEqual(['a9']);
    expect(entry.attributes.ErrorCode?.StringValue).toBe('INVALID_IMAGE');
    expect(Object.keys(entry.attributes)).toHaveLength(10);
  });
});

describe('deadLetterEntry: the 1 MiB limit', () => {
  it('leaves a small message alone', () => {
    // Act
    const entry = deadLetterEntry(sqsMessage(), ERROR);

    // Assess
    expect(entry.attributes.ErrorMessage?.StringValue).toBe(ERROR.message);
    expect(entry.errorOmitted).toBe(false);
  });

  it('truncates ErrorMessage to fit beside a near-1 MiB body', () => {
    // Prepare: room for 20 bytes of message.
    const message = sqsMessage({
      Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - errorBytes(ERROR.code, 20) - 'traceId'.length - 'String'.length - 3),
      MessageAttributes: { traceId: stringAttribute('t-1') },
    });

    // Act
    const entry = deadLetterEntry(message, ERROR);

    // Assess
    const text = entry.attributes.ErrorMessage?.StringValue ?? '';
    expect(entry.errorOmitted).toBe(false);
    expect(entry.body).toBe(message.Body);
    expect(entry.attributes.traceId).toEqual({ DataType: 'String', StringValue: 't-1' });
    expect(entry.attributes.ErrorCode?.StringValue).toBe(ERROR.code);
    // The room is used to the byte: 17 bytes of the message and the 3 of "…".
    expect(text).toBe(`${ERROR.message.slice(0, 17)}…`);
    expect(Buffer.byteLength(text)).toBe(20);
  });

  it('cuts a multi-byte message on a character boundary', () => {
    // Prepare: room for 20 bytes of a message made of 2-byte characters.
    const error = { code: 'INVALID_USER_ID', message: 'é'.repeat(100) };
    const message = sqsMessage({ Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - errorBytes(error.code, 20)) });

    // Act
    const entry = deadLetterEntry(message, error);

    // Assess
    // 17 bytes for the message hold 8 whole "é" (2 bytes each), not 8½.
    expect(entry.attributes.ErrorMessage?.StringValue).toBe(`${'é'.repeat(8)}…`);
  });

  it.each([
    [0, undefined],
    [1, undefined],
    [2, undefined],
    [3, undefined],
    [4, 'i…'],
    [5, 'im…'],
  ])('with %i bytes left for ErrorMessage, keeps ErrorCode and gives the message as %j (SQS refuses an empty value)', (room, text) => {
    // Prepare
    const message = sqsMessage({ Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - errorBytes(ERROR.code, room)) });

    // Act
    const entry = deadLetterEntry(message, ERROR);

    // Assess
    expect(entry.attributes.ErrorCode?.StringValue).toBe(ERROR.code);
    expect(entry.attributes.ErrorMessage?.StringValue).toBe(text);
    expect(entry.errorOmitted).toBe(false);
  });

  it('omits the error attributes when even ErrorCode does not fit, keeping the originals', () => {
    // Prepare
    const message = sqsMessage({
      Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - 'traceId'.length - 'String'.length - 3 - 10),
      MessageAttributes: { traceId: stringAttribute('t-1') },
    });

    // Act
    const entry = deadLetterEntry(message, ERROR);

    // Assess
    expect(entry.errorOmitted).toBe(true);
    expect(entry.body).toBe(message.Body);
    expect(entry.attributes).toEqual({ traceId: { DataType: 'String', StringValue: 't-1' } });
  });

  it('omits the error attributes beside a body of exactly 1 MiB', () => {
    // Act
    const entry = deadLetterEntry(sqsMessage({ Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES) }), ERROR);

    // Assess
    expect(entry.errorOmitted).toBe(true);
    expect(entry.attributes).toEqual({});
  });

  it('counts the body in bytes, not characters', () => {
    // Prepare: 3-byte characters, so the body is near 1 MiB in bytes but a third of that in characters.
    const body = '€'.repeat(Math.floor((SQS_MAX_MESSAGE_BYTES - errorBytes(ERROR.code, 10)) / 3));

    // Act
    const entry = deadLetterEntry(sqsMessage({ Body: body }), ERROR);

    // Assess: counted in characters, the room would seem to be about 700 KB.
    expect(entry.errorOmitted).toBe(false);
    expect(Buffer.byteLength(entry.attributes.ErrorMessage?.StringValue ?? '')).toBeLessThanOrEqual(12);
  });

  it('keeps a long ErrorMessage valid Unicode where it cuts it', () => {
    // Prepare: an emoji (a surrogate pair) straddles the 1024-character mark.
    const error = { code: 'SOURCE_NOT_ALLOWED', message: `${'a'.repeat(1023)}😀 and more` };

    // Act
    const entry = deadLetterEntry(sqsMessage(), error);

    // Assess: SQS refuses attribute values with lone surrogates.
    const text = entry.attributes.ErrorMessage?.StringValue ?? '';
    expect(text.startsWith('a'.repeat(1023))).toBe(true);
    expect(text.isWellFormed()).toBe(true);
  });
});

describe('deadLetterEntry: exact limits', () => {
  /** The bytes ErrorCode takes beside the body. */
  const codeBytes = 'ErrorCode'.length + 'String'.length + ERROR.code.length;
  /** The bytes ErrorMessage takes beside the body, besides its value. */
  const messageOverhead = 'ErrorMessage'.length + 'String'.length;

  it('keeps ErrorMessage at 1024 characters however long the error is, when there is room', () => {
    // Act
    const entry = deadLetterEntry(sqsMessage(), { code: ERROR.code, message: 'e'.repeat(2000) });

    // Assess
    expect(entry.attributes.ErrorMessage?.StringValue).toBe('e'.repeat(1024));
  });

  it('keeps ErrorCode when the body and it fill 1 MiB exactly (and has no room left for the message)', () => {
    // Act
    const entry = deadLetterEntry(sqsMessage({ Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - codeBytes) }), ERROR);

    // Assess
    expect(entry.errorOmitted).toBe(false);
    expect(entry.attributes).toEqual({ ErrorCode: { DataType: 'String', StringValue: ERROR.code } });
    expect(sqsSize(entry.body, entry.attributes)).toBe(SQS_MAX_MESSAGE_BYTES);
  });

  it('writes a message of one character and the ellipsis into 4 spare bytes', () => {
    // Act
    const entry = deadLetterEntry(sqsMessage({ Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - codeBytes - messageOverhead - 4) }), ERROR);

    // Assess
    expect(entry.attributes.ErrorMessage).toEqual({ DataType: 'String', StringValue: 'i…' });
    expect(sqsSize(entry.body, entry.attributes)).toBe(SQS_MAX_MESSAGE_BYTES);
  });

  it('leaves the message out, but not the code, with 3 spare bytes', () => {
    // Act
    const entry = deadLetterEntry(sqsMessage({ Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - codeBytes - messageOverhead - 3) }), ERROR);

    // Assess
    expect(entry.errorOmitted).toBe(false);
    expect(Object.keys(entry.attributes)).toEqual(['ErrorCode']);
  });

  it('counts a Binary attribute by its bytes', () => {
    // Prepare: the body leaves room for ErrorCode only if the binary value is not counted.
    const binary = binaryAttribute(new Uint8Array(100));
    const attributeBytes = 'blob'.length + 'Binary'.length + 100;
    const message = sqsMessage({ Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - attributeBytes - codeBytes + 1), MessageAttributes: { blob: binary } });

    // Act
    const entry = deadLetterEntry(message, ERROR);

    // Assess
    expect(entry.errorOmitted).toBe(true);
    expect(entry.attributes).toEqual({ blob: { DataType: 'Binary', BinaryValue: new Uint8Array(100) } });
  });

  it('takes an attribute that carries no value at all as its name and type', () => {
    // Act
    const entry = deadLetterEntry(sqsMessage({ MessageAttributes: { empty: { DataType: 'String' } } }), ERROR);

    // Assess
    expect(entry.attributes.empty).toEqual({ DataType: 'String', StringValue: undefined });
    expect(entry.attributes.ErrorCode?.StringValue).toBe(ERROR.code);
  });

  it('keeps a U+FFFD the error itself contains where it cuts the message', () => {
    // Prepare: room for 20 bytes of message; the replacement character is the error's own text.
    const error = { code: ERROR.code, message: `x\uFFFDy${'z'.repeat(100)}` };
    const body = 'x'.repeat(SQS_MAX_MESSAGE_BYTES - codeBytes - messageOverhead - 20);

    // Act
    const entry = deadLetterEntry(sqsMessage({ Body: body }), error);

    // Assess: 17 bytes of the message (1 + 3 + 1 + 12) and the 3-byte ellipsis.
    expect(entry.attributes.ErrorMessage?.StringValue).toBe(`x\uFFFDy${'z'.repeat(12)}…`);
  });
});

describe('deadLetterEntry: where the message is cut', () => {
  const codeBytes = 'ErrorCode'.length + 'String'.length + ERROR.code.length;
  const messageOverhead = 'ErrorMessage'.length + 'String'.length;

  it('keeps 1024 characters of a long message that has a surrogate pair early on', () => {
    // Prepare: the pair is well inside the cut; only a pair split by the cut is dropped.
    const message = `😀${'m'.repeat(2000)}`;

    // Act
    const entry = deadLetterEntry(sqsMessage(), { code: ERROR.code, message });

    // Assess
    expect(entry.attributes.ErrorMessage?.StringValue).toBe(message.slice(0, 1024));
  });

  it.each([
    { where: 'just before the cut', spare: 8, message: `ab\uFFFDcdefghijkl`, kept: 'ab\uFFFD…' },
    { where: 'before a character the cut goes through', spare: 10, message: `ab\uFFFD😀😀😀😀`, kept: 'ab\uFFFD…' },
  ])("keeps a U+FFFD of the error's own $where", ({ spare, message, kept }) => {
    // Prepare: `spare` bytes of room for the message (3 of them for the ellipsis).
    const body = 'x'.repeat(SQS_MAX_MESSAGE_BYTES - codeBytes - messageOverhead - spare);

    // Act
    const entry = deadLetterEntry(sqsMessage({ Body: body }), { code: ERROR.code, message });

    // Assess
    expect(entry.attributes.ErrorMessage?.StringValue).toBe(kept);
  });

  it('keeps a message whole when it fills the spare bytes exactly', () => {
    // Prepare
    const body = 'x'.repeat(SQS_MAX_MESSAGE_BYTES - codeBytes - messageOverhead - Buffer.byteLength(ERROR.message));

    // Act
    const entry = deadLetterEntry(sqsMessage({ Body: body }), ERROR);

    // Assess
    expect(entry.attributes.ErrorMessage?.StringValue).toBe(ERROR.message);
    expect(sqsSize(entry.body, entry.attributes)).toBe(SQS_MAX_MESSAGE_BYTES);
  });
});

describe("deadLetterEntry: the job's trace", () => {
  const TRACE = { traceparent: stringAttribute('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01') };

  it("replaces the producer's traceparent with the job's", () => {
    // Prepare
    const message = sqsMessage({ MessageAttributes: { traceparent: stringAttribute('00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01'), Custom: stringAttribute('x') } });

    // Act
    const entry = deadLetterEntry(message, ERROR, TRACE);

    // Assess
    expect(Object.keys(entry.attributes).sort()).toEqual(['Custom', 'ErrorCode', 'ErrorMessage', 'traceparent']);
    expect(entry.attributes.traceparent).toEqual(TRACE.traceparent);
    expect(entry.droppedAttributes).toEqual([]);
  });

  it('takes a slot only when one is free: an original attribute is never dropped for it', () => {
    // Prepare: eight attributes of the producer's own, none of them a trace.
    const own = Object.fromEntries(Array.from({ length: SQS_MAX_ATTRIBUTES - 2 }, (_, i) => [`a${i}`, stringAttribute('v')]));
    const seven = Object.fromEntries(Object.entries(own).slice(1));

    // Act
    const full = deadLetterEntry(sqsMessage({ MessageAttributes: own }), ERROR, TRACE);
    const room = deadLetterEntry(sqsMessage({ MessageAttributes: seven }), ERROR, TRACE);

    // Assess
    expect(Object.keys(full.attributes)).not.toContain('traceparent');
    expect(full.droppedAttributes).toEqual([]);
    expect(Object.keys(full.attributes)).toHaveLength(SQS_MAX_ATTRIBUTES);
    expect(room.attributes.traceparent).toEqual(TRACE.traceparent);
    expect(Object.keys(room.attributes)).toHaveLength(SQS_MAX_ATTRIBUTES);
  });

  it('is left out before ErrorCode when the body leaves no room for both', () => {
    // Prepare: room for the code, not for the code and the traceparent.
    const traceBytes = 'traceparent'.length + 'String'.length + (TRACE.traceparent.StringValue ?? '').length;
    const codeBytes = 'ErrorCode'.length + 'String'.length + ERROR.code.length;
    const message = sqsMessage({ Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - codeBytes - traceBytes + 1) });

    // Act
    const entry = deadLetterEntry(message, ERROR, TRACE);

    // Assess: the code stays (and what is left goes to a shortened ErrorMessage).
    expect(entry.attributes).not.toHaveProperty('traceparent');
    expect(entry.attributes.ErrorCode).toEqual(stringAttribute(ERROR.code));
    expect(entry.errorOmitted).toBe(false);
  });

  it('keeps it beside ErrorCode when the two fill 1 MiB exactly (with no room left for the message)', () => {
    // Prepare: the body, the traceparent and the code are exactly SQS's limit.
    const traceBytes = 'traceparent'.length + 'String'.length + (TRACE.traceparent.StringValue ?? '').length;
    const codeBytes = 'ErrorCode'.length + 'String'.length + ERROR.code.length;
    const message = sqsMessage({ Body: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - codeBytes - traceBytes) });

    // Act
    const entry = deadLetterEntry(message, ERROR, TRACE);

    // Assess
    expect(entry.attributes).toEqual({ traceparent: TRACE.traceparent, ErrorCode: stringAttribute(ERROR.code) });
    expect(entry.errorOmitted).toBe(false);
    expect(sqsSize(entry.body, entry.attributes)).toBe(SQS_MAX_MESSAGE_BYTES);
  });

  it('keeps the original trace attributes when the job has no trace of its own', () => {
    const message = sqsMessage({ MessageAttributes: { traceparent: stringAttribute('not-even-malformed-enough') } });
    expect(deadLetterEntry(message, ERROR).attributes.traceparent).toEqual(stringAttribute('not-even-malformed-enough'));
  });
});

describe('sqsDeadLetterSender', () => {
  it('sends the entry as it is: its body, and its attributes when it has any', async () => {
    // Prepare: the in-process endpoint, and the worker's own SQS client.
    const aws = await startFastAws({ delayMs: 0 });
    const sqs = sqsClient({ region: 'us-east-1', endpoint: aws.endpoint }, async () => ({ accessKeyId: 'test', secretAccessKey: 'test' }));
    try {
      const { QueueUrl = '' } = await sqs.send(new CreateQueueCommand({ QueueName: 'dead-letters' }));
      const send = sqsDeadLetterSender(sqs, QueueUrl);

      // Act
      await send(deadLetterEntry(sqsMessage({ Body: 'first', MessageAttributes: { Custom: stringAttribute('x') } }), ERROR));
      await send({ body: 'second', attributes: {}, droppedAttributes: [], errorOmitted: true });
      const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ['All'] }));

      // Assess
      expect(Messages.map((m) => [m.Body, Object.keys(m.MessageAttributes ?? {}).sort()])).toEqual([
        ['first', ['Custom', 'ErrorCode', 'ErrorMessage']],
        ['second', []],
      ]);
      expect(Messages[0]?.MessageAttributes?.ErrorCode?.StringValue).toBe(ERROR.code);
    } finally {
      sqs.destroy();
      await aws.stop();
    }
  });
});
