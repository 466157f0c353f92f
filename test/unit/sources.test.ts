import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkStagedSource, decodeInline, isStrictBase64, loadImage, type StagedObjectReader, type StagingRules } from '../../src/enroll/sources.ts';
import { JobError } from '../../src/job/errors.ts';
import { rejectionOf, staged, thrownBy } from './helpers.ts';

const RULES: StagingRules = { stagingBucket: 'enrollment-staging', stagingPrefix: 'incoming/', maxImageBytes: 1000 };

const bytesOf = (length: number) => Buffer.from(Array.from({ length }, (_, i) => (i * 37 + 11) & 0xff));

describe('decodeInline', () => {
  it.each([[1], [2], [3], [4], [5], [6], [255]])('decodes strict padded base64 of %i bytes', (length) => {
    // Prepare
    const bytes = bytesOf(length);

    // Act
    const decoded = decodeInline(bytes.toString('base64'), 'images[0]', 1000);

    // Assess
    expect(decoded.equals(bytes)).toBe(true);
  });

  it('decodes every base64 alphabet character', () => {
    // Prepare: 48 bytes whose encoding uses all 64 characters, + and / included.
    const data = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

    // Act
    const decoded = decodeInline(data, 'images[0]', 1000);

    // Assess
    expect(decoded.toString('base64')).toBe(data);
  });

  it.each([
    ['garbage', 'this is not base64!'],
    ['a newline inside', 'QUJD\nREVG'],
    ['a leading space', ' QUJD'],
    ['a trailing space', 'QUJD '],
    ['a CRLF line break (MIME style)', 'QUJDREVG\r\nQUJD'],
    ['base64url characters', 'ab-_'],
    ['missing padding (one byte)', 'QQ'],
    ['missing padding (two bytes)', 'QUI'],
    ['too much padding', 'QUJD===='],
    ['padding only', '===='],
    ['padding in the middle', 'QQ==QUJD'],
    ['a data URL', 'data:image/jpeg;base64,QUJD'],
    ['a length of 5', 'QUJDR'],
  ])('refuses %s as INVALID_IMAGE', (_name, data) => {
    // Act
    const error = thrownBy(() => decodeInline(data, 'images[1]', 1000));

    // Assess
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[1] is not valid base64' });
  });

  it('refuses an empty string as INVALID_IMAGE', () => {
    // Act
    const error = thrownBy(() => decodeInline('', 'images[0]', 1000));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE', message: 'images[0] is empty' });
  });

  it.each([[998], [999], [1000]])('accepts %i decoded bytes under a limit of 1000', (length) => {
    // Act
    const decoded = decodeInline(bytesOf(length).toString('base64'), 'images[0]', 1000);

    // Assess
    expect(decoded.length).toBe(length);
  });

  // The contract: more decoded bytes than the limit is IMAGE_TOO_LARGE, for every length.
  it.each([[1001], [1002], [1003], [1004], [5000]])('refuses %i decoded bytes under a limit of 1000 as IMAGE_TOO_LARGE', (length) => {
    // Act
    const error = thrownBy(() => decodeInline(bytesOf(length).toString('base64'), 'images[0]', 1000));

    // Assess
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    expect((error as JobError).message).toMatch(/^images\[0\] is .*bytes; the limit is 1000$/);
  });

  it('refuses an oversize image from its length, with the exact decoded size in the message', () => {
    // Prepare: valid base64 of 4 MB, far over the limit.
    const data = 'QUJD'.repeat(1_000_000);

    // Act
    const error = thrownBy(() => decodeInline(data, 'images[0]', 1000));

    // Assess
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE', message: 'images[0] is 3000000 bytes; the limit is 1000' });
  });

  it('calls a huge string that is not base64 what it is', () => {
    // Act
    const error = thrownBy(() => decodeInline('!'.repeat(4_000_000), 'images[0]', 1000));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_IMAGE' });
  });
});

