/**
 * One message's fate, acted on in one place: the queue work, the counting and the log line.
 *
 * - succeeded → its outcome published, its staged sources deleted (DELETE_STAGED_SOURCES), the
 *   message deleted;
 * - failed (permanent) → a dead-letter entry (body and attributes unchanged, plus ErrorCode and
 *   ErrorMessage), a failed outcome (with what the job had already stored), the message deleted;
 * - retry (transient, timed out, or a bug of ours) → visible again after a backoff that grows with
 *   its receive count; on the redrive policy's last attempt, a RETRIES_EXHAUSTED outcome;
 * - released (shutdown) → visible again at once.
 * A step that fails turns the message into a retry; nothing is lost and nothing is counted twice.
 */
import type { Message, MessageAttributeValue } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import type { Enrollment } from '../enroll/enroll.ts';
import { FACE_CODES } from '../face/verdict.ts';
import { failed, succeeded, type Job, type Outcome, type StoredReference } from '../job/contract.ts';
import { describeError, JobError, RETRIES_EXHAUSTED, transientReason } from '../job/errors.ts';
import type { JobsQueue, RunningJob, Settlement } from './consumer.ts';
import { deadLetterEntry, type DeadLetterSender } from './dead-letter.ts';
import type { Judgement } from './job-message.ts';
import type { JobCounters } from './metrics.ts';
import type { OutcomePublisher } from './outcomes.ts';
import { receiveCountOf, retryDelaySeconds, type RetryPolicy } from './retry.ts';

export interface SettleDeps {
  /** Undefined when no dead-letter queue is known: the failure is then logged in full instead. */
  readonly deadLetter: DeadLetterSender | undefined;
  readonly publish: OutcomePublisher;
  /** The job's trace context (`traceparent`, `tracestate`), carried on by its dead-letter entry. */
  readonly traceAttributes?: Record<string, MessageAttributeValue>;
  /** DELETE_STAGED_SOURCES: deletes a succeeded job's staged sources. Undefined: they are kept. */
  readonly discardSources?: (job: Job) => Promise<number>;
  /** References an earlier attempt of a job left stored (for the outcome of a job that ends failed). */
  readonly findStored?: (job: Job) => Promise<readonly StoredReference[]>;
  readonly retryPolicy: () => RetryPolicy;
  /** The jobs queue's redrive maxReceiveCount, when it has one. */
  readonly maxReceiveCount: number | undefined;
  readonly counters: JobCounters;
  readonly log: Logger;
  readonly random?: () => number;
}

// Strings longer than this are replaced by their length wherever they stand: a job that puts image
// data under a wrong field or shape must not get it into the log either.
const LOGGED_STRING_MAX = 256;

function redact(value: unknown, key: string, depth: number): unknown {
  if (typeof value === 'string') return key === 'data' || value.length > LOGGED_STRING_MAX ? `<${value.length} base64 chars>` : value;
  if (typeof value !== 'object' || value === null) return value;
  if (depth > 8) return '<nested too deep>';
  if (Array.isArray(value)) return value.slice(0, 20).map((v) => redact(v, key, depth + 1));
  return Object.fromEntries(Object.entries(value).slice(0, 50).map(([k, v]) => [k, redact(v, k, depth + 1)]));
}

/** The body as far as it is safe to log: long strings and any `data` replaced by their length. */
export function redactedBody(body: string): unknown {
  try {
    return redact(JSON.parse(body), '', 0);
  } catch {
    return `<${Buffer.byteLength(body)} bytes, not JSON>`;
  }
}

/**
 * Fields for a failure's log line. Errors we expect (the SDK's, the network's) are one line; anything
 * else is a bug of ours or a surprise and is logged whole, with its stack (pino's err serializer).
 */
export function errorFields(e: unknown): { reason: string; err: unknown } {
  const reason = transientReason(e);
  return reason === 'other' && !(e instanceof JobError) ? { reason, err: e } : { reason, err: describeError(e) };
}

/** One message being settled: what every step needs. */
interface Settling {
  readonly message: Message;
  readonly messageId: string;
  readonly receiveCount: number;
  readonly judgement: Judgement;
  readonly running: RunningJob;
  readonly queue: JobsQueue;
  readonly deps: SettleDeps;
  readonly log: Logger;
}

