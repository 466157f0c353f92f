// A small in-process AWS endpoint for the benchmark and the memory soak: SQS (JSON protocol), S3
// (path-style), STS GetCallerIdentity, Secrets Manager GetSecretValue and IMDSv2 on one loopback port, all in memory, with a fixed
// per-request delay that models the round trip to real SQS/S3 from EC2 (e.g. 15 ms).
//
// It answers exactly the calls the worker, the benchmark and the tests make, as AWS answers them
// (status codes, error codes, MD5s the SDK checks, visibility timeouts, long polls, redrive,
// conditional writes), and refuses anything else with a clear 400/501 so a new call is noticed.
// moto spends ~20 ms of CPU per message; this spends well under a millisecond, so the worker's own
// ceiling shows. It is not a general emulator: use moto or LocalStack for anything else.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { crc32 } from 'node:zlib';
import { roleCredentialsDocument } from './imds.ts';
import { listenOnLoopback, sleep } from './wait.ts';

export const FAST_AWS_ACCOUNT = '123456789012';
export const FAST_AWS_ROLE = 'enrollment-worker-bench-role';
const REGION = 'us-east-1';
const SQS_MAX_MESSAGE_BYTES = 1_048_576;
const SQS_MAX_BATCH_BYTES = 1_048_576;
const MAX_VISIBILITY_SECONDS = 43_200;

export interface FastAwsOptions {
  /** Added to every SQS, S3 and STS request before it is answered (not to IMDS). Default 15. */
  delayMs?: number;
}

/** Emitted as `deleted` when a message leaves a queue through DeleteMessage(Batch). */
export interface DeletedMessage {
  queue: string;
  messageId: string;
  sentAt: number;
  firstReceivedAt: number | undefined;
  deletedAt: number;
  receiveCount: number;
}

export interface FastAws {
  /** `http://127.0.0.1:PORT`, for AWS_ENDPOINT_URL. */
  readonly endpoint: string;
  /** The same server, for AWS_EC2_METADATA_SERVICE_ENDPOINT. */
  readonly imdsEndpoint: string;
  /** Per-request delay in ms; may be changed while running. */
  delayMs: number;
  /** Requests answered, by action (`sqs:ReceiveMessage`, `s3:PutObject`, `imds`, …). */
  readonly requests: Readonly<Record<string, number>>;
  /**
   * SQS requests as SQS bills them, by action (`sqs:ReceiveMessage`, …): every call is at least
   * one, and each further 64 KiB of message payload sent or received in it is one more.
   */
  readonly billedRequests: Readonly<Record<string, number>>;
  /** Makes entries of the next batch calls fail by themselves (a partial batch failure). */
  failBatchEntries(fault: BatchEntryFault): void;
  /** Makes the next calls of an SQS action fail as a whole (e.g. a 500), before they act. */
  failRequests(fault: RequestFault): void;
  /** Drops every fault not yet used. */
  clearFaults(): void;
  /** `deleted` (DeletedMessage) events. */
  readonly events: EventEmitter;
  /** Visible / in flight / delayed counts of a queue (by name), without a delay. */
  queueDepth(name: string): { visible: number; inFlight: number; delayed: number };
  /** Answers every long poll that is waiting now, empty (so a draining worker need not wait). */
  releaseWaits(): void;
  /** Long polls waiting now on a queue (by name). */
  waitingPolls(name: string): number;
  /** Forgets queues and buckets whose names start with `prefix` (frees their memory). */
  forget(prefix: string): void;
  /** Empties a bucket or a queue by name (PurgeQueue-like), keeping it: for long runs. Returns how many went. */
  purge(name: string): number;
  /** Stores a secret's string for GetSecretValue (as a new version); `undefined` deletes it. */
  putSecret(name: string, text: string | undefined): void;
  resetCounts(): void;
  stop(): Promise<void>;
}

/** A partial batch failure: matching entries are reported in `Failed` and not acted on. */
export interface BatchEntryFault {
  action: 'SendMessageBatch' | 'DeleteMessageBatch' | 'ChangeMessageVisibilityBatch';
  /** How many entries fail (over one or more calls). Default 1. */
  entries?: number;
  /** Which entries; default every entry (until `entries` are used up). */
  match?: (entry: Readonly<Record<string, unknown>>) => boolean;
  /** Default `InternalError` with SenderFault false: a failure on SQS's side, worth a retry. */
  code?: string;
  senderFault?: boolean;
}

/** Whole calls that fail before they act, as SQS's 5xx or throttling answers do. */
export interface RequestFault {
  /** An SQS action name, e.g. `DeleteMessageBatch` or `ReceiveMessage`. */
  action: string;
  /** How many calls fail. Default 1. */
  times?: number;
  /** Default 500 `InternalError`. */
  status?: number;
  code?: string;
}

// ---------------------------------------------------------------------------------------------
// SQS model

interface AttributeValue {
  DataType: string;
  StringValue?: string;
  /** base64, as the JSON protocol carries it */
  BinaryValue?: string;
}

interface StoredMessage {
  id: string;
  body: string;
  md5OfBody: string;
  attributes: Record<string, AttributeValue>;
  md5OfAttributes: string | undefined;
  sentAt: number;
  firstReceivedAt: number | undefined;
  receiveCount: number;
  visibleAt: number;
  /** Only the latest receipt handle may change visibility or delete. */
  receipt: string | undefined;
  timer: NodeJS.Timeout | undefined;
}

interface Waiter {
  max: number;
  visibility: number;
  want: ReceiveWants;
  done: (messages: StoredMessage[]) => void;
}

interface Queue {
  name: string;
  url: string;
  arn: string;
  createdAt: number;
  attributes: Record<string, string>;
  messages: Map<string, StoredMessage>;
  waiters: Waiter[];
}

interface ReceiveWants {
  system: ReadonlySet<string>;
  all: boolean;
  attributeNames: readonly string[];
}

class AwsError extends Error {
  readonly status: number;
  readonly code: string;
  readonly queryCode: string;
  constructor(status: number, code: string, message: string, queryCode = code) {
    super(message);
    this.status = status;
    this.code = code;
    this.queryCode = queryCode;
  }
}

// ---------------------------------------------------------------------------------------------
// Batches, billing and injected faults (kept apart from the queue model above and below)

const SQS_MAX_BATCH_ENTRIES = 10;
const BATCH_ENTRY_ID = /^[A-Za-z0-9_-]{1,80}$/;
/** SQS bills each 64 KiB chunk of a call's payload as one request. */
const SQS_BILLING_CHUNK_BYTES = 65_536;

/**
 * The entries of a batch call, after the checks SQS makes on the batch as a whole: any of these
 * refuses the whole call (400) and no entry is acted on.
 */