describe('checkStagedSource', () => {
  it('accepts an object in the staging bucket under the prefix', () => {
    // Act
    const act = () => checkStagedSource({ bucket: 'enrollment-staging', key: 'incoming/job-1/0' }, 'images[0]', RULES);

    // Assess
    expect(act).not.toThrow();
  });

  it('accepts any key in the staging bucket when the prefix is empty', () => {
    // Act
    const act = () => checkStagedSource({ bucket: 'enrollment-staging', key: 'anything/at/all' }, 'images[0]', { ...RULES, stagingPrefix: '' });

    // Assess
    expect(act).not.toThrow();
  });

  it('refuses every staged source when no staging bucket is configured', () => {
    // Act
    const error = thrownBy(() =>
      checkStagedSource({ bucket: 'enrollment-staging', key: 'incoming/x' }, 'images[0]', { ...RULES, stagingBucket: undefined }),
    );

    // Assess
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({
      code: 'SOURCE_NOT_ALLOWED',
      message: 'images[0]: staged sources are not enabled on this worker (no STAGING_BUCKET)',
    });
  });

  it.each([
    ['another bucket', 'someone-elses-bucket'],
    ['the reference bucket', 'face-references'],
    ['a bucket that differs only in case', 'Enrollment-Staging'],
    ['a bucket that extends the staging name', 'enrollment-staging-2'],
  ])('refuses %s', (_name, bucket) => {
    // Act
    const error = thrownBy(() => checkStagedSource({ bucket, key: 'incoming/x' }, 'images[2]', RULES));

    // Assess
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', message: `images[2]: bucket "${bucket}" is not the staging bucket` });
  });

  it.each([
    ['another user\'s reference', 'users/bob/ref_0123456789ab.jpg'],
    ['the prefix without its slash', 'incoming'],
    ['a look-alike prefix', 'incoming-evil/x'],
    ['a prefix in another case', 'Incoming/x'],
    ['the prefix further in', 'other/incoming/x'],
  ])('refuses %s (outside the prefix)', (_name, key) => {
    // Act
    const error = thrownBy(() => checkStagedSource({ bucket: 'enrollment-staging', key }, 'images[1]', RULES));

    // Assess
    expect(error).toBeInstanceOf(JobError);
    expect(error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', message: 'images[1]: key is outside the staging prefix "incoming/"' });
  });
});

describe('loadImage', () => {
  function recordingReader(bytes: Buffer): { read: StagedObjectReader; calls: unknown[][] } {
    const calls: unknown[][] = [];
    return {
      calls,
      read: async (...args) => {
        calls.push(args);
        return bytes;
      },
    };
  }

  it('decodes an inline source without reading S3', async () => {
    // Prepare
    const reader = recordingReader(Buffer.alloc(0));
    const bytes = bytesOf(10);

    // Act
    const loaded = await loadImage({ kind: 'inline', data: bytes.toString('base64') }, 'images[0]', RULES, reader.read);

    // Assess
    expect(loaded.bytes.equals(bytes)).toBe(true);
    expect(loaded.sha256.equals(createHash('sha256').update(bytes).digest())).toBe(true);
    expect(reader.calls).toEqual([]);
  });

  it('reads an allowed staged source with the size cap and label, held to what its HEAD admitted', async () => {
    // Prepare
    const bytes = bytesOf(10);
    const reader = recordingReader(bytes);
    const admitted = { size: 10, etag: '"e1"' };

    // Act
    const loaded = await loadImage(staged('enrollment-staging', 'incoming/j/0', bytes), 'images[4]', RULES, reader.read, undefined, admitted);

    // Assess
    expect(loaded.bytes).toBe(bytes);
    expect(loaded.sha256.toString('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(reader.calls).toEqual([['enrollment-staging', 'incoming/j/0', 1000, 'images[4]', undefined, admitted]]);
  });

  it('refuses a staged object whose bytes are not the ones the job names (SOURCE_MISMATCH)', async () => {
    // Prepare
    const reader = recordingReader(bytesOf(10));
    const source = staged('enrollment-staging', 'incoming/j/0', bytesOf(11));

    // Act
    const error = await rejectionOf(() => loadImage(source, 'images[2]', RULES, reader.read));

    // Assess
    expect(error).toMatchObject({ code: 'SOURCE_MISMATCH' });
    expect((error as Error).message).toMatch(/^images\[2\]: the staged object's SHA-256 is [0-9a-f]{64}, the job says [0-9a-f]{64}$/);
  });

  it('never reads a staged source that is not allowed', async () => {
    // Prepare
    const reader = recordingReader(bytesOf(10));

    // Act
    const error = await rejectionOf(() => loadImage(staged('face-references', 'users/bob/ref_x.jpg'), 'images[0]', RULES, reader.read));

    // Assess
    expect(error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED' });
    expect(reader.calls).toEqual([]);
  });
});

describe('isStrictBase64', () => {
  const reference = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

  it('agrees with the reference expression on every short string over the base64 alphabet and a few strangers', () => {
    const alphabet = ['A', 'z', '+', '/', '=', '-', ' ', 'é'];
    let level = [''];
    let strings: string[] = [''];
    for (let length = 1; length <= 6; length += 1) {
      level = level.flatMap((s) => alphabet.map((c) => s + c));
      strings = strings.concat(level);
    }
    // One assertion over the ~300,000 strings (an expect per string took seconds on a busy machine).
    const disagreements = strings.filter((s) => isStrictBase64(s) !== reference.test(s));
    expect(strings.length).toBeGreaterThan(299_000);
    expect(disagreements).toEqual([]);
  });
});

describe('checkStagedSource: key segments', () => {
  const rules = { stagingBucket: 'staging', stagingPrefix: 'uploads/', maxImageBytes: 1000 };
  it.each([['uploads/../users/victim/ref.jpg'], ['uploads/./a.jpg'], ['uploads//a.jpg'], ['uploads/a/..']])('refuses %s', (key) => {
    expect(() => checkStagedSource({ bucket: 'staging', key }, 'images[0]', rules)).toThrow(/empty, "\." or "\.\." segment/);
  });
  it('accepts an ordinary key under the prefix', () => {
    expect(() => checkStagedSource({ bucket: 'staging', key: 'uploads/job-1/0' }, 'images[0]', rules)).not.toThrow();
  });
});