const secondsOf = (s: Settling) => (Date.now() - s.running.startedAt) / 1000;
const durationMsOf = (s: Settling) => Math.round(secondsOf(s) * 1000);

/** Without a verdict (timed out, released, crashed): what the job had read of itself so far. */
function judgementOf(settlement: Settlement<Judgement>, running: RunningJob): Judgement {
  if (settlement.kind === 'verdict') return settlement.verdict;
  const identity = running.identity;
  return {
    ids: { jobId: identity?.jobId ?? null, userId: (identity?.userId ?? null) as Judgement['ids']['userId'] },
    signature: identity?.signature ?? 'unread',
    job: undefined,
    verdict: { kind: 'retry', error: undefined },
    stored: [],
  };
}

export async function settle(message: Message, settlement: Settlement<Judgement>, running: RunningJob, queue: JobsQueue, deps: SettleDeps): Promise<void> {
  const messageId = message.MessageId ?? '';
  const receiveCount = receiveCountOf(message);
  const judgement = judgementOf(settlement, running);
  const log = deps.log.child({ messageId, receiveCount, ...judgement.ids, signature: judgement.signature });
  const s: Settling = { message, messageId, receiveCount, judgement, running, queue, deps, log };
  switch (settlement.kind) {
    case 'released':
      return settleReleased(s);
    case 'timed-out':
      return retryLater(s, new Error(`the job outlived JOB_TIMEOUT_SECONDS (${settlement.timeoutSeconds} s)`), `the job outlived its deadline in its ${settlement.phase} phase; its work is cancelled`, {
        reason: 'timeout',
        extra: { phase: settlement.phase },
      });
    case 'crashed':
      return retryLater(s, settlement.error, 'unexpected failure while processing a message', { level: 'error' });
    case 'verdict':
      break;
  }
  const { verdict } = judgement;
  switch (verdict.kind) {
    case 'retry':
      return retryLater(s, verdict.error, 'the job failed for now');
    case 'failed':
      return settleFailed(s, verdict.error);
    case 'succeeded':
      return settleSucceeded(s, verdict.job, verdict.enrollment);
  }
}

/** Every reference the job is known to have stored: this attempt's, and an earlier one's if it may have. */
async function storedSoFar(s: Settling): Promise<readonly StoredReference[]> {
  const known = new Map<string, StoredReference>(s.judgement.stored.map((r) => [r.key, r]));
  if (s.judgement.job && s.deps.findStored && s.receiveCount > 1) {
    try {
      for (const r of await s.deps.findStored(s.judgement.job)) if (!known.has(r.key)) known.set(r.key, r);
    } catch (e: unknown) {
      s.log.warn(errorFields(e), 'could not list what an earlier attempt of the job stored');
    }
  }
  return [...known.values()];
}

async function removeFromQueue(s: Settling): Promise<void> {
  try {
    await s.queue.delete(s.message);
  } catch (e: unknown) {
    s.log.warn(errorFields(e), 'the message could not be deleted; it will be received again (a no-op: writes are idempotent)');
  }
}

async function settleReleased(s: Settling): Promise<void> {
  try {
    await s.queue.setVisibility(s.message, 0);
  } catch (e: unknown) {
    s.log.warn(errorFields(e), 'a message could not be handed back; it comes back after its visibility timeout');
  }
  s.deps.counters.released();
  s.log.info('message handed back to the queue at shutdown');
}

interface RetryOptions {
  /** The job is stored; only its outcome failed: no RETRIES_EXHAUSTED outcome, which would be false. */
  readonly complete?: boolean;
  readonly level?: 'warn' | 'error';
  /** The reason, when it is not the error's kind (a deadline): logged and counted as such. */
  readonly reason?: string;
  readonly extra?: Record<string, unknown>;
}