function batchEntries(input: Record<string, unknown>, entryType: string): Record<string, unknown>[] {
  const entries = Array.isArray(input.Entries) ? (input.Entries as Record<string, unknown>[]) : [];
  if (entries.length === 0) {
    throw new AwsError(400, 'EmptyBatchRequest', `There should be at least one ${entryType} in the request.`, 'AWS.SimpleQueueService.EmptyBatchRequest');
  }
  if (entries.length > SQS_MAX_BATCH_ENTRIES) {
    throw new AwsError(400, 'TooManyEntriesInBatchRequest', `Maximum number of entries per request are ${SQS_MAX_BATCH_ENTRIES}. You have sent ${entries.length}.`, 'AWS.SimpleQueueService.TooManyEntriesInBatchRequest');
  }
  const ids = new Set<string>();
  for (const entry of entries) {
    const id = entry.Id;
    if (typeof id !== 'string' || !BATCH_ENTRY_ID.test(id)) {
      throw new AwsError(400, 'InvalidBatchEntryId', 'A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.', 'AWS.SimpleQueueService.InvalidBatchEntryId');
    }
    if (ids.has(id)) throw new AwsError(400, 'BatchEntryIdsNotDistinct', `Id ${id} repeated.`, 'AWS.SimpleQueueService.BatchEntryIdsNotDistinct');
    ids.add(id);
  }
  return entries;
}

/**
 * A batch call: each entry succeeds or fails by itself, as SQS answers batches. `injected` says
 * whether a fault makes an entry fail before it is acted on.
 */
function eachEntry(
  entries: readonly Record<string, unknown>[],
  act: (entry: Record<string, unknown>) => Record<string, unknown> | void,
  injected: (entry: Record<string, unknown>) => AwsError | undefined,
) {
  const Successful: Record<string, unknown>[] = [];
  const Failed: Record<string, unknown>[] = [];
  for (const entry of entries) {
    const fault = injected(entry);
    if (fault) {
      Failed.push({ Id: entry.Id, SenderFault: fault.status < 500, Code: fault.code, Message: fault.message });
      continue;
    }
    try {
      Successful.push({ Id: entry.Id, ...(act(entry) ?? {}) });
    } catch (e: unknown) {
      if (!(e instanceof AwsError)) throw e;
      Failed.push({ Id: entry.Id, SenderFault: true, Code: e.code, Message: e.message });
    }
  }
  return { Successful, Failed };
}

/** Bytes of message payload in a call, as SQS counts them for billing: bodies and message attributes. */
function sqsPayloadBytes(action: string, input: Record<string, unknown>, output: Record<string, unknown> | undefined): number {
  const size = (m: Record<string, unknown>, attributesKey: string) =>
    Buffer.byteLength(String(m.MessageBody ?? m.Body ?? '')) +
    attributeBytes(typeof m[attributesKey] === 'object' && m[attributesKey] !== null ? (m[attributesKey] as Record<string, AttributeValue>) : {});
  const list = (v: unknown) => (Array.isArray(v) ? (v as Record<string, unknown>[]) : []);
  if (action === 'SendMessage') return size(input, 'MessageAttributes');
  if (action === 'SendMessageBatch') return list(input.Entries).reduce((sum, e) => sum + size(e, 'MessageAttributes'), 0);
  if (action === 'ReceiveMessage') return list(output?.Messages).reduce((sum, m) => sum + size(m, 'MessageAttributes'), 0);
  return 0;
}

/** Requests SQS bills for one call: at least one, and one per 64 KiB chunk of payload. */
export function billedSqsRequests(payloadBytes: number): number {
  return Math.max(1, Math.ceil(payloadBytes / SQS_BILLING_CHUNK_BYTES));
}

/** The injected faults of one endpoint, used up as they fire. */
function faultBook() {
  let entryFaults: Array<BatchEntryFault & { left: number }> = [];
  let requestFaults: Array<RequestFault & { left: number }> = [];
  return {
    addEntries(fault: BatchEntryFault) {
      entryFaults.push({ ...fault, left: fault.entries ?? 1 });
    },
    addRequests(fault: RequestFault) {
      requestFaults.push({ ...fault, left: fault.times ?? 1 });
    },
    clear() {
      entryFaults = [];
      requestFaults = [];
    },
    /** The fault an entry of `action` meets, if any (one use of it). */
    entry(action: string, entry: Readonly<Record<string, unknown>>): AwsError | undefined {
      const fault = entryFaults.find((f) => f.action === action && f.left > 0 && (f.match?.(entry) ?? true));
      if (!fault) return undefined;
      fault.left -= 1;
      const code = fault.code ?? 'InternalError';
      const sender = fault.senderFault ?? false;
      return new AwsError(sender ? 400 : 500, code, `injected failure of this entry (${code})`);
    },
    /** The fault a call of `action` meets, if any (one use of it). */
    request(action: string): AwsError | undefined {
      const fault = requestFaults.find((f) => f.action === action && f.left > 0);
      if (!fault) return undefined;
      fault.left -= 1;
      const code = fault.code ?? 'InternalError';
      return new AwsError(fault.status ?? 500, code, `injected failure of this call (${code})`);
    },
  };
}

const md5Hex = (data: Buffer | string): string => createHash('md5').update(data).digest('hex');

function lengthPrefixed(data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
}

/** MD5OfMessageAttributes, as SQS computes it (names sorted; length-prefixed name, type, transport byte, value). */
export function md5OfMessageAttributes(attributes: Record<string, AttributeValue>): string | undefined {
  const names = Object.keys(attributes).sort();
  if (names.length === 0) return undefined;
  const parts: Buffer[] = [];
  for (const name of names) {
    const value = attributes[name];
    if (!value) continue;
    parts.push(lengthPrefixed(Buffer.from(name)), lengthPrefixed(Buffer.from(value.DataType)));
    if (value.DataType.startsWith('Binary')) {
      parts.push(Buffer.from([2]), lengthPrefixed(Buffer.from(value.BinaryValue ?? '', 'base64')));
    } else {
      parts.push(Buffer.from([1]), lengthPrefixed(Buffer.from(value.StringValue ?? '')));
    }
  }
  return md5Hex(Buffer.concat(parts));
}

/**
 * The size SQS counts for a message (body + every attribute's name, type and value), by this
 * endpoint's own rule — for tests that need to know whether something would be accepted without
 * sending it. Attributes as the SDK takes them (binary values as bytes).
 */
