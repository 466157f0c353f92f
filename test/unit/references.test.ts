import { describe, expect, it } from 'vitest';
import { REFERENCE_HASH_LENGTH, referenceKey, sha256Of, userPrefix } from '../../src/enroll/references.ts';
import { thrownBy, userId } from './helpers.ts';

// SHA-256("abc"), FIPS 180-2 appendix B.1
const ABC_SHA256 = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';

describe('sha256Of', () => {
  it('is the SHA-256 of the bytes, as 32 raw bytes', () => {
    // Act
    const digest = sha256Of(Buffer.from('abc'));

    // Assess
    expect(digest).toHaveLength(32);
    expect(digest.toString('hex')).toBe(ABC_SHA256);
  });

  it('differs for different bytes', () => {
    // Act
    const a = sha256Of(Buffer.from([1, 2, 3]));
    const b = sha256Of(Buffer.from([1, 2, 4]));

    // Assess
    expect(a.equals(b)).toBe(false);
  });
});

describe('referenceKey', () => {
  it('is users/<id>/ref_<first 12 hex>.jpg for a JPEG', () => {
    // Act
    const key = referenceKey(userId('alice'), ABC_SHA256, 'jpg');

    // Assess
    expect(REFERENCE_HASH_LENGTH).toBe(12);
    expect(key).toBe('users/alice/ref_ba7816bf8f01.jpg');
  });

  it('is users/<id>/ref_<first 12 hex>.png for a PNG', () => {
    // Act
    const key = referenceKey(userId('user.name+tag@example.com'), ABC_SHA256, 'png');

    // Assess
    expect(key).toBe('users/user.name+tag@example.com/ref_ba7816bf8f01.png');
  });

  it('uses the normalised user id', () => {
    // Act
    const key = referenceKey(userId('  Alice '), ABC_SHA256, 'jpg');

    // Assess
    expect(key).toBe('users/alice/ref_ba7816bf8f01.jpg');
  });

  it('lies under the user prefix', () => {
    // Prepare
    const id = userId('bob');

    // Act
    const key = referenceKey(id, sha256Of(Buffer.from('photo')).toString('hex'), 'jpg');

    // Assess
    expect(userPrefix(id)).toBe('users/bob/');
    expect(key.startsWith(userPrefix(id))).toBe(true);
    expect(key.slice(userPrefix(id).length)).toMatch(/^ref_[0-9a-f]{12}\.jpg$/);
  });

  it.each([
    ['empty', ''],
    ['12 hex characters', ABC_SHA256.slice(0, 12)],
    ['63 hex characters', ABC_SHA256.slice(0, 63)],
    ['65 hex characters', `${ABC_SHA256}0`],
    ['upper-case hex', ABC_SHA256.toUpperCase()],
    ['a non-hex character', `g${ABC_SHA256.slice(1)}`],
    ['base64 of the digest', Buffer.from(ABC_SHA256, 'hex').toString('base64')],
    ['a path', `../${ABC_SHA256.slice(3)}`],
  ])('refuses a hash that is %s', (_name, hash) => {
    // Act
    const error = thrownBy(() => referenceKey(userId('alice'), hash, 'jpg'));

    // Assess
    expect(error).toBeInstanceOf(TypeError);
    expect(error).toMatchObject({ message: 'sha256Hex must be 64 lower-case hex characters' });
  });
});