async function retryLater(s: Settling, error: unknown, what: string, options: RetryOptions = {}): Promise<void> {
  const { deps, receiveCount } = s;
  const delaySeconds = retryDelaySeconds(receiveCount, deps.retryPolicy(), deps.random);
  const last = deps.maxReceiveCount !== undefined && receiveCount >= deps.maxReceiveCount;
  const fields = options.reason === undefined ? errorFields(error) : { reason: options.reason, err: describeError(error) };
  try {
    await s.queue.setVisibility(s.message, delaySeconds);
  } catch (e: unknown) {
    s.log.warn(errorFields(e), 'the retry delay could not be set; the message comes back after its visibility timeout');
  }
  // The worker's own settings are wrong (e.g. a staging bucket that does not exist): every job like
  // this one will fail until ops fix it, so it is an error, not a passing warning.
  const level = options.level ?? (fields.reason === 'configuration' ? 'error' : 'warn');
  const suffix = fields.reason === 'configuration' ? ": the worker's configuration is wrong; it will be retried" : '; it will be retried';
  s.log[level]({ outcome: 'retry', ...fields, ...options.extra, retryInSeconds: delaySeconds, lastAttempt: last, durationMs: durationMsOf(s) }, `${what}${suffix}`);
  deps.counters.retried(fields.reason, secondsOf(s));
  // The redrive policy ends this job without us: still give its producer an outcome.
  if (last && !options.complete) {
    const error_ = { code: RETRIES_EXHAUSTED, message: `gave up after ${receiveCount} attempts: ${describeError(error).message}` };
    const outcome = failed(s.judgement.ids, s.messageId, error_, await storedSoFar(s));
    await deps.publish(outcome).catch((e: unknown) => s.log.error(errorFields(e), 'could not publish the outcome of an exhausted job'));
  }
}

async function settleFailed(s: Settling, error: JobError): Promise<void> {
  const { deps } = s;
  const stored = await storedSoFar(s);
  const outcome: Outcome = failed(s.judgement.ids, s.messageId, error, stored);
  const fields = { outcome: 'failed', code: error.code, error: error.message, ...(stored.length > 0 ? { storedReferences: stored.length } : {}) };
  try {
    if (deps.deadLetter) {
      const entry = deadLetterEntry(s.message, error, deps.traceAttributes);
      await deps.deadLetter(entry);
      await deps.publish(outcome);
      const dropped = entry.droppedAttributes.length > 0 ? { droppedAttributes: entry.droppedAttributes } : {};
      s.log.warn({ ...fields, deadLetter: 'sent', ...dropped, ...(entry.errorOmitted ? { errorAttributesOmitted: true } : {}), durationMs: durationMsOf(s) }, 'job failed');
    } else {
      await deps.publish(outcome);
      // No dead-letter queue: this line is the only record of the job, so it carries all of it but the bytes.
      const record = { body: redactedBody(s.message.Body ?? ''), attributes: Object.keys(s.message.MessageAttributes ?? {}) };
      s.log.error({ ...fields, deadLetter: 'none', ...record, durationMs: durationMsOf(s) }, 'job failed');
    }
  } catch (e: unknown) {
    await retryLater(s, e, 'could not dead-letter a failed job');
    return;
  }
  deps.counters.failed(error.code, secondsOf(s));
  if ((FACE_CODES as readonly string[]).includes(error.code)) deps.counters.faceChecked(error.code);
  await removeFromQueue(s);
}

async function settleSucceeded(s: Settling, job: Job, { references, created, paths, faceCheckMs }: Enrollment): Promise<void> {
  const { deps } = s;
  try {
    await deps.publish(succeeded(job, s.messageId, references));
  } catch (e: unknown) {
    await retryLater(s, e, 'the job was stored but its outcome could not be published', { complete: true });
    return;
  }
  let discarded: number | undefined;
  if (deps.discardSources) {
    try {
      discarded = await deps.discardSources(job);
    } catch (e: unknown) {
      // The job succeeded: say so and keep the sources (the staging bucket's lifecycle rule removes them).
      s.log.warn(errorFields(e), 'could not delete the staged sources of a succeeded job; they are kept');
    }
  }
  deps.counters.succeeded(secondsOf(s));
  for (const path of paths) deps.counters.stored(path);
  for (const reference of references) if (reference.face) deps.counters.faceChecked('ok');
  s.log.info(
    {
      outcome: 'succeeded',
      references: references.length,
      created,
      // How each reference was made, in order: rebuilt, turned (both from the coefficients) or reencoded.
      paths,
      ...(faceCheckMs !== undefined ? { faceCheckMs } : {}),
      ...(discarded !== undefined ? { stagedSourcesDeleted: discarded } : {}),
      durationMs: durationMsOf(s),
    },
    'job succeeded',
  );
  await removeFromQueue(s);
}
