/**
 * What happens to one message: parse it, enroll it, and decide its fate — delete it (succeeded,
 * or failed permanently and dead-lettered) or retry it later (transient). Never throws: the
 * verdict is a value and the consumer acts on it.
 */
import type { Message } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import { failed, parseJob, succeeded, type ContractLimits, type Job, type Outcome, type ParsedJob } from '../job/contract.ts';
import { describeError, failureKind, isJobError, RETRIES_EXHAUSTED, transientReason, type JobError } from '../job/errors.ts';
import { verifyJobSignature, type SigningKeys } from '../job/signature.ts';
import type { Enrollment } from '../enroll/enroll.ts';
import { deadLetterEntry, type DeadLetterSender } from './dead-letter.ts';
import type { OutcomePublisher } from './outcomes.ts';
import { receiveCountOf, retryDelaySeconds, type RetryPolicy } from './retry.ts';

export interface JobMessageDeps {
  readonly limits: ContractLimits;
  /**
   * The accepted signing keys, read for every message (a reload may swap them). No current key:
   * jobs are not authenticated.
   */
  readonly signingKeys: () => SigningKeys;
  /**
   * DELETE_STAGED_SOURCES: deletes a succeeded job's staged sources, after its references are
   * stored and its outcome is published. Undefined: they are kept.
   */
  readonly discardSources?: (job: Job) => Promise<number>;
  readonly enroll: (job: Job) => Promise<Enrollment>;
  /** Undefined when no dead-letter queue is known: the failure is then logged in full instead. */
  readonly deadLetter: DeadLetterSender | undefined;
  readonly publish: OutcomePublisher;
  readonly retryPolicy: RetryPolicy;
  /** The jobs queue's redrive maxReceiveCount, when it has one. */
  readonly maxReceiveCount: number | undefined;
  readonly log: Logger;
  readonly now: () => number;
  readonly random?: () => number;
}

export type MessageVerdict =
  | { readonly action: 'delete'; readonly status: 'succeeded' }
  | { readonly action: 'delete'; readonly status: 'failed'; readonly code: string }
  | { readonly action: 'retry'; readonly delaySeconds: number };

// Strings longer than this are replaced by their length wherever they stand: a job that puts image
// data under a wrong field or shape must not get it into the log either.
const LOGGED_STRING_MAX = 256;

function redact(value: unknown, key: string, depth: number): unknown {
  if (typeof value === 'string') {
    return key === 'data' || value.length > LOGGED_STRING_MAX ? `<${value.length} base64 chars>` : value;
  }
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

export async function processJobMessage(message: Message, deps: JobMessageDeps): Promise<MessageVerdict> {
  const started = deps.now();
  const messageId = message.MessageId ?? '';
  const receiveCount = receiveCountOf(message);
  let log = deps.log.child({ messageId, receiveCount });
  const elapsed = () => Math.round(deps.now() - started);

  // Authenticity first: a job whose signature fails is not read at all — not even its ids, which
  // are then left out of its outcome and log lines (it is dead-lettered as it came).
  const signature = verifyJobSignature(message.Body ?? '', message.MessageAttributes, deps.signingKeys());
  const parsed: ParsedJob = signature.ok
    ? parseJob(message.Body ?? '', deps.limits)
    : { ok: false, error: signature.error, jobId: null, userId: null };
  const ids = parsed.ok ? { jobId: parsed.job.jobId, userId: parsed.job.userId } : { jobId: parsed.jobId, userId: parsed.userId };
  // Which key matched (current / previous / unchecked), never the key.
  log = log.child({ ...ids, signature: signature.ok ? signature.key : 'invalid' });

  const failPermanently = async (error: JobError): Promise<MessageVerdict> => {
    const outcome = failed(ids, messageId, error);
    try {
      await deadLetterAndPublish(message, error, outcome, deps, log, elapsed);
    } catch (e: unknown) {
      return retry(e, 'could not dead-letter a failed job');
    }
    return { action: 'delete', status: 'failed', code: error.code };
  };

  const retry = (e: unknown, what: string, stored = false): MessageVerdict => {
    const delaySeconds = retryDelaySeconds(receiveCount, deps.retryPolicy, deps.random);
    const last = deps.maxReceiveCount !== undefined && receiveCount >= deps.maxReceiveCount;
    log.warn(
      { outcome: 'retry', reason: transientReason(e), err: describeError(e), retryInSeconds: delaySeconds, lastAttempt: last, durationMs: elapsed() },
      `${what}; it will be retried`,
    );
    // Once the references are stored, a "failed" outcome would be false: say nothing instead.
    if (last && !stored) void publishExhausted(e);
    return { action: 'retry', delaySeconds };
  };

  // The redrive policy ends this job without us: still give its producer an outcome.
  const publishExhausted = async (e: unknown) => {
    const error = { code: RETRIES_EXHAUSTED, message: `gave up after ${receiveCount} attempts: ${describeError(e).message}` };
    try {
      await deps.publish(failed(ids, messageId, error));
    } catch (publishError: unknown) {
      log.error({ err: describeError(publishError) }, 'could not publish the outcome of an exhausted job');
    }
  };

  if (!parsed.ok) return failPermanently(parsed.error);

  let enrollment: Enrollment;
  try {
    enrollment = await deps.enroll(parsed.job);
  } catch (e: unknown) {
    if (failureKind(e) === 'permanent' && isJobError(e)) return failPermanently(e);
    return retry(e, 'the job failed for now');
  }

  try {
    await deps.publish(succeeded(parsed.job, messageId, enrollment.references));
  } catch (e: unknown) {
    return retry(e, 'the job was stored but its outcome could not be published', true);
  }
  let discarded: number | undefined;
  if (deps.discardSources) {
    try {
      discarded = await deps.discardSources(parsed.job);
    } catch (e: unknown) {
      // The job succeeded: say so and keep the sources (the staging bucket's lifecycle rule removes them).
      log.warn({ err: describeError(e), reason: transientReason(e) }, 'could not delete the staged sources of a succeeded job; they are kept');
    }
  }
  log.info(
    {
      outcome: 'succeeded',
      references: enrollment.references.length,
      created: enrollment.created,
      ...(discarded !== undefined ? { stagedSourcesDeleted: discarded } : {}),
      durationMs: elapsed(),
    },
    'job succeeded',
  );
  return { action: 'delete', status: 'succeeded' };
}

async function deadLetterAndPublish(
  message: Message,
  error: JobError,
  outcome: Outcome,
  deps: JobMessageDeps,
  log: Logger,
  elapsed: () => number,
): Promise<void> {
  const fields = () => ({ outcome: 'failed', code: error.code, error: error.message, durationMs: elapsed() });
  if (deps.deadLetter) {
    const entry = deadLetterEntry(message, error);
    await deps.deadLetter(entry);
    await deps.publish(outcome);
    log.warn(
      {
        ...fields(),
        deadLetter: 'sent',
        ...(entry.droppedAttributes.length > 0 ? { droppedAttributes: entry.droppedAttributes } : {}),
        ...(entry.errorOmitted ? { errorAttributesOmitted: true } : {}),
      },
      'job failed',
    );
  } else {
    await deps.publish(outcome);
    // No dead-letter queue: this line is the only record of the job, so it carries all of it but the bytes.
    log.error(
      {
        ...fields(),
        deadLetter: 'none',
        body: redactedBody(message.Body ?? ''),
        attributes: Object.keys(message.MessageAttributes ?? {}),
      },
      'job failed',
    );
  }
}
