// Record factories and small fakes for the unit tests. Pure: no AWS SDK clients, no network.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Message, MessageAttributeValue } from '@aws-sdk/client-sqs';
import { createLogger, type Logger } from '../../src/log.ts';
import type { ImageSource, Job } from '../../src/job/contract.ts';
import { normaliseUserId, type UserId } from '../../src/job/user-id.ts';

/** A user id known to be valid; fails the test at once if it is not. */
export function userId(raw: string): UserId {
  const result = normaliseUserId(raw);
  if (!result.ok) throw new Error(`test setup: "${raw}" is not a valid user id: ${result.reason}`);
  return result.userId;
}

/** A job message body (as an object): a valid v1 job unless overridden. */
export function jobRecord(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    jobId: 'job-0001',
    userId: 'alice',
    images: [{ data: Buffer.from('not really an image').toString('base64') }],
    ...overrides,
  };
}

/** The same, serialised: what SQS would deliver. */
export function jobBody(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify(jobRecord(overrides));
}

/** Removes one field from a job record (to test "missing"). */
export function withoutField(record: Record<string, unknown>, field: string): Record<string, unknown> {
  const copy = { ...record };
  delete copy[field];
  return copy;
}

/** A parsed job, as `parseJob` would return it. */
export function job(images: readonly ImageSource[], overrides: { jobId?: string; userId?: string } = {}): Job {
  return { version: 1, jobId: overrides.jobId ?? 'job-0001', userId: userId(overrides.userId ?? 'alice'), images };
}

export function inline(bytes: Buffer): ImageSource {
  return { kind: 'inline', data: bytes.toString('base64') };
}

/** A staged source naming `bytes` (the object the producer uploaded) by their SHA-256. */
export function staged(bucket: string, key: string, bytes: Buffer = Buffer.alloc(0)): ImageSource {
  return { kind: 's3', bucket, key, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** An SQS message as the consumer receives it. */
export function sqsMessage(overrides: Partial<Message> & { receiveCount?: number } = {}): Message {
  const { receiveCount = 1, ...rest } = overrides;
  return {
    MessageId: 'msg-0001',
    ReceiptHandle: 'receipt-0001',
    Body: jobBody(),
    Attributes: { ApproximateReceiveCount: String(receiveCount) },
    ...rest,
  };
}

export function stringAttribute(value: string, dataType = 'String'): MessageAttributeValue {
  return { DataType: dataType, StringValue: value };
}

export function binaryAttribute(value: Uint8Array): MessageAttributeValue {
  return { DataType: 'Binary', BinaryValue: value };
}

/** A logger whose JSON lines land in memory, so tests can read what was logged. */
export function memoryLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const written: string[] = [];
  const log = createLogger('trace', { write: (line: string) => void written.push(line) });
  return { log, lines: () => written.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

/** What a function threw (the test fails if it returned). */
export function thrownBy(act: () => unknown): unknown {
  try {
    act();
  } catch (e: unknown) {
    return e;
  }
  throw new Error('expected the call to throw, but it returned');
}

/** What a promise rejected with (the test fails if it resolved). */
export async function rejectionOf(act: () => Promise<unknown>): Promise<unknown> {
  try {
    await act();
  } catch (e: unknown) {
    return e;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** An error shaped like an AWS SDK v3 service exception. */
export function sdkError(name: string, httpStatusCode?: number): Error & { $fault: 'client' | 'server'; $metadata: { httpStatusCode?: number } } {
  return Object.assign(new Error(`${name} from the service`), {
    name,
    $fault: httpStatusCode !== undefined && httpStatusCode >= 500 ? ('server' as const) : ('client' as const),
    $metadata: httpStatusCode === undefined ? {} : { httpStatusCode },
  });
}

/** An error shaped like Node's network errors (`code` set, e.g. ECONNRESET). */
export function networkError(code: string): Error & { code: string } {
  return Object.assign(new Error(`read ${code}`), { code });
}

/** Lets fire-and-forget promises started by the code under test settle. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Every `.ts` file under `dir`, as full paths: for tests that read the source itself. */
export function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}