export function sqsMessageBytes(body: string, attributes: Record<string, { DataType?: string; StringValue?: string; BinaryValue?: Uint8Array }>): number {
  const wire = Object.fromEntries(
    Object.entries(attributes).map(([name, v]) => [
      name,
      { DataType: v.DataType ?? '', ...(v.StringValue !== undefined ? { StringValue: v.StringValue } : { BinaryValue: Buffer.from(v.BinaryValue ?? new Uint8Array()).toString('base64') }) },
    ]),
  );
  return Buffer.byteLength(body) + attributeBytes(wire);
}

function attributeBytes(attributes: Record<string, AttributeValue>): number {
  let total = 0;
  for (const [name, value] of Object.entries(attributes)) {
    total += Buffer.byteLength(name) + Buffer.byteLength(value.DataType);
    total += value.StringValue !== undefined ? Buffer.byteLength(value.StringValue) : Buffer.from(value.BinaryValue ?? '', 'base64').length;
  }
  return total;
}

function checkAttributes(raw: unknown): Record<string, AttributeValue> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object') throw new AwsError(400, 'InvalidParameterValue', 'MessageAttributes must be a map');
  const out: Record<string, AttributeValue> = {};
  const entries = Object.entries(raw as Record<string, Partial<AttributeValue>>);
  if (entries.length > 10) throw new AwsError(400, 'InvalidParameterValue', 'Number of message attributes [11] exceeds the allowed maximum [10].');
  for (const [name, value] of entries) {
    const type = value.DataType;
    if (typeof type !== 'string' || !/^(String|Number|Binary)(\..+)?$/.test(type)) {
      throw new AwsError(400, 'InvalidParameterValue', `The message attribute '${name}' has an invalid message attribute type.`);
    }
    if (type.startsWith('Binary')) {
      if (typeof value.BinaryValue !== 'string') throw new AwsError(400, 'InvalidParameterValue', `The message attribute '${name}' must contain a non-empty message attribute value for message attribute type '${type}'.`);
      out[name] = { DataType: type, BinaryValue: value.BinaryValue };
    } else {
      if (typeof value.StringValue !== 'string' || value.StringValue === '') {
        throw new AwsError(400, 'InvalidParameterValue', `The message attribute '${name}' must contain a non-empty message attribute value for message attribute type '${type}'.`);
      }
      out[name] = { DataType: type, StringValue: value.StringValue };
    }
  }
  return out;
}

// SQS's character rule for bodies and String attribute values, which moto does not enforce:
// #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF. A send that breaks it is refused,
// as AWS refuses it, so a worker that would lose a dead-letter entry to it is caught here.
const SQS_FORBIDDEN_CHARACTER = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

function forbiddenCharacter(text: string): string | undefined {
  const found = SQS_FORBIDDEN_CHARACTER.exec(text)?.[0];
  return found === undefined ? undefined : `#x${(found.codePointAt(0) ?? 0).toString(16).toUpperCase()}`;
}

function checkSqsCharacters(body: string, attributes: Record<string, AttributeValue>): void {
  const inBody = forbiddenCharacter(body);
  if (inBody !== undefined) {
    throw new AwsError(
      400,
      'InvalidMessageContents',
      `Invalid binary character '${inBody}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF`,
    );
  }
  for (const [name, value] of Object.entries(attributes)) {
    const inValue = value.StringValue === undefined ? undefined : forbiddenCharacter(value.StringValue);
    if (inValue !== undefined) {
      throw new AwsError(400, 'InvalidParameterValue', `Message (user) attribute '${name}' value contains invalid binary character '${inValue}'.`);
    }
  }
}

function wantsOf(input: Record<string, unknown>): ReceiveWants {
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const system = new Set([...list(input.MessageSystemAttributeNames), ...list(input.AttributeNames)]);
  const names = list(input.MessageAttributeNames);
  return { system, all: names.includes('All') || names.includes('.*'), attributeNames: names };
}

function selectedAttributes(message: StoredMessage, want: ReceiveWants): Record<string, AttributeValue> | undefined {
  const chosen: Record<string, AttributeValue> = {};
  for (const [name, value] of Object.entries(message.attributes)) {
    const match =
      want.all ||
      want.attributeNames.some((n) => n === name || (n.endsWith('.*') && name.startsWith(n.slice(0, -1))));
    if (match) chosen[name] = value;
  }
  return Object.keys(chosen).length > 0 ? chosen : undefined;
}

function systemAttributes(message: StoredMessage, want: ReceiveWants): Record<string, string> | undefined {
  const all = want.system.has('All');
  const values: Record<string, string> = {
    ApproximateReceiveCount: String(message.receiveCount),
    SentTimestamp: String(message.sentAt),
    ApproximateFirstReceiveTimestamp: String(message.firstReceivedAt ?? message.sentAt),
    SenderId: 'AIDAFASTAWSBENCH',
  };
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) if (all || want.system.has(name)) out[name] = value;
  return Object.keys(out).length > 0 ? out : undefined;
}

function messageJson(message: StoredMessage, want: ReceiveWants): Record<string, unknown> {
  const attributes = selectedAttributes(message, want);
  return {
    MessageId: message.id,
    ReceiptHandle: message.receipt,
    MD5OfBody: message.md5OfBody,
    Body: message.body,
    ...(systemAttributes(message, want) ? { Attributes: systemAttributes(message, want) } : {}),
    ...(attributes ? { MessageAttributes: attributes, MD5OfMessageAttributes: md5OfMessageAttributes(attributes) } : {}),
  };
}

function integerIn(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new AwsError(400, 'InvalidParameterValue', `Value ${String(value)} for parameter ${name} is invalid. Reason: must be between ${min} and ${max}.`);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// S3 model

interface StoredObject {
  body: Buffer;
  contentType: string;
  metadata: Record<string, string>;
  etag: string;
  lastModified: Date;
  checksums: Record<string, string>;
}

const xmlEscape = (s: string): string =>
  s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c);

/** Decodes an `aws-chunked` body (signed or unsigned chunks, optional trailing checksum headers). */
function decodeAwsChunked(raw: Buffer): { body: Buffer; trailers: Record<string, string> } {
  const chunks: Buffer[] = [];
  const trailers: Record<string, string> = {};
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) throw new AwsError(400, 'IncompleteBody', 'aws-chunked body ends early');
    const size = Number.parseInt(raw.subarray(at, eol).toString('latin1').split(';')[0] ?? '', 16);
    if (!Number.isInteger(size) || size < 0) throw new AwsError(400, 'InvalidRequest', 'bad aws-chunked chunk size');
    at = eol + 2;
    if (size === 0) break;
    chunks.push(raw.subarray(at, at + size));
    at += size + 2;
  }
  for (const line of raw.subarray(at).toString('latin1').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { body: Buffer.concat(chunks), trailers };
}

