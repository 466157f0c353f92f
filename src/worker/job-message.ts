/**
 * One message → a verdict: is it authentic, is it a job, and what did enrolling it give. Nothing
 * here touches a queue — the verdict is a value, and `settle` (settle.ts) acts on it. Never throws:
 * whatever the bytes, the result is succeeded, failed with a code, or retry.
 */
import type { Message } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import type { Enrollment, JobPhase } from '../enroll/enroll.ts';
import { parseJob, type ContractLimits, type Job, type Reference } from '../job/contract.ts';
import { describeError, failureKind, isJobError, JobError } from '../job/errors.ts';
import { verifyJobSignature, type SigningKeys } from '../job/signature.ts';
import type { UserId } from '../job/user-id.ts';

/** What one enrollment is given by the consumer: its cancellation, and where to say what it does. */
export interface EnrollmentContext {
  readonly signal: AbortSignal;
  readonly onPhase: (phase: JobPhase) => void;
  readonly onStored: (reference: Reference) => void;
  readonly waitFor: <T>(wait: Promise<T>) => Promise<T>;
}

export interface JobMessageDeps {
  readonly limits: ContractLimits;
  /**
   * The accepted signing keys, read for every message (a reload may swap them). No current key:
   * jobs are not authenticated (ALLOW_UNSIGNED_JOBS).
   */
  readonly signingKeys: () => SigningKeys;
  readonly enroll: (job: Job, context: EnrollmentContext) => Promise<Enrollment>;
  readonly log: Logger;
  /** The wall clock in epoch ms, for `issuedAt`. Default Date.now. */
  readonly clock?: () => number;
}

export type Verdict =
  | { readonly kind: 'succeeded'; readonly job: Job; readonly enrollment: Enrollment }
  /** Permanent: the job itself is wrong. */
  | { readonly kind: 'failed'; readonly error: JobError }
  /** Transient: the world is wrong for now. */
  | { readonly kind: 'retry'; readonly error: unknown };

export interface Judgement {
  readonly ids: { readonly jobId: string | null; readonly userId: UserId | null };
  /** Which key matched: current, previous, unchecked (no key), invalid, or unread (a bug of ours). */
  readonly signature: string;
  /** The job, once it could be read. */
  readonly job: Job | undefined;
  readonly verdict: Verdict;
  /** References this attempt stored before it ended (all of them, for a success). */
  readonly stored: readonly Reference[];
}

/** Reads the message as far as it can be trusted: signature first, then the body. Never throws. */
function readMessage(message: Message, deps: JobMessageDeps, log: Logger): { parsed: ReturnType<typeof parseJob>; signature: string } {
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
    log.error({ messageId: message.MessageId ?? '', err: e }, 'the message could not be read: a bug in the worker, triggered by this body');
    const error = new JobError('INVALID_MESSAGE', `the worker could not read the message (${describeError(e).name}; see its log)`);
    return { parsed: { ok: false, error, jobId: null, userId: null }, signature: 'unread' };
  }
}

export async function judgeMessage(
  message: Message,
  deps: JobMessageDeps,
  context: Omit<EnrollmentContext, 'onStored'> & { readonly onRead?: (ids: Judgement['ids'], signature: string) => void },
): Promise<Judgement> {
  const { parsed, signature } = readMessage(message, deps, deps.log);
  context.onRead?.(parsed.ok ? { jobId: parsed.job.jobId, userId: parsed.job.userId } : { jobId: parsed.jobId, userId: parsed.userId }, signature);
  if (!parsed.ok) {
    return { ids: { jobId: parsed.jobId, userId: parsed.userId }, signature, job: undefined, verdict: { kind: 'failed', error: parsed.error }, stored: [] };
  }
  const { job } = parsed;
  const ids = { jobId: job.jobId, userId: job.userId };
  const stored: Reference[] = [];
  try {
    const enrollment = await deps.enroll(job, { ...context, onStored: (reference) => stored.push(reference) });
    return { ids, signature, job, verdict: { kind: 'succeeded', job, enrollment }, stored: enrollment.references };
  } catch (e: unknown) {
    const verdict: Verdict = failureKind(e) === 'permanent' && isJobError(e) ? { kind: 'failed', error: e } : { kind: 'retry', error: e };
    return { ids, signature, job, verdict, stored };
  }
}
