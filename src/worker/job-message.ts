/**
 * What happens to one message: parse it, enroll it, and decide its fate — delete it (succeeded,
 * or failed permanently and dead-lettered) or retry it later (transient). Never throws: the
 * verdict is a value and the consumer acts on it.
 */
import type { Message } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import { failed, parseJob, succeeded, type ContractLimits, type Job, type Outcome } from '../job/contract.ts';
import { describeError, failureKind, isJobError, RETRIES_EXHAUSTED, transientReason, type JobError } from '../job/errors.ts';
import type { Enrollment } from '../enroll/enroll.ts';
import { deadLetterEntry, type DeadLetterSender } from './dead-letter.ts';
import type { OutcomePublisher } from './outcomes.ts';
import { receiveCountOf, retryDelaySeconds, type RetryPolicy } from './retry.ts';

export interface JobMessageDeps {
  readonly limits: ContractLimits;
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
  | { readonly action: 'delete'; readonly status: 'succeeded' | 'failed' }
  | { readonly action: 'retry'; readonly delaySeconds: number };

/** The body as far as it is safe to log: image data replaced by its length, never the bytes. */
export function redactedBody(body: string): unknown {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return `<${Buffer.byteLength(body)} bytes, not JSON>`;
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return `<${Buffer.byteLength(body)} bytes>`;
  const job = raw as Record<string, unknown>;
  const images = Array.isArray(job.images)
    ? job.images.map((image: unknown) => {
        if (typeof image !== 'object' || image === null) return typeof image;
        const { data, ...rest } = image as Record<string, unknown>;
        return data === undefined ? rest : { ...rest, data: `<${typeof data === 'string' ? data.length : typeof data} base64 chars>` };
      })
    : job.images;
  const text = JSON.stringify({ ...job, images });
  return text.length > 4096 ? `${text.slice(0, 4096)}…` : JSON.parse(text);
}

export async function processJobMessage(message: Message, deps: JobMessageDeps): Promise<MessageVerdict> {
  const started = deps.now();
  const messageId = message.MessageId ?? '';
  const receiveCount = receiveCountOf(message);
  let log = deps.log.child({ messageId, receiveCount });
  const elapsed = () => Math.round(deps.now() - started);

  const parsed = parseJob(message.Body ?? '', deps.limits);
  const ids = parsed.ok ? { jobId: parsed.job.jobId, userId: parsed.job.userId } : { jobId: parsed.jobId, userId: parsed.userId };
  log = log.child(ids);

  const failPermanently = async (error: JobError): Promise<MessageVerdict> => {
    const outcome = failed(ids, messageId, error);
    try {
      await deadLetterAndPublish(message, error, outcome, deps, log, elapsed);
    } catch (e: unknown) {
      return retry(e, 'could not dead-letter a failed job');
    }
    return { action: 'delete', status: 'failed' };
  };

  const retry = (e: unknown, what: string): MessageVerdict => {
    const delaySeconds = retryDelaySeconds(receiveCount, deps.retryPolicy, deps.random);
    const last = deps.maxReceiveCount !== undefined && receiveCount >= deps.maxReceiveCount;
    log.warn(
      { outcome: 'retry', reason: transientReason(e), err: describeError(e), retryInSeconds: delaySeconds, lastAttempt: last, durationMs: elapsed() },
      `${what}; it will be retried`,
    );
    if (last) void publishExhausted(e);
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
    return retry(e, 'the job was stored but its outcome could not be published');
  }
  log.info(
    { outcome: 'succeeded', references: enrollment.references.length, created: enrollment.created, durationMs: elapsed() },
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
