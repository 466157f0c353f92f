/**
 * What SQS accepts, in one place: message size, attribute count, the characters a body or an
 * attribute value may hold, and when two queue URLs name the same queue. The emulators enforce
 * none of the character rules, so the worker must: a send SQS refuses would turn a dead-letter
 * into an endless retry.
 */

/** SQS's largest message (body plus attributes), since 2025-08. */
export const SQS_MAX_MESSAGE_BYTES = 1_048_576;
export const SQS_MAX_ATTRIBUTES = 10;
/** Entries in one batch call (SendMessageBatch, DeleteMessageBatch, …) and messages per receive. */
export const SQS_MAX_BATCH_ENTRIES = 10;

// #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF (whole code points).
const NOT_ALLOWED = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** True when SQS accepts `text` as a message body or a String attribute value. */
export function isSqsText(text: string): boolean {
  NOT_ALLOWED.lastIndex = 0;
  return !NOT_ALLOWED.test(text);
}

/**
 * `text` with every character SQS refuses written out as `\uXXXX` (lone surrogates and controls
 * included), so a message that quotes job text still says what was there and is still accepted.
 */
export function sqsText(text: string): string {
  return text.replace(NOT_ALLOWED, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

/**
 * JSON text SQS accepts. JSON.stringify already escapes controls and lone surrogates; only
 * U+FFFE and U+FFFF pass through it raw, and they become JSON escapes (the same value when parsed).
 */
export function sqsJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\uFFFE\uFFFF]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

// sqs.REGION.amazonaws.com(.cn), sqs-fips.REGION…, REGION.queue.amazonaws.com (legacy),
// vpce-….sqs.REGION.vpce.amazonaws.com; queue.amazonaws.com is the legacy us-east-1 host.
const REGION_IN_HOST = /(?:^|\.)(?:sqs(?:-fips)?\.)?([a-z]{2}(?:-[a-z]+)+-\d{1,2})\.(?:queue\.|vpce\.)?amazonaws\.com(?:\.cn)?$/;

/**
 * What identifies a queue behind its URL: account and name (the last two path segments; names are
 * case-sensitive), and the region when the host says it. Host spelling, letter case of the host,
 * scheme, port and a trailing slash do not matter: every form of one queue's URL gives one identity.
 */
export function queueIdentity(url: string): { account: string; name: string; region: string | undefined } | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const segments = parsed.pathname.split('/').filter((s) => s !== '');
  const name = segments.at(-1);
  const account = segments.at(-2);
  if (name === undefined || account === undefined) return undefined;
  const host = parsed.hostname.toLowerCase().replace(/\.$/, '');
  const region = host === 'queue.amazonaws.com' ? 'us-east-1' : REGION_IN_HOST.exec(host)?.[1];
  return { account, name: decodeURIComponent(name), region };
}

/**
 * Whether two queue URLs may name the same queue. Errs towards "same": a result or dead-letter
 * queue that might be the jobs queue is refused, because a job sent back there loops for ever.
 */
export function sameQueue(a: string, b: string): boolean {
  const x = queueIdentity(a);
  const y = queueIdentity(b);
  if (x === undefined || y === undefined) return a.trim() === b.trim();
  if (x.account !== y.account || x.name !== y.name) return false;
  return x.region === undefined || y.region === undefined || x.region === y.region;
}
