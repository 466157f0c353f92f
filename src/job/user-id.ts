/**
 * User ids become S3 key segments, so this is the gate that keeps every write inside
 * `users/<that user>/`. Normalisation matches the existing Python readers (`strip().lower()`),
 * so the same id always names the same prefix for both.
 */

/** A user id that passed normalisation: the only kind a reference key can be built from. */
export type UserId = string & { readonly __brand: 'UserId' };

export const USER_ID_MAX_LENGTH = 128;

// Exactly the characters Python's str.strip() removes (str.isspace), so `" Alice "` means the same
// user here and in the Python readers. JS's trim() differs: it strips U+FEFF and keeps U+001C-U+001F.
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');

const ALLOWED = /^[a-z0-9._@+-]+$/;
const STARTS_WELL = /^[a-z0-9]/;
// Before lower-casing: some non-ASCII letters lower-case to ASCII (the Kelvin sign K becomes "k"),
// which would let a look-alike id land in another user's prefix.
const ASCII = /^[\x00-\x7f]*$/;

export type UserIdResult = { ok: true; userId: UserId } | { ok: false; reason: string };

export function normaliseUserId(raw: string): UserIdResult {
  const trimmed = raw.replace(PY_STRIP, '');
  if (trimmed.length === 0) return { ok: false, reason: 'userId is empty' };
  if (!ASCII.test(trimmed)) return { ok: false, reason: 'userId must be ASCII (look-alike characters are refused)' };
  const id = trimmed.toLowerCase();
  if (id.length > USER_ID_MAX_LENGTH) {
    return { ok: false, reason: `userId must be at most ${USER_ID_MAX_LENGTH} characters` };
  }
  if (!ALLOWED.test(id)) return { ok: false, reason: 'userId may only contain a-z 0-9 . _ @ + -' };
  if (!STARTS_WELL.test(id)) return { ok: false, reason: 'userId must start with a letter or digit' };
  if (id.includes('..')) return { ok: false, reason: 'userId must not contain ".."' };
  return { ok: true, userId: id as UserId };
}
