import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildSignedJob } from '../../src/producer/enqueue.ts';
import { parseJob } from '../../src/job/contract.ts';
import { fingerprintsOf, keyFingerprint, signJob, signingKeysFrom, verifyJobSignature } from '../../src/job/signature.ts';
import { stringAttribute } from './helpers.ts';

// The worked example of docs/producers.md "Signed jobs": any producer, in any language, must get exactly this.
const VECTOR_BODY =
  '{"version":1,"jobId":"signup-7f3a9c","userId":"alice@example.com","issuedAt":1796040000,"images":[{"s3":{"bucket":"face-auth-staging","key":"uploads/signup-7f3a9c/1.jpg","sha256":"6763ec4a2e1b845c8c9e2b06a7c40a3f1e016013fc1ccbb4bd75cd43bc84af9e"}}]}';
const VECTOR_KEY = 'example-key-do-not-use-0123456789abcdef';
const VECTOR_SIGNATURE = 'v1=19d51c38aa03678418f3d0814c1ea7493e68357e53906e2a315ef0117f5149d8';

const CURRENT = 'current-key-0123456789abcdef0123456789abcdef';
const PREVIOUS = 'previous-key-0123456789abcdef0123456789abcdef';
const KEYS = signingKeysFrom(CURRENT, PREVIOUS);

describe('signJob', () => {
  it('the test vector is the one docs/producers.md shows', () => {
    const doc = readFileSync(new URL('../../docs/producers.md', import.meta.url), 'utf8');
    for (const part of [VECTOR_BODY, VECTOR_KEY, VECTOR_SIGNATURE, `the ${VECTOR_BODY.length}-byte body`]) expect(doc).toContain(part);
  });

  it('gives the documented test vector exactly', () => {
    // Act
    const signature = signJob(VECTOR_BODY, VECTOR_KEY);

    // Assess
    expect(VECTOR_BODY).toHaveLength(249);
    expect(signature).toBe(VECTOR_SIGNATURE);
  });

  it('the documented test vector is a valid signed job: issuedAt and a staged sha256', () => {
    // Act: parsed as the worker would at the vector's own time, with a key (issuedAt required).
    const parsed = parseJob(VECTOR_BODY, { maxImagesPerJob: 10, requireIssuedAt: true }, 1_796_040_000_000);

    // Assess
    expect(parsed).toMatchObject({ ok: true, job: { issuedAt: 1_796_040_000, images: [{ kind: 's3', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }] } });
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

  it('accepts a String attribute of a custom type (String.<label>, as SQS allows)', () => {
    // Prepare
    const attrs = { Signature: { DataType: 'String.hmac', StringValue: signJob(VECTOR_BODY, CURRENT) } };

    // Act
    const result = verifyJobSignature(VECTOR_BODY, attrs, KEYS);

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
    ['a Number attribute, even one carrying the right text', { Signature: { DataType: 'Number', StringValue: signJob(VECTOR_BODY, CURRENT) } }, 'the Signature attribute must be a String of the form v1=<64 hex digits>'],
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
  it('serialises as the keys\' fingerprints, never the key bytes', () => {
    // Act
    const text = JSON.stringify({ keys: KEYS });

    // Assess: the first 8 hex digits of SHA-256 of each key (computed here independently).
    const fingerprint = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 8);
    expect(text).toBe(`{"keys":{"current":"${fingerprint(CURRENT)}","previous":"${fingerprint(PREVIOUS)}"}}`);
    expect(text).not.toContain(CURRENT.slice(0, 12));
  });

  it('gives a different fingerprint for a different key, and the same for the same key', () => {
    // Act
    const again = signingKeysFrom(CURRENT, undefined);
    const other = signingKeysFrom(PREVIOUS, undefined);

    // Assess
    expect(fingerprintsOf(again)).toEqual({ current: fingerprintsOf(KEYS).current, previous: null });
    expect(fingerprintsOf(other).current).not.toBe(fingerprintsOf(KEYS).current);
    expect(keyFingerprint(Buffer.from(CURRENT))).toMatch(/^[0-9a-f]{8}$/);
  });
});

describe('buildSignedJob', () => {
  it('signs exactly the body it returns, in the Signature attribute', () => {
    // Act
    const signed = buildSignedJob({ jobId: 'j-1', userId: 'alice', images: [{ bucket: 'staging', key: 'in/1', bytes: Buffer.from('photo') }] }, CURRENT);

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
