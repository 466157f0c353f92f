import { describe, expect, it } from 'vitest';
import { normaliseUserId, USER_ID_MAX_LENGTH } from '../../src/job/user-id.ts';

// Every character Python's str.strip() removes (str.isspace), as printed by
// python3 -c "print([hex(c) for c in range(0x110000) if chr(c).isspace()])"
const PYTHON_WHITESPACE = [
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
  0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
].map((code) => String.fromCodePoint(code));

const REASONS = {
  empty: 'userId is empty',
  ascii: 'userId must be ASCII (look-alike characters are refused)',
  length: 'userId must be at most 128 characters',
  charset: 'userId may only contain a-z 0-9 . _ @ + -',
  start: 'userId must start with a letter or digit',
  dots: 'userId must not contain ".."',
} as const;

const hex = (s: string) => [...s].map((c) => `U+${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`).join(' ');

describe('normaliseUserId: accepted ids', () => {
  it.each([
    ['alice', 'alice'],
    ['Alice', 'alice'],
    ['ALICE@Example.COM', 'alice@example.com'],
    ['user.name+tag@example.com', 'user.name+tag@example.com'],
    ['a-b_c.d', 'a-b_c.d'],
    ['0', '0'],
    ['9lives', '9lives'],
    ['a.', 'a.'],
  ])('accepts %j as %j', (raw, expected) => {
    // Act
    const result = normaliseUserId(raw);

    // Assess
    expect(result).toEqual({ ok: true, userId: expected });
  });

  it('accepts exactly 128 characters', () => {
    // Prepare
    const raw = 'a'.repeat(USER_ID_MAX_LENGTH);

    // Act
    const result = normaliseUserId(raw);

    // Assess
    expect(USER_ID_MAX_LENGTH).toBe(128);
    expect(result).toEqual({ ok: true, userId: raw });
  });

  it('counts the length after trimming', () => {
    // Act
    const result = normaliseUserId(`  ${'b'.repeat(128)}\n`);

    // Assess
    expect(result).toEqual({ ok: true, userId: 'b'.repeat(128) });
  });

  it('gives the same id for the spellings the Python readers treat as one user', () => {
    // Act
    const ids = [' Alice ', 'ALICE', '\talice\r\n', 'aLiCe'].map((raw) => normaliseUserId(raw));

    // Assess
    expect(ids).toEqual(Array.from({ length: 4 }, () => ({ ok: true, userId: 'alice' })));
  });
});

describe('normaliseUserId: trims exactly what Python str.strip() trims', () => {
  it.each(PYTHON_WHITESPACE.map((c) => [hex(c), c]))('strips %s on both sides', (_name, space) => {
    // Act
    const result = normaliseUserId(`${space}${space}Bob${space}`);

    // Assess
    expect(result).toEqual({ ok: true, userId: 'bob' });
  });

  it('strips a mix of them, including the ones JS trim() keeps (U+001C-U+001F)', () => {
    // Act
    const result = normaliseUserId('\x1c\x1d\x85\u3000carol\u3000\x1e\x1f');

    // Assess
    expect(result).toEqual({ ok: true, userId: 'carol' });
  });

  it.each([
    ['U+FEFF (BOM, stripped by JS trim but not by Python)', '\ufeff'],
    ['U+200B (zero-width space)', '\u200b'],
    ['U+180E (Mongolian vowel separator)', '\u180e'],
    ['U+0000 (NUL)', '\u0000'],
  ])('does not strip %s: the id is refused', (_name, char) => {
    // Act
    const leading = normaliseUserId(`${char}alice`);
    const trailing = normaliseUserId(`alice${char}`);

    // Assess
    expect(leading.ok).toBe(false);
    expect(trailing.ok).toBe(false);
  });

  it('does not remove whitespace inside the id', () => {
    // Act
    const result = normaliseUserId('al ice');

    // Assess
    expect(result).toEqual({ ok: false, reason: REASONS.charset });
  });
});

describe('normaliseUserId: each rejection reason', () => {
  it.each([
    ['empty', ''],
    ['spaces only', '   '],
    ['Python whitespace only', '\t\n\x1c\u3000\x85'],
  ])('refuses %s with "%s"', (_name, raw) => {
    // Act
    const result = normaliseUserId(raw);

    // Assess
    expect(result).toEqual({ ok: false, reason: REASONS.empty });
  });

  it.each([
    ['the Kelvin sign U+212A (lower-cases to ASCII "k")', '\u212Aate'],
    ['Cyrillic а (U+0430)', '\u0430lice'],
    ['fullwidth letters', '\uff41\uff4c\uff49\uff43\uff45'],
    ['an accented letter', 'andré'],
    ['dotted capital I (U+0130, lower-cases to two characters)', '\u0130van'],
    ['a BOM', '\ufeffalice'],
    ['an emoji', 'alice😀'],
  ])('refuses %s as not ASCII', (_name, raw) => {
    // Act
    const result = normaliseUserId(raw);

    // Assess
    expect(result).toEqual({ ok: false, reason: REASONS.ascii });
  });

  it('refuses the Kelvin sign rather than turning it into "k"', () => {
    // Prepare: the Kelvin sign lower-cases to an ASCII k in JS.
    expect('\u212A'.toLowerCase()).toBe('k');

    // Act
    const result = normaliseUserId('\u212A');

    // Assess
    expect(result.ok).toBe(false);
  });

  it('refuses 129 characters', () => {
    // Act
    const result = normaliseUserId('a'.repeat(USER_ID_MAX_LENGTH + 1));

    // Assess
    expect(result).toEqual({ ok: false, reason: REASONS.length });
  });

  it.each([
    ['a slash', 'a/b'],
    ['a path traversal', '../x'],
    ['a backslash', 'a\\b'],
    ['percent-encoded dots', '%2e%2e'],
    ['a colon', 'a:b'],
    ['a hash', 'a#b'],
    ['a tilde', '~alice'],
    ['an asterisk', 'ali*'],
  ])('refuses %s (%j) by its characters', (_name, raw) => {
    // Act
    const result = normaliseUserId(raw);

    // Assess
    expect(result).toEqual({ ok: false, reason: REASONS.charset });
  });

  it.each([['.a'], ['-a'], ['_a'], ['@a'], ['+a'], ['.'], ['...']])('refuses %j: it must start with a letter or digit', (raw) => {
    // Act
    const result = normaliseUserId(raw);

    // Assess
    expect(result).toEqual({ ok: false, reason: REASONS.start });
  });

  it.each([['a..b'], ['a...b'], ['a..'], ['x..']])('refuses %j: it must not contain ".."', (raw) => {
    // Act
    const result = normaliseUserId(raw);

    // Assess
    expect(result).toEqual({ ok: false, reason: REASONS.dots });
  });

  it.each([
    ['a NUL byte', 'a\u0000b'],
    ['a newline inside', 'a\nb'],
    ['a tab inside', 'a\tb'],
    ['a DEL', 'a\u007fb'],
  ])('refuses %s inside the id', (_name, raw) => {
    // Act
    const result = normaliseUserId(raw);

    // Assess
    expect(result.ok).toBe(false);
  });
});
