// One message through the worker's two steps — judgeMessage (what it is) and settle (what is done
// with it) — with a fake jobs queue that records what was done. The result says the message's fate
// as the queue saw it: deleted (succeeded or failed with a code) or made visible again after a delay.
// Pure: in-memory adapters only.
import type { Message } from '@aws-sdk/client-sqs';
import { Registry } from 'prom-client';
import type { Enrollment } from '../../src/enroll/enroll.ts';
import type { Job, StoredReference } from '../../src/job/contract.ts';
import type { JobsQueue, RunningJob } from '../../src/worker/consumer.ts';
import type { DeadLetterSender } from '../../src/worker/dead-letter.ts';
import { judgeMessage, type JobMessageDeps } from '../../src/worker/job-message.ts';
import { createJobCounters, type JobCounters } from '../../src/worker/metrics.ts';
import type { OutcomePublisher } from '../../src/worker/outcomes.ts';
import type { RetryPolicy } from '../../src/worker/retry.ts';
import { settle } from '../../src/worker/settle.ts';

export interface MessageDeps extends Omit<JobMessageDeps, 'enroll'> {
  readonly enroll: (job: Job) => Promise<Enrollment>;
  readonly deadLetter: DeadLetterSender | undefined;
  readonly publish: OutcomePublisher;
  readonly discardSources?: (job: Job) => Promise<number>;
  readonly findStored?: (job: Job) => Promise<readonly StoredReference[]>;
  readonly retryPolicy: RetryPolicy;
  readonly maxReceiveCount: number | undefined;
  readonly counters?: JobCounters;
  readonly random?: () => number;
}

export type Fate =
  | { readonly action: 'delete'; readonly status: 'succeeded' }
  | { readonly action: 'delete'; readonly status: 'failed'; readonly code: string }
  | { readonly action: 'retry'; readonly delaySeconds: number };

/** A running job that never times out, for unit tests of one message. */
export function runningJob(): RunningJob {
  return { signal: new AbortController().signal, startedAt: Date.now(), phase: 'download', waitFor: (wait) => wait };
}

export async function processMessage(message: Message, deps: MessageDeps): Promise<Fate> {
  const done: (['delete'] | ['visibility', number])[] = [];
  const queue: JobsQueue = {
    delete: async () => void done.push(['delete']),
    setVisibility: async (_, seconds) => void done.push(['visibility', seconds]),
  };
  const running = runningJob();
  const judgement = await judgeMessage(message, { ...deps, enroll: (job) => deps.enroll(job) }, { signal: running.signal, onPhase: () => {}, waitFor: (w) => w });
  await settle(message, { kind: 'verdict', verdict: judgement }, running, queue, {
    deadLetter: deps.deadLetter,
    publish: deps.publish,
    ...(deps.discardSources ? { discardSources: deps.discardSources } : {}),
    ...(deps.findStored ? { findStored: deps.findStored } : {}),
    retryPolicy: () => deps.retryPolicy,
    maxReceiveCount: deps.maxReceiveCount,
    counters: deps.counters ?? createJobCounters(new Registry()),
    log: deps.log,
    ...(deps.random ? { random: deps.random } : {}),
  });
  const [first, ...rest] = done;
  if (!first || rest.length > 0) throw new Error(`expected exactly one queue action, got ${JSON.stringify(done)}`);
  if (first[0] === 'visibility') return { action: 'retry', delaySeconds: first[1] };
  const { verdict } = judgement;
  return verdict.kind === 'failed' ? { action: 'delete', status: 'failed', code: verdict.error.code } : { action: 'delete', status: 'succeeded' };
}
