/**
 * Signed jobs: the second wall after queue IAM. A job decides whose face unlocks an account, so
 * when a signing key is configured every job must carry the message attribute
 *
 *   Signature = "v1=" + hex(HMAC-SHA256(key, the exact UTF-8 bytes of the message body))
 *
 * The key is the UTF-8 bytes of the setting's value. The body is signed as sent — no parsing, no
 * canonicalisation — so any language can produce it, and the worker checks it before it reads a
 * single field of the body. Comparison is constant-time.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { JobError } from './errors.ts';

export const SIGNATURE_ATTRIBUTE = 'Signature';
export const SIGNATURE_VERSION = 'v1';

/** The smallest key accepted, in characters (e.g. `openssl rand -hex 32` gives 64). */
export const SIGNING_KEY_MIN_LENGTH = 32;

/**
 * The accepted keys. `current` undefined: unsigned mode, every job is accepted unchecked.
 * Read through a function on every message, so a reload can swap them without a restart.
 */
export interface SigningKeys {
  readonly current?: Buffer;
  readonly previous?: Buffer;
}

/** Which key a job was signed with, for logs — never the key itself. */
export type SignatureCheck = 'current' | 'previous' | 'unchecked';

/**
 * Names a key in logs without revealing it: the first 8 hex digits of its SHA-256. Enough to tell
 * which key is in force on which worker during a rotation; useless for signing.
 */
export function keyFingerprint(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/** The fingerprints of the keys in force, for logs: `{ current, previous }`, null when unset. */
export function fingerprintsOf(keys: SigningKeys): { current: string | null; previous: string | null } {
  return {
    current: keys.current ? keyFingerprint(keys.current) : null,
    previous: keys.previous ? keyFingerprint(keys.previous) : null,
  };
}

/**
 * Keys from their settings' values. The object serialises to the keys' fingerprints, so a config
 * that is logged (or compared as JSON on reload) never carries the key bytes, yet a swapped key shows.
 */
export function signingKeysFrom(current: string | undefined, previous: string | undefined): SigningKeys {
  const keys: SigningKeys = {
    ...(current !== undefined ? { current: Buffer.from(current, 'utf8') } : {}),
    ...(previous !== undefined ? { previous: Buffer.from(previous, 'utf8') } : {}),
  };
  Object.defineProperty(keys, 'toJSON', { enumerable: false, value: () => fingerprintsOf(keys) });
  return Object.freeze(keys);
}

function hmac(body: string, key: Buffer | string): Buffer {
  return createHmac('sha256', typeof key === 'string' ? Buffer.from(key, 'utf8') : key)
    .update(body, 'utf8')
    .digest();
}

/**
 * The `Signature` attribute value for a message body: `v1=<64 lower-case hex>`. A string key is
 * taken as its UTF-8 bytes, as the worker takes JOB_SIGNING_KEY.
 */
export function signJob(body: string, key: Buffer | string): string {
  return `${SIGNATURE_VERSION}=${hmac(body, key).toString('hex')}`;
}

const SIGNATURE_FORMAT = /^v1=[0-9a-fA-F]{64}$/;

/** The shape of a message attribute, as SQS delivers it (kept here so `job/` needs no SDK). */
export interface MessageAttribute {
  readonly DataType?: string | undefined;
  readonly StringValue?: string | undefined;
}

export type SignatureResult =
  | { readonly ok: true; readonly key: SignatureCheck }
  | { readonly ok: false; readonly error: JobError };

function invalid(message: string): SignatureResult {
  return { ok: false, error: new JobError('INVALID_SIGNATURE', message) };
}

/**
 * Checks a message's signature against the current key, then the previous one. Never throws.
 * Both candidates are always computed and compared, so the time taken does not say which matched.
 */
export function verifyJobSignature(
  body: string,
  attributes: Readonly<Record<string, MessageAttribute>> | undefined,
  keys: SigningKeys,
): SignatureResult {
  if (keys.current === undefined) return { ok: true, key: 'unchecked' };
  const attribute = attributes?.[SIGNATURE_ATTRIBUTE];
  if (attribute === undefined) return invalid(`the message has no ${SIGNATURE_ATTRIBUTE} attribute (jobs must be signed)`);
  const value = attribute.DataType?.startsWith('String') ? attribute.StringValue : undefined;
  if (value === undefined || !SIGNATURE_FORMAT.test(value)) {
    return invalid(`the ${SIGNATURE_ATTRIBUTE} attribute must be a String of the form v1=<64 hex digits>`);
  }
  const given = Buffer.from(value.slice(3), 'hex');
  const matchesCurrent = timingSafeEqual(given, hmac(body, keys.current));
  const matchesPrevious = keys.previous !== undefined && timingSafeEqual(given, hmac(body, keys.previous));
  if (matchesCurrent) return { ok: true, key: 'current' };
  if (matchesPrevious) return { ok: true, key: 'previous' };
  return invalid(`the ${SIGNATURE_ATTRIBUTE} does not match the message body under any accepted key`);
}