const CHECKSUM_HEADERS = ['x-amz-checksum-crc32', 'x-amz-checksum-crc32c', 'x-amz-checksum-crc64nvme', 'x-amz-checksum-sha1', 'x-amz-checksum-sha256'];

function verifyChecksum(name: string, expected: string, body: Buffer): void {
  let actual: string | undefined;
  if (name === 'x-amz-checksum-sha256') actual = createHash('sha256').update(body).digest('base64');
  else if (name === 'x-amz-checksum-sha1') actual = createHash('sha1').update(body).digest('base64');
  else if (name === 'x-amz-checksum-crc32') {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(crc32(body) >>> 0);
    actual = b.toString('base64');
  }
  // crc32c / crc64nvme are stored and returned but not verified here.
  if (actual !== undefined && actual !== expected) {
    throw new AwsError(400, 'BadDigest', `The ${name.slice('x-amz-checksum-'.length).toUpperCase()} you specified did not match the calculated checksum.`);
  }
}

/** A single `bytes=` range, as S3 reads it: undefined for none (or one it ignores). */
function rangeOf(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, from = '', to = ''] = match;
  if (from === '' && to === '') return undefined;
  if (from === '') {
    const suffix = Number(to);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(from);
  if (start >= size) return 'unsatisfiable';
  const end = to === '' ? size - 1 : Math.min(Number(to), size - 1);
  if (end < start) return undefined;
  return { start, end };
}

