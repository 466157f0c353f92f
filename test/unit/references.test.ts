import { describe, expect, it } from 'vitest';
import { oneWritePerKey, REFERENCE_HASH_LENGTH, referenceKey, sha256Of, userPrefix, type PutResult, type ReferenceObject } from '../../src/enroll/references.ts';
import { settle as tick, thrownBy, userId } from './helpers.ts';

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

describe('oneWritePerKey', () => {
  /** A writer whose writes stay open until the test settles them, counting calls per key. */
  function heldWriter() {
    const calls: { key: string; settle: (result: PutResult | Error) => void }[] = [];
    const write = (object: ReferenceObject) =>
      new Promise<PutResult>((resolve, reject) => {
        calls.push({ key: object.key, settle: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
      });
    return { calls, write };
  }
  const object = (key: string): ReferenceObject => ({
    key,
    body: Buffer.from('x'),
    contentType: 'image/jpeg',
    sha256: sha256Of(Buffer.from('x')),
    storedSha256: sha256Of(Buffer.from('x')),
    jobId: 'job',
  });

  it('sends one write for two jobs writing one key at once: the second finds it stored', async () => {
    // Prepare
    const held = heldWriter();
    const write = oneWritePerKey(held.write);

    // Act
    const first = write(object('users/a/ref_1.jpg'));
    const second = write(object('users/a/ref_1.jpg'));
    await tick();
    held.calls[0]?.settle('created');

    // Assess
    expect(await first).toBe('created');
    expect(await second).toBe('existed');
    expect(held.calls).toHaveLength(1);
  });

  it('writes different keys side by side', async () => {
    // Prepare
    const held = heldWriter();
    const write = oneWritePerKey(held.write);

    // Act
    const writes = [write(object('users/a/ref_1.jpg')), write(object('users/a/ref_2.jpg'))];
    await tick();
    for (const call of held.calls) call.settle('created');

    // Assess
    expect(held.calls.map((c) => c.key)).toEqual(['users/a/ref_1.jpg', 'users/a/ref_2.jpg']);
    expect(await Promise.all(writes)).toEqual(['created', 'created']);
  });

  it('leaves the key to the next writer when the first write fails, and to one of them only', async () => {
    // Prepare
    const held = heldWriter();
    const write = oneWritePerKey(held.write);
    const first = write(object('users/a/ref_1.jpg'));
    const waiting = [write(object('users/a/ref_1.jpg')), write(object('users/a/ref_1.jpg'))];
    await tick();

    // Act
    held.calls[0]?.settle(new Error('S3 throttled'));
    await expect(first).rejects.toThrow('S3 throttled');
    await tick();
    held.calls[1]?.settle('created');

    // Assess
    expect(held.calls).toHaveLength(2);
    expect((await Promise.all(waiting)).sort()).toEqual(['created', 'existed']);
  });

  it('stops waiting when its own job is cancelled; the write it waited for goes on', async () => {
    // Prepare
    const held = heldWriter();
    const write = oneWritePerKey(held.write);
    const first = write(object('users/a/ref_1.jpg'));
    const cancel = new AbortController();
    const second = write(object('users/a/ref_1.jpg'), cancel.signal);
    await tick();

    // Act
    cancel.abort(new Error('job cancelled'));

    // Assess
    await expect(second).rejects.toThrow('job cancelled');
    held.calls[0]?.settle('created');
    expect(await first).toBe('created');
  });

  it('asks S3 again once the write is over: it only joins writes in flight', async () => {
    // Prepare
    const held = heldWriter();
    const write = oneWritePerKey(held.write);
    const first = write(object('users/a/ref_1.jpg'));
    await tick();
    held.calls[0]?.settle('created');
    await first;

    // Act
    const later = write(object('users/a/ref_1.jpg'));
    await tick();
    held.calls[1]?.settle('existed');

    // Assess
    expect(held.calls).toHaveLength(2);
    expect(await later).toBe('existed');
  });
});
