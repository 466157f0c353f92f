// What SQS accepts (src/aws/sqs-rules.ts): its character rule, escaping job text into it, and
// when two queue URLs name one queue.
import { describe, expect, it } from 'vitest';
import { isSqsText, queueIdentity, sameQueue, sqsJson, sqsText } from '../../src/aws/sqs-rules.ts';

describe('isSqsText', () => {
  it.each([
    ['tab, newline, carriage return', '\t\n\r'],
    ['the edges of the allowed ranges', '\u0020\uD7FF\uE000\uFFFD'],
    ['a whole surrogate pair (U+10000, U+10FFFF)', '\u{10000}\u{10FFFF}😀'],
    ['the empty string', ''],
  ])('accepts %s', (_, text) => {
    expect(isSqsText(text)).toBe(true);
  });

  it.each([
    ['NUL', '\u0000'],
    ['U+0001', 'a\u0001b'],
    ['U+001F', '\u001f'],
    ['U+FFFE', '\uFFFE'],
    ['U+FFFF', '\uFFFF'],
    ['a lone high surrogate', 'a\uD800'],
    ['a lone low surrogate', '\uDC00a'],
  ])('refuses %s', (_, text) => {
    expect(isSqsText(text)).toBe(false);
  });

  it('gives the same answer on repeated calls (no state left in the expression)', () => {
    expect([isSqsText('\u0001'), isSqsText('\u0001'), isSqsText('ok'), isSqsText('ok')]).toEqual([false, false, true, true]);
  });
});

describe('sqsText', () => {
  it('writes every refused character as \\uXXXX and leaves the rest alone', () => {
    expect(sqsText('bucket "st\u0001ag\uFFFFing" \uD800 é 😀\t')).toBe('bucket "st\\u0001ag\\uffffing" \\ud800 é 😀\t');
  });

  it('always gives text SQS accepts', () => {
    const every = Array.from({ length: 0x110 }, (_, i) => String.fromCharCode(i)).join('') + '\uD800\uDBFF\uDC00\uFFFE\uFFFF';
    expect(isSqsText(sqsText(every))).toBe(true);
  });
});

describe('sqsJson', () => {
  it('escapes U+FFFE and U+FFFF, which JSON.stringify leaves raw, and parses back to the same value', () => {
    const value = { message: 'a\uFFFEb\uFFFFc\u0001\uD800' };
    const text = sqsJson(value);
    expect(text).toBe('{"message":"a\\ufffeb\\uffffc\\u0001\\ud800"}');
    expect(isSqsText(text)).toBe(true);
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe('queueIdentity', () => {
  it.each([
    ['https://sqs.eu-west-1.amazonaws.com/123456789012/jobs', { account: '123456789012', name: 'jobs', region: 'eu-west-1' }],
    ['https://queue.amazonaws.com/123456789012/jobs', { account: '123456789012', name: 'jobs', region: 'us-east-1' }],
    ['https://eu-west-1.queue.amazonaws.com/123456789012/jobs', { account: '123456789012', name: 'jobs', region: 'eu-west-1' }],
    ['https://sqs.cn-north-1.amazonaws.com.cn/123456789012/jobs', { account: '123456789012', name: 'jobs', region: 'cn-north-1' }],
    ['http://localhost:4566/000000000000/jobs/', { account: '000000000000', name: 'jobs', region: undefined }],
    ['http://localhost:4566/queue/us-east-1/000000000000/jobs', { account: '000000000000', name: 'jobs', region: undefined }],
    ['https://SQS.EU-WEST-1.amazonaws.com./123456789012/jobs', { account: '123456789012', name: 'jobs', region: 'eu-west-1' }],
  ])('reads %s', (url, identity) => {
    expect(queueIdentity(url)).toEqual(identity);
  });

  it('has none for a URL without account and name', () => {
    expect(queueIdentity('https://sqs.us-east-1.amazonaws.com/jobs')).toBeUndefined();
    expect(queueIdentity('not a url')).toBeUndefined();
  });
});

describe('sameQueue', () => {
  it('errs towards "same" when one URL names no region', () => {
    expect(sameQueue('https://sqs.us-east-1.amazonaws.com/1/jobs', 'http://localhost:4566/1/jobs')).toBe(true);
  });

  it('errs towards "same" whichever of the two URLs names no region', () => {
    expect(sameQueue('http://localhost:4566/1/jobs', 'https://sqs.us-east-1.amazonaws.com/1/jobs')).toBe(true);
  });

  it('tells queues of other accounts or names apart', () => {
    expect(sameQueue('https://sqs.us-east-1.amazonaws.com/1/jobs', 'https://sqs.us-east-1.amazonaws.com/2/jobs')).toBe(false);
    expect(sameQueue('https://sqs.us-east-1.amazonaws.com/1/jobs', 'https://sqs.us-east-1.amazonaws.com/1/Jobs')).toBe(false);
  });

  it('compares what is not a queue URL as text, spaces around it aside', () => {
    expect(sameQueue('jobs', ' jobs ')).toBe(true);
    expect(sameQueue(' jobs\n', 'jobs')).toBe(true);
    expect(sameQueue('jobs', 'results')).toBe(false);
    expect(sameQueue('jobs', 'https://sqs.us-east-1.amazonaws.com/1/jobs')).toBe(false);
    expect(sameQueue('https://sqs.us-east-1.amazonaws.com/1/jobs', 'jobs')).toBe(false);
  });

  it('tells queues of different regions apart', () => {
    expect(sameQueue('https://sqs.us-east-1.amazonaws.com/1/jobs', 'https://sqs.us-west-2.amazonaws.com/1/jobs')).toBe(false);
  });
});
