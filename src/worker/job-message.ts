/**
 * What happens to one message: parse it, enroll it, and decide its fate — delete it (succeeded,
 * or failed permanently and dead-lettered) or retry it later (transient). Never throws: the
 * verdict is a value and the consumer acts on it.
 */
import type { Message } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import { failed, parseJob, succeeded, type ContractLimits, type Job, type Outcome, type ParsedJob } from '../job/contract.ts';
import { describeError, failureKind, isJobError, JobError, RETRIES_EXHAUSTED, transientReason } from '../job/errors.ts';
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
  /** A monotonic clock in ms, for durations. */
  readonly now: () => number;
  /** The wall clock in epoch ms, for `issuedAt`. Default Date.now. */
  readonly clock?: () => number;
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

/**
 * Fields for a failure's log line. Errors we expect (the SDK's, the network's) are one line; anything
 * else is a bug of ours or a surprise and is logged whole, with its stack (pino's err serializer).
 */
function errorFields(e: unknown): Record<string, unknown> {
  const reason = transientReason(e);
  return reason === 'other' && !isJobError(e) ? { reason, err: e } : { reason, err: describeError(e) };
}

/** Reads the message as far as it can be trusted: signature first, then the body. Never throws. */
function readMessage(message: Message, deps: JobMessageDeps, log: Logger): { parsed: ParsedJob; signature: string } {
  const body = message.Body ?? '';
  try {
    const keys = deps.signingKeys();
    // Authenticity first: a job whose signature fails is not read at all — not even its ids, which
    // are then left out of its outcome and log lines (it is dead-lettered as it came).
    const signature = verifyJobSignature(body, message.MessageAttributes, keys);
    if (!signature.ok) return { parsed: { ok: false, error: signature.error, jobId: null, userId: null }, signature: 'invalid' };
    const limits = { ...deps.limits, requireIssuedAt: keys.current !== undefined };
    return { parsed: parseJob(body, limits, (deps.clock ?? Date.now)()), signature: signature.key };
  } catch (e: unknown) {
    // A bug of ours that this body triggers: it would fail the same way on every delivery, so it
    // ends here as an unreadable message instead of looping until the redrive policy moves it.
    log.error({ err: e }, 'the message could not be read: a bug in the worker, triggered by this body');
    const error = new JobError('INVALID_MESSAGE', `the worker could not read the message (${describeError(e).name}; see its log)`);
    return { parsed: { ok: false, error, jobId: null, userId: null }, signature: 'unread' };
  }
}

/**
 * One message's fate, exactly one verdict whatever its bytes: the few steps that could throw are
 * guarded, and a failure nobody foresaw is logged with its stack and retried.
 */
export async function processJobMessage(message: Message, deps: JobMessageDeps): Promise<MessageVerdict> {
  try {
    return await decide(message, deps);
  } catch (e: unknown) {
    const receiveCount = receiveCountOf(message);
    deps.log.error(
      { messageId: message.MessageId ?? '', receiveCount, outcome: 'retry', err: e },
      'unexpected failure while processing a message; it will be retried',
    );
    return { action: 'retry', delaySeconds: retryDelaySeconds(receiveCount, deps.retryPolicy, deps.random) };
  }
}

async function decide(message: Message, deps: JobMessageDeps): Promise<MessageVerdict> {
  const started = deps.now();
  const messageId = message.MessageId ?? '';
  const receiveCount = receiveCountOf(message);
  let log = deps.log.child({ messageId, receiveCount });
  const elapsed = () => Math.round(deps.now() - started);

  const { parsed, signature } = readMessage(message, deps, log);
  const ids = parsed.ok ? { jobId: parsed.job.jobId, userId: parsed.job.userId } : { jobId: parsed.jobId, userId: parsed.userId };
  // Which key matched (current / previous / unchecked), never the key.
  log = log.child({ ...ids, signature });

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
    const fields = { outcome: 'retry', ...errorFields(e), retryInSeconds: delaySeconds, lastAttempt: last, durationMs: elapsed() };
    // The worker's own settings are wrong (e.g. a staging bucket that does not exist): every job
    // like this one will fail until ops fix it, so it is an error, not a passing warning.
    if (transientReason(e) === 'configuration') log.error(fields, `${what}: the worker's configuration is wrong; it will be retried`);
    else log.warn(fields, `${what}; it will be retried`);
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
      log.error({ ...errorFields(publishError) }, 'could not publish the outcome of an exhausted job');
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
      log.warn(errorFields(e), 'could not delete the staged sources of a succeeded job; they are kept');
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
