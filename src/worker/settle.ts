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
import type { Message } from '@aws-sdk/client-sqs';
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


export async function settle(message: Message, settlement: Settlement<Judgement>, running: RunningJob, queue: JobsQueue, deps: SettleDeps): Promise<void> {
  const messageId = message.MessageId ?? '';
  const receiveCount = receiveCountOf(message);
  // Without a verdict (timed out, released), what the job had read of itself so far.
  const judgement: Judgement =
    settlement.kind === 'verdict'
      ? settlement.verdict
      : {
          ids: { jobId: running.identity?.jobId ?? null, userId: (running.identity?.userId ?? null) as Judgement['ids']['userId'] },
          signature: running.identity?.signature ?? 'unread',
          job: undefined,
          verdict: { kind: 'retry', error: undefined },
          stored: [],
        };
  const log = deps.log.child({ messageId, receiveCount, ...judgement.ids, signature: judgement.signature });
  const seconds = () => (Date.now() - running.startedAt) / 1000;
  const durationMs = () => Math.round(seconds() * 1000);

  /** Every reference the job is known to have stored: this attempt's, and an earlier one's if it may have. */
  const storedSoFar = async (): Promise<readonly StoredReference[]> => {
    const known = new Map<string, StoredReference>(judgement.stored.map((r) => [r.key, r]));
    if (judgement.job && deps.findStored && receiveCount > 1) {
      try {
        for (const r of await deps.findStored(judgement.job)) if (!known.has(r.key)) known.set(r.key, r);
      } catch (e: unknown) {
        log.warn(errorFields(e), 'could not list what an earlier attempt of the job stored');
      }
    }
    return [...known.values()];
  };

  const removeFromQueue = async () => {
    try {
      await queue.delete(message);
    } catch (e: unknown) {
      log.warn(errorFields(e), 'the message could not be deleted; it will be received again (a no-op: writes are idempotent)');
    }
  };

  const retryLater = async (error: unknown, what: string, options: { complete?: boolean; level?: 'warn' | 'error'; extra?: Record<string, unknown> } = {}) => {
    const delaySeconds = retryDelaySeconds(receiveCount, deps.retryPolicy(), deps.random);
    const last = deps.maxReceiveCount !== undefined && receiveCount >= deps.maxReceiveCount;
    const fields = errorFields(error);
    try {
      await queue.setVisibility(message, delaySeconds);
    } catch (e: unknown) {
      log.warn(errorFields(e), 'the retry delay could not be set; the message comes back after its visibility timeout');
    }
    // The worker's own settings are wrong (e.g. a staging bucket that does not exist): every job
    // like this one will fail until ops fix it, so it is an error, not a passing warning.
    const level = options.level ?? (fields.reason === 'configuration' ? 'error' : 'warn');
    const suffix = fields.reason === 'configuration' ? ": the worker's configuration is wrong; it will be retried" : '; it will be retried';
    log[level]({ outcome: 'retry', ...fields, ...options.extra, retryInSeconds: delaySeconds, lastAttempt: last, durationMs: durationMs() }, `${what}${suffix}`);
    deps.counters.retried(fields.reason, seconds());
    // The redrive policy ends this job without us: still give its producer an outcome — unless the
    // job is stored and only its outcome failed, when "failed" would be false.
    if (last && !options.complete) {
      const outcome = failed(
        judgement.ids,
        messageId,
        { code: RETRIES_EXHAUSTED, message: `gave up after ${receiveCount} attempts: ${describeError(error).message}` },
        await storedSoFar(),
      );
      await deps.publish(outcome).catch((e: unknown) => log.error(errorFields(e), 'could not publish the outcome of an exhausted job'));
    }
  };

  switch (settlement.kind) {
    case 'released':
      try {
        await queue.setVisibility(message, 0);
      } catch (e: unknown) {
        log.warn(errorFields(e), 'a message could not be handed back; it comes back after its visibility timeout');
      }
      deps.counters.released();
      log.info('message handed back to the queue at shutdown');
      return;
    case 'timed-out':
      return retryLater(new Error(`the job outlived JOB_TIMEOUT_SECONDS (${settlement.timeoutSeconds} s)`), `the job outlived its deadline in its ${settlement.phase} phase; its work is cancelled`, {
        extra: { reason: 'timeout', phase: settlement.phase },
      });
    case 'crashed':
      return retryLater(settlement.error, 'unexpected failure while processing a message', { level: 'error' });
  }

  const { verdict } = judgement;
  switch (verdict.kind) {
    case 'retry':
      return retryLater(verdict.error, 'the job failed for now');
    case 'failed':
      return settleFailed(verdict.error);
    case 'succeeded':
      return settleSucceeded(verdict.job, verdict.enrollment);
  }

  async function settleFailed(error: JobError): Promise<void> {
    const stored = await storedSoFar();
    const outcome: Outcome = failed(judgement.ids, messageId, error, stored);
    const fields = { outcome: 'failed', code: error.code, error: error.message, ...(stored.length > 0 ? { storedReferences: stored.length } : {}) };
    try {
      if (deps.deadLetter) {
        const entry = deadLetterEntry(message, error);
        await deps.deadLetter(entry);
        await deps.publish(outcome);
        log.warn(
          {
            ...fields,
            deadLetter: 'sent',
            ...(entry.droppedAttributes.length > 0 ? { droppedAttributes: entry.droppedAttributes } : {}),
            ...(entry.errorOmitted ? { errorAttributesOmitted: true } : {}),
            durationMs: durationMs(),
          },
          'job failed',
        );
      } else {
        await deps.publish(outcome);
        // No dead-letter queue: this line is the only record of the job, so it carries all of it but the bytes.
        log.error(
          { ...fields, deadLetter: 'none', body: redactedBody(message.Body ?? ''), attributes: Object.keys(message.MessageAttributes ?? {}), durationMs: durationMs() },
          'job failed',
        );
      }
    } catch (e: unknown) {
      await retryLater(e, 'could not dead-letter a failed job');
      return;
    }
    deps.counters.failed(error.code, seconds());
    if ((FACE_CODES as readonly string[]).includes(error.code)) deps.counters.faceChecked(error.code);
    await removeFromQueue();
  }

  async function settleSucceeded(job: Job, { references, created, paths, faceCheckMs }: Enrollment): Promise<void> {
    try {
      await deps.publish(succeeded(job, messageId, references));
    } catch (e: unknown) {
      await retryLater(e, 'the job was stored but its outcome could not be published', { complete: true });
      return;
    }
    let discarded: number | undefined;
    if (deps.discardSources) {
      try {
        discarded = await deps.discardSources(job);
      } catch (e: unknown) {
        // The job succeeded: say so and keep the sources (the staging bucket's lifecycle rule removes them).
        log.warn(errorFields(e), 'could not delete the staged sources of a succeeded job; they are kept');
      }
    }
    deps.counters.succeeded(seconds());
    for (const path of paths) deps.counters.stored(path);
    for (const reference of references) if (reference.face) deps.counters.faceChecked('ok');
    log.info(
      {
        outcome: 'succeeded',
        references: references.length,
        created,
        // How each reference was made, in order: lossless (stored as received) or reencoded.
        paths,
        ...(faceCheckMs !== undefined ? { faceCheckMs } : {}),
        ...(discarded !== undefined ? { stagedSourcesDeleted: discarded } : {}),
        durationMs: durationMs(),
      },
      'job succeeded',
    );
    await removeFromQueue();
  }
}
