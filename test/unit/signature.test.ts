import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildSignedJob } from '../../src/producer/enqueue.ts';
import { signJob, signingKeysFrom, verifyJobSignature } from '../../src/job/signature.ts';
import { stringAttribute } from './helpers.ts';

// The README's worked example: any producer, in any language, must get exactly this.
const VECTOR_BODY =
  '{"version":1,"jobId":"signup-7f3a9c","userId":"alice@example.com","images":[{"s3":{"bucket":"face-auth-staging","key":"uploads/signup-7f3a9c/1.jpg"}}]}';
const VECTOR_KEY = 'example-key-do-not-use-0123456789abcdef';
const VECTOR_SIGNATURE = 'v1=02da6cab1aa0353b1afe97d75e78c9e9b514df2b24270aa6e17124570f4ecb1c';

const CURRENT = 'current-key-0123456789abcdef0123456789abcdef';
const PREVIOUS = 'previous-key-0123456789abcdef0123456789abcdef';
const KEYS = signingKeysFrom(CURRENT, PREVIOUS);

describe('signJob', () => {
  it('gives the README test vector exactly', () => {
    // Act
    const signature = signJob(VECTOR_BODY, VECTOR_KEY);

    // Assess
    expect(VECTOR_BODY).toHaveLength(151);
    expect(signature).toBe(VECTOR_SIGNATURE);
  });

  it('signs the UTF-8 bytes of the body, with the UTF-8 bytes of a string key', () => {
    // Prepare
    const body = '{"version":1,"note":"café – 顔"}';
    const expected = createHmac('sha256', Buffer.from(CURRENT, 'utf8')).update(Buffer.from(body, 'utf8')).digest('hex');

    // Act
    const fromString = signJob(body, CURRENT);
    const fromBuffer = signJob(body, Buffer.from(CURRENT, 'utf8'));

    // Assess
    expect(fromString).toBe(`v1=${expected}`);
    expect(fromBuffer).toBe(fromString);
  });

  it('changes with any change of the body, even whitespace', () => {
    // Assess
    expect(signJob(`${VECTOR_BODY} `, VECTOR_KEY)).not.toBe(VECTOR_SIGNATURE);
    expect(signJob(VECTOR_BODY.replace('alice', 'Alice'), VECTOR_KEY)).not.toBe(VECTOR_SIGNATURE);
  });
});

describe('verifyJobSignature', () => {
  const attributes = (value: string) => ({ Signature: stringAttribute(value) });

  it('accepts the current key and says so', () => {
    // Act
    const result = verifyJobSignature(VECTOR_BODY, attributes(signJob(VECTOR_BODY, CURRENT)), KEYS);

    // Assess
    expect(result).toEqual({ ok: true, key: 'current' });
  });

  it('accepts the previous key during a rotation and says so', () => {
    // Act
    const result = verifyJobSignature(VECTOR_BODY, attributes(signJob(VECTOR_BODY, PREVIOUS)), KEYS);

    // Assess
    expect(result).toEqual({ ok: true, key: 'previous' });
  });

  it('refuses the previous key once the rotation is over', () => {
    // Act
    const result = verifyJobSignature(VECTOR_BODY, attributes(signJob(VECTOR_BODY, PREVIOUS)), signingKeysFrom(CURRENT, undefined));

    // Assess
    expect(result).toMatchObject({ ok: false, error: { code: 'INVALID_SIGNATURE' } });
  });

  it('accepts upper-case hex', () => {
    // Act
    const result = verifyJobSignature(VECTOR_BODY, attributes(`v1=${VECTOR_SIGNATURE.slice(3).toUpperCase()}`), signingKeysFrom(VECTOR_KEY, undefined));

    // Assess
    expect(result).toEqual({ ok: true, key: 'current' });
  });

  it('accepts anything, unchecked, when no key is configured', () => {
    // Act
    const result = verifyJobSignature(VECTOR_BODY, undefined, signingKeysFrom(undefined, undefined));

    // Assess
    expect(result).toEqual({ ok: true, key: 'unchecked' });
  });

  it.each([
    ['no attributes at all', undefined, 'the message has no Signature attribute (jobs must be signed)'],
    ['another attribute only', { signature: stringAttribute(signJob(VECTOR_BODY, CURRENT)) }, 'the message has no Signature attribute (jobs must be signed)'],
    ['a wrong key', attributes(signJob(VECTOR_BODY, 'another-key-0123456789abcdef0123456789abcdef')), 'the Signature does not match the message body under any accepted key'],
    ['no version prefix', attributes(signJob(VECTOR_BODY, CURRENT).slice(3)), 'the Signature attribute must be a String of the form v1=<64 hex digits>'],
    ['another version', attributes(signJob(VECTOR_BODY, CURRENT).replace('v1=', 'v2=')), 'the Signature attribute must be a String of the form v1=<64 hex digits>'],
    ['a short digest', attributes(signJob(VECTOR_BODY, CURRENT).slice(0, -2)), 'the Signature attribute must be a String of the form v1=<64 hex digits>'],
    ['a non-hex digest', attributes(`v1=${'g'.repeat(64)}`), 'the Signature attribute must be a String of the form v1=<64 hex digits>'],
    ['a Binary attribute', { Signature: { DataType: 'Binary' } }, 'the Signature attribute must be a String of the form v1=<64 hex digits>'],
    ['an empty value', attributes(''), 'the Signature attribute must be a String of the form v1=<64 hex digits>'],
  ])('refuses %s as INVALID_SIGNATURE', (_name, attrs, message) => {
    // Act
    const result = verifyJobSignature(VECTOR_BODY, attrs, KEYS);

    // Assess
    expect(result).toMatchObject({ ok: false, error: { name: 'JobError', code: 'INVALID_SIGNATURE', message } });
  });

  it('never says anything of the keys in its messages', () => {
    // Act
    const result = verifyJobSignature(VECTOR_BODY, attributes(signJob(VECTOR_BODY, 'x'.repeat(40))), KEYS);

    // Assess
    expect(JSON.stringify(result)).not.toContain(CURRENT);
    expect(result.ok ? '' : result.error.message).not.toContain(CURRENT);
  });
});

describe('signingKeysFrom', () => {
  it('serialises without the key bytes', () => {
    // Act
    const text = JSON.stringify({ keys: KEYS });

    // Assess
    expect(text).toBe('{"keys":{"current":"<set>","previous":"<set>"}}');
  });
});

describe('buildSignedJob', () => {
  it('signs exactly the body it returns, in the Signature attribute', () => {
    // Act
    const signed = buildSignedJob({ jobId: 'j-1', userId: 'alice', images: [{ bucket: 'staging', key: 'in/1' }] }, CURRENT);

    // Assess
    expect(JSON.parse(signed.body)).toEqual(signed.job);
    expect(signed.messageAttributes).toEqual({ Signature: { DataType: 'String', StringValue: signJob(signed.body, CURRENT) } });
    expect(verifyJobSignature(signed.body, signed.messageAttributes, KEYS)).toEqual({ ok: true, key: 'current' });
  });

  it('adds no attribute without a key', () => {
    // Act
    const signed = buildSignedJob({ userId: 'alice', images: [Buffer.from('x')] }, undefined);

    // Assess
    expect(signed.messageAttributes).toEqual({});
  });
});