// ---------------------------------------------------------------------------------------------
// The server

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startFastAws(options: FastAwsOptions = {}): Promise<FastAws> {
  const events = new EventEmitter();
  const queues = new Map<string, Queue>();
  const buckets = new Map<string, Map<string, StoredObject>>();
  const imdsTokens = new Map<string, number>();
  const secrets = new Map<string, { text: string; versionId: string; createdAt: number }>();
  let requests: Record<string, number> = {};
  let billed: Record<string, number> = {};
  const faults = faultBook();
  let endpoint = '';
  const state = { delayMs: options.delayMs ?? 15 };
  const count = (action: string) => {
    requests[action] = (requests[action] ?? 0) + 1;
  };
  const bill = (action: string, n: number) => {
    billed[action] = (billed[action] ?? 0) + n;
  };

  // --- SQS -----------------------------------------------------------------------------------

  const queueByUrl = (url: unknown): Queue => {
    if (typeof url !== 'string') throw new AwsError(400, 'MissingParameter', 'The request must contain the parameter QueueUrl.');
    const name = url.split('/').filter(Boolean).pop() ?? '';
    const queue = queues.get(name);
    if (!queue) throw new AwsError(400, 'QueueDoesNotExist', 'The specified queue does not exist.', 'AWS.SimpleQueueService.NonExistentQueue');
    return queue;
  };

  const redriveOf = (queue: Queue): { target: Queue; max: number } | undefined => {
    const policy = queue.attributes.RedrivePolicy;
    if (!policy) return undefined;
    const { deadLetterTargetArn, maxReceiveCount } = JSON.parse(policy) as { deadLetterTargetArn?: string; maxReceiveCount?: number | string };
    const target = queues.get(String(deadLetterTargetArn).split(':').pop() ?? '');
    return target ? { target, max: Number(maxReceiveCount) } : undefined;
  };

  const wake = (queue: Queue, message: StoredMessage, at: number) => {
    clearTimeout(message.timer);
    message.timer = undefined;
    const delay = at - Date.now();
    if (delay <= 0) {
      setImmediate(() => pump(queue));
      return;
    }
    message.timer = setTimeout(() => {
      message.timer = undefined;
      // Timers run on the event loop's cached clock and may fire a little before `at` as Date.now()
      // reads it; pumped then, the message would still be hidden and no timer left to show it.
      if (Date.now() < at) wake(queue, message, at);
      else pump(queue);
    }, delay);
    message.timer.unref();
  };

  /** Up to `max` visible messages, now in flight under new receipt handles. Applies the redrive policy. */
  const take = (queue: Queue, max: number, visibility: number): StoredMessage[] => {
    const now = Date.now();
    const got: StoredMessage[] = [];
    const redrive = redriveOf(queue);
    for (const message of queue.messages.values()) {
      if (got.length >= max) break;
      if (message.visibleAt > now) continue;
      if (redrive && message.receiveCount >= redrive.max) {
        // As SQS does: a message received maxReceiveCount times moves to the dead-letter queue.
        queue.messages.delete(message.id);
        clearTimeout(message.timer);
        message.receipt = undefined;
        message.visibleAt = now;
        redrive.target.messages.set(message.id, message);
        setImmediate(() => pump(redrive.target));
        continue;
      }
      message.receiveCount += 1;
      message.firstReceivedAt ??= now;
      message.receipt = Buffer.from(`${queue.name}\n${message.id}\n${randomBytes(12).toString('hex')}`).toString('base64url');
      message.visibleAt = now + visibility * 1000;
      wake(queue, message, message.visibleAt);
      got.push(message);
    }
    return got;
  };

  const pump = (queue: Queue) => {
    while (queue.waiters.length > 0) {
      const waiter = queue.waiters[0];
      if (!waiter) break;
      const got = take(queue, waiter.max, waiter.visibility);
      if (got.length === 0) return;
      queue.waiters.shift();
      waiter.done(got);
    }
  };

  const messageByReceipt = (queue: Queue, receipt: unknown): StoredMessage | 'gone' => {
    if (typeof receipt !== 'string' || receipt === '') throw new AwsError(400, 'MissingParameter', 'The request must contain the parameter ReceiptHandle.');
    const [queueName, id, nonce] = Buffer.from(receipt, 'base64url').toString().split('\n');
    if (queueName !== queue.name || !id || !nonce) {
      throw new AwsError(400, 'ReceiptHandleIsInvalid', `The input receipt handle "${receipt}" is not a valid receipt handle.`);
    }
    const message = queue.messages.get(id);
    // Deleting a message twice succeeds, as on SQS.
    if (!message) return 'gone';
    return message;
  };

  const deleteOne = (queue: Queue, receipt: unknown) => {
    const message = messageByReceipt(queue, receipt);
    if (message === 'gone') return;
    // SQS: a stale receipt handle (the message was received again since) "succeeds, but the
    // message might not be deleted". Modelled strictly: it is not.
    if (message.receipt !== receipt) return;
    clearTimeout(message.timer);
    queue.messages.delete(message.id);
    events.emit('deleted', {
      queue: queue.name,
      messageId: message.id,
      sentAt: message.sentAt,
      firstReceivedAt: message.firstReceivedAt,
      deletedAt: Date.now(),
      receiveCount: message.receiveCount,
    } satisfies DeletedMessage);
  };

  const changeVisibility = (queue: Queue, receipt: unknown, timeout: unknown) => {
    const seconds = integerIn(timeout, 'VisibilityTimeout', 0, MAX_VISIBILITY_SECONDS, -1);
    if (seconds < 0) throw new AwsError(400, 'MissingParameter', 'The request must contain the parameter VisibilityTimeout.');
    const message = messageByReceipt(queue, receipt);
    const now = Date.now();
    // As SQS answers for a message already deleted (a heartbeat after the delete, say).
    if (message === 'gone') {
      throw new AwsError(400, 'InvalidParameterValue', `Value ${String(receipt)} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change.`);
    }
    if (message.visibleAt <= now || message.receipt === undefined) {
      throw new AwsError(400, 'MessageNotInflight', "The specified message isn't in flight.", 'AWS.SimpleQueueService.MessageNotInflight');
    }
    if (message.receipt !== receipt) {
      throw new AwsError(400, 'InvalidParameterValue', `Value ${String(receipt)} for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired.`);
    }
    message.visibleAt = now + seconds * 1000;
    wake(queue, message, message.visibleAt);
  };

  const enqueue = (queue: Queue, entry: Record<string, unknown>): Record<string, unknown> => {
    const body = entry.MessageBody;
    if (typeof body !== 'string' || body === '') throw new AwsError(400, 'MissingParameter', 'The request must contain the parameter MessageBody.');
    const attributes = checkAttributes(entry.MessageAttributes);
    checkSqsCharacters(body, attributes);
    const size = Buffer.byteLength(body) + attributeBytes(attributes);
    if (size > SQS_MAX_MESSAGE_BYTES) {
      throw new AwsError(400, 'InvalidParameterValue', `One or more parameters are invalid. Reason: Message must be shorter than ${SQS_MAX_MESSAGE_BYTES} bytes.`);
    }
    const delay = integerIn(entry.DelaySeconds, 'DelaySeconds', 0, 900, Number(queue.attributes.DelaySeconds ?? 0));
    const now = Date.now();
    const message: StoredMessage = {
      id: randomUUID(),
      body,
      md5OfBody: md5Hex(body),
      attributes,
      md5OfAttributes: md5OfMessageAttributes(attributes),
      sentAt: now,
      firstReceivedAt: undefined,
      receiveCount: 0,
      visibleAt: now + delay * 1000,
      receipt: undefined,
      timer: undefined,
    };
    queue.messages.set(message.id, message);
    wake(queue, message, message.visibleAt);
    return {
      MessageId: message.id,
      MD5OfMessageBody: message.md5OfBody,
      ...(message.md5OfAttributes ? { MD5OfMessageAttributes: message.md5OfAttributes } : {}),
    };
  };

  const queueAttributes = (queue: Queue, names: readonly string[]): Record<string, string> => {
    const now = Date.now();
    let visible = 0;
    let inFlight = 0;
    let delayed = 0;
    for (const m of queue.messages.values()) {
      if (m.visibleAt <= now) visible += 1;
      else if (m.receipt !== undefined) inFlight += 1;
      else delayed += 1;
    }
    const all: Record<string, string> = {
      QueueArn: queue.arn,
      ApproximateNumberOfMessages: String(visible),
      ApproximateNumberOfMessagesNotVisible: String(inFlight),
      ApproximateNumberOfMessagesDelayed: String(delayed),
      CreatedTimestamp: String(Math.floor(queue.createdAt / 1000)),
      LastModifiedTimestamp: String(Math.floor(queue.createdAt / 1000)),
      VisibilityTimeout: '30',
      MaximumMessageSize: String(SQS_MAX_MESSAGE_BYTES),
      MessageRetentionPeriod: '345600',
      DelaySeconds: '0',
      ReceiveMessageWaitTimeSeconds: '0',
      SqsManagedSseEnabled: 'true',
      ...queue.attributes,
    };
    if (names.includes('All')) return all;
    return Object.fromEntries(names.filter((n) => all[n] !== undefined).map((n) => [n, all[n] ?? '']));
  };

  type SqsAnswer = Record<string, unknown> | Promise<Record<string, unknown>>;
  const sqsActions: Record<string, (input: Record<string, unknown>, res: ServerResponse, started: number) => SqsAnswer> = {
    CreateQueue: (input) => {
      const name = input.QueueName;
      if (typeof name !== 'string' || !/^[A-Za-z0-9_-]{1,80}$/.test(name)) {
        throw new AwsError(400, 'InvalidParameterValue', 'Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length');
      }
      if (name.endsWith('.fifo')) throw new AwsError(400, 'UnsupportedOperation', 'FIFO queues are not supported by this endpoint.');
      let queue = queues.get(name);
      if (!queue) {
        queue = {
          name,
          url: `${endpoint}/${FAST_AWS_ACCOUNT}/${name}`,
          arn: `arn:aws:sqs:${REGION}:${FAST_AWS_ACCOUNT}:${name}`,
          createdAt: Date.now(),
          attributes: {},
          messages: new Map(),
          waiters: [],
        };
        queues.set(name, queue);
      }
      for (const [k, v] of Object.entries((input.Attributes ?? {}) as Record<string, string>)) queue.attributes[k] = String(v);
      return { QueueUrl: queue.url };
    },
    GetQueueUrl: (input) => {
      const queue = queues.get(String(input.QueueName));
      if (!queue) throw new AwsError(400, 'QueueDoesNotExist', 'The specified queue does not exist.', 'AWS.SimpleQueueService.NonExistentQueue');
      return { QueueUrl: queue.url };
    },
    GetQueueAttributes: (input) => {
      const queue = queueByUrl(input.QueueUrl);
      const names = Array.isArray(input.AttributeNames) ? (input.AttributeNames as string[]) : [];
      const attributes = queueAttributes(queue, names);
      return Object.keys(attributes).length > 0 ? { Attributes: attributes } : {};
    },
    SendMessage: (input) => enqueue(queueByUrl(input.QueueUrl), input),
    SendMessageBatch: (input) => {
      const queue = queueByUrl(input.QueueUrl);
      const entries = batchEntries(input, 'SendMessageBatchRequestEntry');
      const total = entries.reduce((sum, e) => sum + Buffer.byteLength(String(e.MessageBody ?? '')) + attributeBytes(checkAttributes(e.MessageAttributes)), 0);
      if (total > SQS_MAX_BATCH_BYTES) throw new AwsError(400, 'BatchRequestTooLong', `Batch requests cannot be longer than ${SQS_MAX_BATCH_BYTES} bytes.`, 'AWS.SimpleQueueService.BatchRequestTooLong');
      return eachEntry(entries, (entry) => enqueue(queue, entry), (entry) => faults.entry('SendMessageBatch', entry));
    },
    ReceiveMessage: (input, res, started) => {
      const queue = queueByUrl(input.QueueUrl);
      const max = integerIn(input.MaxNumberOfMessages, 'MaxNumberOfMessages', 1, 10, 1);
      const wait = integerIn(input.WaitTimeSeconds, 'WaitTimeSeconds', 0, 20, Number(queue.attributes.ReceiveMessageWaitTimeSeconds ?? 0));
      const visibility = integerIn(input.VisibilityTimeout, 'VisibilityTimeout', 0, MAX_VISIBILITY_SECONDS, Number(queue.attributes.VisibilityTimeout ?? 30));
      const want = wantsOf(input);
      const answer = (messages: StoredMessage[]) => (messages.length > 0 ? { Messages: messages.map((m) => messageJson(m, want)) } : {});
      const now = take(queue, max, visibility);
      if (now.length > 0 || wait === 0) return answer(now);
      return new Promise((resolve) => {
        const waiter: Waiter = {
          max,
          visibility,
          want,
          done: (messages) => {
            clearTimeout(timer);
            res.off('close', abandoned);
            resolve(answer(messages));
          },
        };
        // The wait counts from the request's arrival; the delay was already spent.
        const timer = setTimeout(() => finish(), Math.max(0, started + wait * 1000 - Date.now()));
        const finish = () => {
          const at = queue.waiters.indexOf(waiter);
          if (at >= 0) queue.waiters.splice(at, 1);
          waiter.done([]);
        };
        // A client that gives up on its long poll must not be handed messages nobody will read.
        const abandoned = () => {
          const at = queue.waiters.indexOf(waiter);
          if (at >= 0) queue.waiters.splice(at, 1);
          clearTimeout(timer);
        };
        res.on('close', abandoned);
        queue.waiters.push(waiter);
      });
    },
    DeleteMessage: (input) => {
      deleteOne(queueByUrl(input.QueueUrl), input.ReceiptHandle);
      return {};
    },
    DeleteMessageBatch: (input) => {
      const queue = queueByUrl(input.QueueUrl);
      const entries = batchEntries(input, 'DeleteMessageBatchRequestEntry');
      return eachEntry(entries, (entry) => deleteOne(queue, entry.ReceiptHandle), (entry) => faults.entry('DeleteMessageBatch', entry));
    },
    ChangeMessageVisibility: (input) => {
      changeVisibility(queueByUrl(input.QueueUrl), input.ReceiptHandle, input.VisibilityTimeout);
      return {};
    },
    ChangeMessageVisibilityBatch: (input) => {
      const queue = queueByUrl(input.QueueUrl);
      const entries = batchEntries(input, 'ChangeMessageVisibilityBatchRequestEntry');
      return eachEntry(
        entries,
        (entry) => changeVisibility(queue, entry.ReceiptHandle, entry.VisibilityTimeout),
        (entry) => faults.entry('ChangeMessageVisibilityBatch', entry),
      );
    },
  };

  const handleSqs = async (req: IncomingMessage, res: ServerResponse, target: string, body: Buffer, started: number) => {
    const action = target.slice('AmazonSQS.'.length);
    count(`sqs:${action}`);
    const headers = { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': randomUUID() };
    try {
      const run = sqsActions[action];
      if (!run) throw new AwsError(400, 'UnsupportedOperation', `${action} is not supported by this endpoint.`, 'AWS.SimpleQueueService.UnsupportedOperation');
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new AwsError(400, 'InvalidParameterValue', 'The request body is not JSON.');
      }
      const injected = faults.request(action);
      if (injected) throw injected;
      const output = await run(input, res, started);
      bill(`sqs:${action}`, billedSqsRequests(sqsPayloadBytes(action, input, output)));
      const answer = JSON.stringify(output);
      res.writeHead(200, { ...headers, 'content-length': Buffer.byteLength(answer) });
      res.end(answer);
    } catch (e: unknown) {
      if (!(e instanceof AwsError)) throw e;
      bill(`sqs:${action}`, 1);
      const answer = JSON.stringify({ __type: `com.amazonaws.sqs#${e.code}`, message: e.message });
      res.writeHead(e.status, { ...headers, 'x-amzn-query-error': `${e.queryCode};${e.status >= 500 ? 'Receiver' : 'Sender'}`, 'content-length': Buffer.byteLength(answer) });
      res.end(answer);
    }
  };

  // --- S3 ------------------------------------------------------------------------------------

  const s3Error = (res: ServerResponse, e: AwsError, head: boolean, extra = '') => {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.code}</Code><Message>${xmlEscape(e.message)}</Message>${extra}<RequestId>${requestId}</RequestId></Error>`;
    res.writeHead(e.status, { 'content-type': 'application/xml', 'x-amz-request-id': requestId, ...(head ? {} : { 'content-length': Buffer.byteLength(xml) }) });
    res.end(head ? undefined : xml);
  };

  const objectHeaders = (object: StoredObject, withChecksums: boolean): Record<string, string> => ({
    'content-type': object.contentType,
    'content-length': String(object.body.length),
    etag: object.etag,
    'last-modified': object.lastModified.toUTCString(),
    'accept-ranges': 'bytes',
    ...Object.fromEntries(Object.entries(object.metadata).map(([k, v]) => [`x-amz-meta-${k}`, v])),
    ...(withChecksums && Object.keys(object.checksums).length > 0 ? { ...object.checksums, 'x-amz-checksum-type': 'FULL_OBJECT' } : {}),
  });

  const bucketOf = (name: string): Map<string, StoredObject> => {
    const bucket = buckets.get(name);
    if (!bucket) throw new AwsError(404, 'NoSuchBucket', 'The specified bucket does not exist');
    return bucket;
  };

  const handleS3 = (req: IncomingMessage, res: ServerResponse, url: URL, raw: Buffer) => {
    const [bucketName = '', ...rest] = url.pathname.slice(1).split('/');
    const key = decodeURIComponent(rest.join('/'));
    const method = req.method ?? 'GET';
    const head = method === 'HEAD';
    const action = bucketName === '' ? `s3:${method} /` : key === '' ? `s3:${method} bucket` : `s3:${method} object`;
    try {
      if (bucketName === '') throw new AwsError(501, 'NotImplemented', 'ListBuckets is not supported by this endpoint.');
      if (key === '') {
        if (method === 'PUT') {
          count('s3:CreateBucket');
          if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucketName)) throw new AwsError(400, 'InvalidBucketName', 'The specified bucket is not valid.');
          if (!buckets.has(bucketName)) buckets.set(bucketName, new Map());
          res.writeHead(200, { location: `/${bucketName}`, 'content-length': '0' });
          return res.end();
        }
        if (method === 'GET' && url.searchParams.get('list-type') === '2') {
          count('s3:ListObjectsV2');
          const bucket = bucketOf(bucketName);
          const prefix = url.searchParams.get('prefix') ?? '';
          const maxKeys = Math.min(1000, Number(url.searchParams.get('max-keys') ?? 1000));
          const token = url.searchParams.get('continuation-token');
          const after = token ? Buffer.from(token, 'base64url').toString() : (url.searchParams.get('start-after') ?? '');
          const keys = [...bucket.keys()].filter((k) => k.startsWith(prefix) && k > after).sort();
          const page = keys.slice(0, maxKeys);
          const truncated = keys.length > page.length;
          const contents = page
            .map((k) => {
              const o = bucket.get(k);
              if (!o) return '';
              return `<Contents><Key>${xmlEscape(k)}</Key><LastModified>${o.lastModified.toISOString()}</LastModified><ETag>${xmlEscape(o.etag)}</ETag><Size>${o.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
            })
            .join('');
          const last = page[page.length - 1];
          const xml =
            `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${xmlEscape(bucketName)}</Name>` +
            `<Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${truncated}</IsTruncated>` +
            (token ? `<ContinuationToken>${xmlEscape(token)}</ContinuationToken>` : '') +
            (truncated && last ? `<NextContinuationToken>${Buffer.from(last).toString('base64url')}</NextContinuationToken>` : '') +
            `${contents}</ListBucketResult>`;
          res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
          return res.end(xml);
        }
        if (method === 'HEAD') {
          count('s3:HeadBucket');
          bucketOf(bucketName);
          res.writeHead(200);
          return res.end();
        }
        throw new AwsError(501, 'NotImplemented', `${action} is not supported by this endpoint.`);
      }

      const bucket = bucketOf(bucketName);
      if (method === 'PUT') {
        count('s3:PutObject');
        if (req.headers['x-amz-copy-source']) throw new AwsError(501, 'NotImplemented', 'CopyObject is not supported by this endpoint.');
        const encoding = String(req.headers['content-encoding'] ?? '');
        const checksums: Record<string, string> = {};
        let body = raw;
        if (encoding.split(',').map((s) => s.trim()).includes('aws-chunked')) {
          const decoded = decodeAwsChunked(raw);
          body = decoded.body;
          for (const name of CHECKSUM_HEADERS) if (decoded.trailers[name]) checksums[name] = decoded.trailers[name];
        }
        for (const name of CHECKSUM_HEADERS) {
          const value = req.headers[name];
          if (typeof value === 'string') checksums[name] = value;
        }
        for (const [name, value] of Object.entries(checksums)) verifyChecksum(name, value, body);
        const contentMd5 = req.headers['content-md5'];
        const md5 = createHash('md5').update(body).digest();
        if (typeof contentMd5 === 'string' && contentMd5 !== md5.toString('base64')) {
          throw new AwsError(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
        }
        // The condition is checked when the write commits, so two racing writes end with one 412.
        const existing = bucket.get(key);
        if (req.headers['if-none-match'] === '*' && existing) {
          return s3Error(res, new AwsError(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold'), false, '<Condition>If-None-Match</Condition>');
        }
        const ifMatch = req.headers['if-match'];
        if (typeof ifMatch === 'string' && (!existing || existing.etag !== ifMatch)) {
          if (!existing) throw new AwsError(404, 'NoSuchKey', 'The specified key does not exist.');
          return s3Error(res, new AwsError(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold'), false, '<Condition>If-Match</Condition>');
        }
        const metadata: Record<string, string> = {};
        for (const [name, value] of Object.entries(req.headers)) {
          if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice('x-amz-meta-'.length)] = value;
        }
        const object: StoredObject = {
          body,
          contentType: String(req.headers['content-type'] ?? 'binary/octet-stream'),
          metadata,
          etag: `"${md5.toString('hex')}"`,
          lastModified: new Date(),
          checksums,
        };
        bucket.set(key, object);
        res.writeHead(200, { etag: object.etag, 'content-length': '0', ...checksums });
        return res.end();
      }
      if (method === 'GET' || method === 'HEAD') {
        count(head ? 's3:HeadObject' : 's3:GetObject');
        const object = bucket.get(key);
        if (!object) throw new AwsError(404, head ? 'NotFound' : 'NoSuchKey', 'The specified key does not exist.');
        // A read held to one version of the object (the worker's staged GET after its HEAD), as S3 does.
        const readIfMatch = req.headers['if-match'];
        if (typeof readIfMatch === 'string' && readIfMatch !== '*' && readIfMatch !== object.etag) {
          return s3Error(res, new AwsError(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold'), head, '<Condition>If-Match</Condition>');
        }
        const withChecksums = String(req.headers['x-amz-checksum-mode'] ?? '').toUpperCase() === 'ENABLED';
        const range = rangeOf(req.headers.range, object.body.length);
        if (range === 'unsatisfiable') {
          throw new AwsError(416, 'InvalidRange', 'The requested range is not satisfiable', 'InvalidRange');
        }
        if (range === undefined) {
          res.writeHead(200, objectHeaders(object, withChecksums));
          return res.end(head ? undefined : object.body);
        }
        // A part of the object: no full-object checksum (the SDK then validates nothing).
        const part = object.body.subarray(range.start, range.end + 1);
        res.writeHead(206, {
          ...objectHeaders(object, false),
          'content-length': String(part.length),
          'content-range': `bytes ${range.start}-${range.end}/${object.body.length}`,
        });
        return res.end(head ? undefined : part);
      }
      if (method === 'DELETE') {
        count('s3:DeleteObject');
        bucket.delete(key);
        res.writeHead(204);
        return res.end();
      }
      throw new AwsError(501, 'NotImplemented', `${action} is not supported by this endpoint.`);
    } catch (e: unknown) {
      if (!(e instanceof AwsError)) throw e;
      return s3Error(res, e, head, key ? `<Key>${xmlEscape(key)}</Key>` : '');
    }
  };

  // --- STS -----------------------------------------------------------------------------------

  const handleSts = (res: ServerResponse, form: URLSearchParams) => {
    const action = form.get('Action') ?? '';
    count(`sts:${action}`);
    const requestId = randomUUID();
    if (action !== 'GetCallerIdentity') {
      const xml = `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>${xmlEscape(action)} is not supported by this endpoint.</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
      res.writeHead(400, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(xml) });
      return res.end(xml);
    }
    const xml =
      '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>' +
      `<Arn>arn:aws:sts::${FAST_AWS_ACCOUNT}:assumed-role/${FAST_AWS_ROLE}/i-0fa57a55bench0000</Arn>` +
      `<UserId>AROAFASTAWSBENCH:i-0fa57a55bench0000</UserId><Account>${FAST_AWS_ACCOUNT}</Account>` +
      `</GetCallerIdentityResult><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></GetCallerIdentityResponse>`;
    res.writeHead(200, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(xml) });
    return res.end(xml);
  };

  // --- Secrets Manager ------------------------------------------------------------------------

  const handleSecrets = (res: ServerResponse, target: string, body: Buffer) => {
    const action = target.slice('secretsmanager.'.length);
    count(`secretsmanager:${action}`);
    const send = (status: number, answer: Record<string, unknown>) => {
      const text = JSON.stringify(answer);
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID(), 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (action !== 'GetSecretValue') return send(400, { __type: 'UnknownOperationException', message: `${target} is not supported by this endpoint` });
    const name = (JSON.parse(body.toString('utf8')) as { SecretId?: unknown }).SecretId;
    const secret = typeof name === 'string' ? secrets.get(name) : undefined;
    if (typeof name !== 'string' || !secret) return send(400, { __type: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." });
    return send(200, {
      ARN: `arn:aws:secretsmanager:${REGION}:${FAST_AWS_ACCOUNT}:secret:${name}-AbCdEf`,
      Name: name,
      SecretString: secret.text,
      VersionId: secret.versionId,
      VersionStages: ['AWSCURRENT'],
      CreatedDate: secret.createdAt / 1000,
    });
  };

  // --- IMDSv2 --------------------------------------------------------------------------------

  const handleImds = (req: IncomingMessage, res: ServerResponse, path: string) => {
    count('imds');
    const send = (status: number, body: string, type = 'text/plain') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return send(405, 'method not allowed');
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21_600) return send(400, 'bad ttl');
      const token = randomBytes(24).toString('base64url');
      imdsTokens.set(token, Date.now() + ttl * 1000);
      res.setHeader('x-aws-ec2-metadata-token-ttl-seconds', String(ttl));
      return send(200, token);
    }
    const token = req.headers['x-aws-ec2-metadata-token'];
    if (typeof token !== 'string' || (imdsTokens.get(token) ?? 0) < Date.now()) return send(401, 'unauthorized');
    const base = '/latest/meta-data/iam/security-credentials/';
    if (path === base) return send(200, FAST_AWS_ROLE);
    if (path === `${base}${FAST_AWS_ROLE}`) {
      return send(200, roleCredentialsDocument(6 * 3600_000), 'application/json');
    }
    return send(404, 'not found');
  };

  // --- dispatch ------------------------------------------------------------------------------

  const server = createServer((req, res) => {
    const started = Date.now();
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://fast-aws');
      if (url.pathname.startsWith('/latest/')) {
        req.resume();
        return handleImds(req, res, url.pathname);
      }
      const raw = await readBody(req);
      if (state.delayMs > 0) await sleep(Math.max(0, started + state.delayMs - Date.now()));
      if (typeof req.headers.authorization !== 'string' || !req.headers.authorization.startsWith('AWS4-HMAC-SHA256 ')) {
        count('unsigned');
        const xml = '<Error><Code>AccessDenied</Code><Message>Requests must be signed (SigV4).</Message></Error>';
        res.writeHead(403, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
        return res.end(xml);
      }
      const target = req.headers['x-amz-target'];
      if (typeof target === 'string' && target.startsWith('AmazonSQS.')) return handleSqs(req, res, target, raw, started);
      if (typeof target === 'string' && target.startsWith('secretsmanager.')) return handleSecrets(res, target, raw);
      if (typeof target === 'string') {
        count(`unsupported:${target}`);
        const answer = JSON.stringify({ __type: 'UnknownOperationException', message: `${target} is not supported by this endpoint` });
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'content-length': Buffer.byteLength(answer) });
        return res.end(answer);
      }
      const type = String(req.headers['content-type'] ?? '');
      if (req.method === 'POST' && url.pathname === '/' && type.startsWith('application/x-www-form-urlencoded')) {
        return handleSts(res, new URLSearchParams(raw.toString('utf8')));
      }
      return handleS3(req, res, url, raw);
    })().catch((e: unknown) => {
      count('internal-error');
      const text = `fast-aws internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      process.stderr.write(`${text}\n`);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(text);
    });
  });
  // Longer than any client keeps an idle socket, so a keep-alive reuse never meets a closed one.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 0;
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  endpoint = await listenOnLoopback(server);
  let stopping: Promise<void> | undefined;
  const api: FastAws = {
    endpoint,
    imdsEndpoint: endpoint,
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(v: number) {
      state.delayMs = v;
    },
    get requests() {
      return requests;
    },
    get billedRequests() {
      return billed;
    },
    failBatchEntries: (fault) => faults.addEntries(fault),
    failRequests: (fault) => faults.addRequests(fault),
    clearFaults: () => faults.clear(),
    events,
    queueDepth(name) {
      const queue = queues.get(name);
      if (!queue) throw new Error(`no queue ${name}`);
      const a = queueAttributes(queue, ['All']);
      return {
        visible: Number(a.ApproximateNumberOfMessages),
        inFlight: Number(a.ApproximateNumberOfMessagesNotVisible),
        delayed: Number(a.ApproximateNumberOfMessagesDelayed),
      };
    },
    waitingPolls(name) {
      return queues.get(name)?.waiters.length ?? 0;
    },
    releaseWaits() {
      for (const queue of queues.values()) {
        for (const waiter of queue.waiters.splice(0)) waiter.done([]);
      }
    },
    forget(prefix) {
      for (const [name, queue] of queues) {
        if (!name.startsWith(prefix)) continue;
        for (const m of queue.messages.values()) clearTimeout(m.timer);
        for (const waiter of queue.waiters.splice(0)) waiter.done([]);
        queues.delete(name);
      }
      for (const name of buckets.keys()) if (name.startsWith(prefix)) buckets.delete(name);
    },
    purge(name) {
      const bucket = buckets.get(name);
      if (bucket) {
        const n = bucket.size;
        bucket.clear();
        return n;
      }
      const queue = queues.get(name);
      if (!queue) return 0;
      const n = queue.messages.size;
      for (const m of queue.messages.values()) clearTimeout(m.timer);
      queue.messages.clear();
      return n;
    },
    putSecret(name, text) {
      if (text === undefined) secrets.delete(name);
      else secrets.set(name, { text, versionId: randomUUID(), createdAt: Date.now() });
    },
    resetCounts() {
      requests = {};
      billed = {};
    },
    stop() {
      stopping ??= new Promise<void>((done) => {
        api.releaseWaits();
        for (const queue of queues.values()) for (const m of queue.messages.values()) clearTimeout(m.timer);
        server.close(() => done());
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      });
      return stopping;
    },
  };
  return api;
}
