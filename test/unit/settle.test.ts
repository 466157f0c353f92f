// settle() driven directly: each settlement kind and verdict, with a queue, counters, a publisher and
// a dead-letter sender that record what was done to them, and the log read back. The message path
// tests (job-message.test.ts) go through judgeMessage first; these pin what settle alone decides:
// the no-verdict paths (released, timed out), the counters, and the fields of each log line.
import type { Message } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import type { Enrollment } from '../../src/enroll/enroll.ts';
import type { Outcome, Reference, StoredReference } from '../../src/job/contract.ts';
import { JobError, WorkerMisconfigured } from '../../src/job/errors.ts';
import type { JobsQueue, RunningJob, Settlement } from '../../src/worker/consumer.ts';
import type { DeadLetterEntry } from '../../src/worker/dead-letter.ts';
import type { Judgement } from '../../src/worker/job-message.ts';
import type { JobCounters, JobStats } from '../../src/worker/metrics.ts';
import { redactedBody, settle, type SettleDeps } from '../../src/worker/settle.ts';
import { job, memoryLogger, sqsMessage, stringAttribute, userId } from './helpers.ts';

const THE_JOB = job([{ kind: 'inline', data: 'AAAA' }], { jobId: 'job-42', userId: 'alice' });
const IDS = { jobId: 'job-42', userId: userId('alice') };

const reference = (n: number, face?: Reference['face']): Reference => ({
  key: `users/alice/ref_${String(n).padStart(12, '0')}.jpg`,
  sha256: String(n).padStart(64, '0'),
  contentType: 'image/jpeg',
  bytes: 100 + n,
  ...(face ? { face } : {}),
});

type Call = [string, ...unknown[]];

/** Records every call, in order: the queue's, the counters', the publisher's and the dead-letter sender's. */
function world(options: {
  deadLetter?: 'ok' | 'none' | 'fails';
  publishFails?: boolean;
  deleteFails?: boolean;
  visibilityFails?: boolean;
  maxReceiveCount?: number;
  findStored?: () => Promise<readonly StoredReference[]>;
  discardSources?: () => Promise<number>;
} = {}) {
  const calls: Call[] = [];
  const published: Outcome[] = [];
  const deadLettered: DeadLetterEntry[] = [];
  const { log, lines } = memoryLogger();
  const queue: JobsQueue = {
    delete: async () => {
      calls.push(['delete']);
      if (options.deleteFails) throw new Error('delete refused');
    },
    setVisibility: async (_message, seconds) => {
      calls.push(['visibility', seconds]);
      if (options.visibilityFails) throw new Error('visibility refused');
    },
  };
  const counters: JobCounters = {
    stats: {} as JobStats,
    received: () => void calls.push(['received']),
    succeeded: (seconds) => void calls.push(['succeeded', typeof seconds]),
    failed: (code, seconds) => void calls.push(['failed', code, typeof seconds]),
    retried: (reason, seconds) => void calls.push(['retried', reason, typeof seconds]),
    released: () => void calls.push(['released']),
    stored: (path) => void calls.push(['stored', path]),
    faceChecked: (result) => void calls.push(['faceChecked', result]),
  };
  const mode = options.deadLetter ?? 'ok';
  const deps: SettleDeps = {
    deadLetter:
      mode === 'none'
        ? undefined
        : async (entry) => {
            if (mode === 'fails') throw new Error('dead-letter queue refused');
            deadLettered.push(entry);
          },
    publish: async (outcome) => {
      if (options.publishFails) throw new Error('result queue refused');
      published.push(outcome);
    },
    ...(options.findStored ? { findStored: options.findStored } : {}),
    ...(options.discardSources ? { discardSources: options.discardSources } : {}),
    retryPolicy: () => ({ baseSeconds: 10, maxSeconds: 900 }),
    maxReceiveCount: options.maxReceiveCount,
    counters,
    log,
    random: () => 0,
  };
  return { calls, published, deadLettered, lines, queue, deps: deps as SettleDeps };
}

function running(overrides: Partial<RunningJob> = {}): RunningJob {
  return { signal: new AbortController().signal, startedAt: Date.now(), phase: 'download', waitFor: (w) => w, ...overrides };
}

const judged = (verdict: Judgement['verdict'], stored: readonly Reference[] = []): Settlement<Judgement> => ({
  kind: 'verdict',
  verdict: { ids: IDS, signature: 'current', job: THE_JOB, verdict, stored },
});

const succeededWith = (enrollment: Enrollment): Settlement<Judgement> => judged({ kind: 'succeeded', job: THE_JOB, enrollment });

async function run(message: Message, settlement: Settlement<Judgement>, w: ReturnType<typeof world>, job: RunningJob = running()): Promise<void> {
  await settle(message, settlement, job, w.queue, w.deps);
}

describe('settle: released at shutdown', () => {
  it('hands the message back at once, counts it released and logs the ids the job had read', async () => {
    // Prepare
    const w = world();
    const job = running({ identity: { jobId: 'job-42', userId: 'alice', signature: 'previous' } });

    // Act
    await run(sqsMessage({ MessageId: 'm-1' }), { kind: 'released' }, w, job);

    // Assess
    expect(w.calls).toEqual([['visibility', 0], ['released']]);
    expect(w.published).toEqual([]);
    expect(w.lines()).toEqual([expect.objectContaining({ level: 'info', messageId: 'm-1', jobId: 'job-42', userId: 'alice', signature: 'previous' })]);
  });

  it('still counts it released, and warns, when the queue refuses to hand it back', async () => {
    // Prepare
    const w = world({ visibilityFails: true });

    // Act
    await run(sqsMessage(), { kind: 'released' }, w);

    // Assess
    expect(w.calls).toEqual([['visibility', 0], ['released']]);
    expect(w.lines().map((l) => l.level)).toEqual(['warn', 'info']);
  });

  it('logs null ids and an unread signature for a job that had read nothing of itself', async () => {
    // Prepare
    const w = world();

    // Act
    await run(sqsMessage(), { kind: 'released' }, w);

    // Assess
    expect(w.lines()[0]).toMatchObject({ jobId: null, userId: null, signature: 'unread' });
  });
});

describe('settle: timed out', () => {
  it('retries after the backoff, logging the phase, the timeout reason and the ids the job had read', async () => {
    // Prepare
    const w = world();
    const job = running({ identity: { jobId: 'job-42', userId: 'alice', signature: 'current' } });

    // Act
    await run(sqsMessage({ receiveCount: 2 }), { kind: 'timed-out', phase: 'write', timeoutSeconds: 30 }, w, job);

    // Assess
    // Counted as metrics.ts documents it: enrollment_jobs_retried_total{reason="timeout"}.
    expect(w.calls).toEqual([['visibility', 10], ['retried', 'timeout', 'number']]);
    expect(w.lines()).toEqual([
      expect.objectContaining({ level: 'warn', outcome: 'retry', reason: 'timeout', phase: 'write', retryInSeconds: 10, lastAttempt: false, jobId: 'job-42', userId: 'alice' }),
    ]);
    // One line, no stack: a deadline is not a bug.
    expect(w.lines()[0]?.err).toEqual({ name: 'Error', message: 'the job outlived JOB_TIMEOUT_SECONDS (30 s)' });
  });

  it('on the last attempt publishes RETRIES_EXHAUSTED with the ids the job had read and the deadline in the message', async () => {
    // Prepare
    const w = world({ maxReceiveCount: 3 });
    const job = running({ identity: { jobId: 'job-42', userId: 'alice', signature: 'current' } });

    // Act
    await run(sqsMessage({ MessageId: 'm-3', receiveCount: 3 }), { kind: 'timed-out', phase: 'decode', timeoutSeconds: 30 }, w, job);

    // Assess
    expect(w.published).toEqual([
      {
        version: 1,
        jobId: 'job-42',
        userId: 'alice',
        messageId: 'm-3',
        status: 'failed',
        error: { code: 'RETRIES_EXHAUSTED', message: 'gave up after 3 attempts: the job outlived JOB_TIMEOUT_SECONDS (30 s)' },
      },
    ]);
  });
});

describe('settle: retries', () => {
  it('logs a crash as an error and a transient failure as a warning, and counts both by reason', async () => {
    // Prepare
    const crashed = world();
    const transient = world();

    // Act
    await run(sqsMessage(), { kind: 'crashed', error: new TypeError('x is undefined') }, crashed);
    await run(sqsMessage(), judged({ kind: 'retry', error: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) }), transient);

    // Assess
    expect(crashed.lines().map((l) => [l.level, l.reason])).toEqual([['error', 'other']]);
    expect(crashed.calls).toEqual([['visibility', 5], ['retried', 'other', 'number']]);
    expect(transient.lines().map((l) => [l.level, l.reason])).toEqual([['warn', 'network']]);
    expect(transient.calls).toEqual([['visibility', 5], ['retried', 'network', 'number']]);
  });

  it("says the worker's configuration is wrong when that is why the job failed", async () => {
    // Prepare
    const w = world();

    // Act
    await run(sqsMessage(), judged({ kind: 'retry', error: new WorkerMisconfigured('STAGING_BUCKET', 'the staging bucket does not exist') }), w);

    // Assess
    expect(w.lines()).toEqual([
      expect.objectContaining({ level: 'error', reason: 'configuration', msg: "the job failed for now: the worker's configuration is wrong; it will be retried" }),
    ]);
  });

  it('says it will be retried, without blaming the configuration, for any other reason', async () => {
    // Prepare
    const w = world();

    // Act
    await run(sqsMessage(), judged({ kind: 'retry', error: new Error('boom') }), w);

    // Assess
    expect(w.lines()[0]?.msg).toBe('the job failed for now; it will be retried');
  });

  it('is not the last attempt without a redrive policy, whatever the receive count', async () => {
    // Prepare
    const w = world();

    // Act
    await run(sqsMessage({ receiveCount: 1000 }), judged({ kind: 'retry', error: new Error('boom') }), w);

    // Assess
    expect(w.lines()[0]).toMatchObject({ lastAttempt: false });
    expect(w.published).toEqual([]);
  });

  it('warns and carries on when the retry delay cannot be set', async () => {
    // Prepare
    const w = world({ visibilityFails: true });

    // Act
    await run(sqsMessage(), judged({ kind: 'retry', error: new Error('boom') }), w);

    // Assess
    expect(w.lines().map((l) => [l.level, l.outcome])).toEqual([
      ['warn', undefined],
      ['warn', 'retry'],
    ]);
    expect(w.calls.at(-1)).toEqual(['retried', 'other', 'number']);
  });
});

describe('settle: failed', () => {
  it('dead-letters, publishes, counts the code and deletes, in that order', async () => {
    // Prepare
    const w = world();

    // Act
    await run(sqsMessage(), judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'images[0] is not an image') }), w);

    // Assess
    expect(w.deadLettered).toHaveLength(1);
    expect(w.published).toHaveLength(1);
    expect(w.calls).toEqual([['failed', 'INVALID_IMAGE', 'number'], ['delete']]);
    expect(w.lines()).toEqual([expect.objectContaining({ level: 'warn', outcome: 'failed', code: 'INVALID_IMAGE', deadLetter: 'sent', durationMs: expect.any(Number) })]);
    expect(w.lines()[0]).not.toHaveProperty('storedReferences');
    expect(w.lines()[0]).not.toHaveProperty('droppedAttributes');
    expect(w.lines()[0]).not.toHaveProperty('errorAttributesOmitted');
  });

  it('counts a face code as a face check result too, and no other code', async () => {
    // Prepare
    const face = world();
    const other = world();

    // Act
    await run(sqsMessage(), judged({ kind: 'failed', error: new JobError('NO_FACE', 'images[0] shows no face') }), face);
    await run(sqsMessage(), judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'images[0] is not an image') }), other);

    // Assess
    expect(face.calls).toEqual([['failed', 'NO_FACE', 'number'], ['faceChecked', 'NO_FACE'], ['delete']]);
    expect(other.calls).toEqual([['failed', 'INVALID_IMAGE', 'number'], ['delete']]);
  });

  it('names the attributes it had to drop to make room for the error ones', async () => {
    // Prepare
    const w = world();
    const attributes = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`attr${i}`, stringAttribute(`v${i}`)]));

    // Act
    await run(sqsMessage({ MessageAttributes: attributes }), judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'bad') }), w);

    // Assess
    expect(w.lines()[0]).toMatchObject({ droppedAttributes: ['attr8', 'attr9'] });
  });

  it('lists, on a later attempt, what an earlier one stored, with this attempt\'s references, once each', async () => {
    // Prepare
    const w = world({ findStored: async () => [reference(1), reference(2)] });

    // Act
    await run(sqsMessage({ MessageId: 'm-5', receiveCount: 2 }), judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'bad') }, [reference(2), reference(3)]), w);

    // Assess
    expect(w.published[0]).toMatchObject({ status: 'failed', references: [reference(2), reference(3), reference(1)] });
    expect(w.lines()[0]).toMatchObject({ storedReferences: 3 });
  });

  it("keeps this attempt's record of a reference an earlier attempt also stored", async () => {
    // Prepare: the listing knows the key but not the size; this attempt knows both.
    const { bytes: _, ...listed } = reference(2);
    const w = world({ findStored: async () => [listed] });

    // Act
    await run(sqsMessage({ receiveCount: 2 }), judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'bad') }, [reference(2)]), w);

    // Assess
    expect(w.published[0]).toMatchObject({ references: [reference(2)] });
  });

  it('says in its log line when the error attributes did not fit beside the body', async () => {
    // Prepare
    const w = world();

    // Act
    await run(sqsMessage({ Body: 'x'.repeat(1024 * 1024) }), judged({ kind: 'failed', error: new JobError('INVALID_MESSAGE', 'too big') }), w);

    // Assess
    expect(w.lines()[0]).toMatchObject({ deadLetter: 'sent', errorAttributesOmitted: true });
  });

  it('settles a message SQS gave no id with an empty messageId', async () => {
    // Prepare
    const w = world();
    const { MessageId: _, ...noId } = sqsMessage();

    // Act
    await run(noId, judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'bad') }), w);

    // Assess
    expect(w.published[0]).toMatchObject({ messageId: '' });
  });

  it('does not look for an earlier attempt on the first one', async () => {
    // Prepare
    let asked = false;
    const w = world({
      findStored: async () => {
        asked = true;
        return [reference(1)];
      },
    });

    // Act
    await run(sqsMessage({ receiveCount: 1 }), judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'bad') }), w);

    // Assess
    expect(asked).toBe(false);
    expect(w.published[0]).not.toHaveProperty('references');
  });

  it("still fails the job, with this attempt's references, when listing an earlier attempt's fails", async () => {
    // Prepare
    const w = world({ findStored: async () => Promise.reject(new Error('list refused')) });

    // Act
    await run(sqsMessage({ receiveCount: 2 }), judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'bad') }, [reference(4)]), w);

    // Assess
    expect(w.published[0]).toMatchObject({ status: 'failed', references: [reference(4)] });
    expect(w.lines().map((l) => l.level)).toEqual(['warn', 'warn']);
    expect(w.calls.at(-1)).toEqual(['delete']);
  });

  it('retries, counting no failure, when the dead-letter send fails', async () => {
    // Prepare
    const w = world({ deadLetter: 'fails' });

    // Act
    await run(sqsMessage(), judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'bad') }), w);

    // Assess
    expect(w.calls).toEqual([['visibility', 5], ['retried', 'other', 'number']]);
    expect(w.lines()[0]).toMatchObject({ msg: 'could not dead-letter a failed job; it will be retried' });
  });

  it('warns, and counts the failure once, when the message cannot be deleted', async () => {
    // Prepare
    const w = world({ deleteFails: true });

    // Act
    await run(sqsMessage(), judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'bad') }), w);

    // Assess
    expect(w.calls).toEqual([['failed', 'INVALID_IMAGE', 'number'], ['delete']]);
    expect(w.lines().map((l) => l.level)).toEqual(['warn', 'warn']);
  });

  it('with no dead-letter queue, logs the redacted body and the attribute names', async () => {
    // Prepare
    const w = world({ deadLetter: 'none' });

    // Act
    await run(
      sqsMessage({ Body: JSON.stringify({ jobId: 'job-42', images: [{ data: 'AAAA' }] }), MessageAttributes: { traceId: stringAttribute('t') } }),
      judged({ kind: 'failed', error: new JobError('INVALID_IMAGE', 'bad') }),
      w,
    );

    // Assess
    expect(w.lines()).toEqual([
      expect.objectContaining({ level: 'error', deadLetter: 'none', body: { jobId: 'job-42', images: [{ data: '<4 base64 chars>' }] }, attributes: ['traceId'] }),
    ]);
  });

  it('with no dead-letter queue, logs a message without a body as an empty one', async () => {
    // Prepare
    const w = world({ deadLetter: 'none' });
    const { Body: _, ...noBody } = sqsMessage();

    // Act
    await run(noBody, judged({ kind: 'failed', error: new JobError('INVALID_MESSAGE', 'empty') }), w);

    // Assess
    expect(w.lines()[0]).toMatchObject({ body: '<0 bytes, not JSON>', attributes: [] });
  });
});

describe('settle: acting on a verdict runs under the job\'s deadline', () => {
  it('a publish still hanging when the deadline passes is cut short: the job is retried as timed out, not deleted', async () => {
    // Prepare
    const w = world();
    const deadline = new AbortController();
    w.deps = { ...w.deps, publish: () => new Promise<void>(() => {}) };
    const enrollment: Enrollment = { references: [reference(1)], created: 1, paths: ['rebuilt'] };

    // Act
    const settling = run(sqsMessage({ MessageId: 'm-8' }), succeededWith(enrollment), w, running({ signal: deadline.signal }));
    deadline.abort(Object.assign(new Error('the job outlived JOB_TIMEOUT_SECONDS (25 s) in its outcome phase'), { name: 'TimeoutError' }));
    await settling;

    // Assess
    expect(w.calls).toEqual([['visibility', 5], ['retried', 'timeout', 'number']]);
    expect(w.lines()).toEqual([expect.objectContaining({ level: 'warn', outcome: 'retry', reason: 'timeout', err: expect.objectContaining({ name: 'TimeoutError' }) })]);
  });

  it('does not cut short what a timed-out settlement itself sends (its RETRIES_EXHAUSTED outcome)', async () => {
    // Prepare
    const w = world({ maxReceiveCount: 1 });
    const deadline = new AbortController();
    deadline.abort(new Error('past the deadline'));

    // Act
    await run(sqsMessage({ MessageId: 'm-9' }), { kind: 'timed-out', phase: 'decode', timeoutSeconds: 25 }, w, running({ signal: deadline.signal }));

    // Assess
    expect(w.published).toEqual([expect.objectContaining({ status: 'failed', error: expect.objectContaining({ code: 'RETRIES_EXHAUSTED' }) })]);
  });
});

describe('settle: what each way of ending says and sends', () => {
  it('says why a timed-out or crashed job is retried, in its log line', async () => {
    const timedOut = world();
    const crashed = world();

    await run(sqsMessage(), { kind: 'timed-out', phase: 'decode', timeoutSeconds: 30 }, timedOut);
    await run(sqsMessage(), { kind: 'crashed', error: new TypeError('x is undefined') }, crashed);

    expect(timedOut.lines().map((l) => l.msg)).toEqual(['the job outlived its deadline in its decode phase; its work is cancelled; it will be retried']);
    expect(crashed.lines().map((l) => l.msg)).toEqual(['unexpected failure while processing a message; it will be retried']);
  });

  it('publishes no RETRIES_EXHAUSTED outcome before the last attempt of a redrive policy', async () => {
    const w = world({ maxReceiveCount: 5 });

    await run(sqsMessage({ receiveCount: 4 }), judged({ kind: 'retry', error: new Error('reset') }), w);

    expect(w.published).toEqual([]);
    expect(w.lines()[0]).toMatchObject({ lastAttempt: false });
  });

  it('acts on no verdict whose deadline passed before settling began: it is retried as timed out', async () => {
    const w = world();
    const deadline = new AbortController();
    deadline.abort(Object.assign(new Error('the job outlived JOB_TIMEOUT_SECONDS (25 s) in its outcome phase'), { name: 'TimeoutError' }));

    await run(sqsMessage(), succeededWith({ references: [reference(1)], created: 1, paths: ['rebuilt'] }), w, running({ signal: deadline.signal }));

    expect(w.published).toEqual([]);
    expect(w.calls).toEqual([['visibility', 5], ['retried', 'timeout', 'number']]);
  });
});

describe('settle: succeeded', () => {
  it('publishes, counts the job, each reference by path and each face, logs the timings, and deletes', async () => {
    // Prepare
    const w = world();
    const face = { x: 1, y: 2, width: 30, height: 40, score: 0.9 };
    const enrollment: Enrollment = { references: [reference(1, face), reference(2)], created: 1, paths: ['rebuilt', 'reencoded'], faceCheckMs: 12 };

    // Act
    await run(sqsMessage({ MessageId: 'm-7' }), succeededWith(enrollment), w);

    // Assess
    expect(w.published).toEqual([{ version: 1, jobId: 'job-42', userId: 'alice', messageId: 'm-7', status: 'succeeded', references: enrollment.references }]);
    expect(w.calls).toEqual([['succeeded', 'number'], ['stored', 'rebuilt'], ['stored', 'reencoded'], ['faceChecked', 'ok'], ['delete']]);
    expect(w.lines()).toEqual([
      expect.objectContaining({ level: 'info', outcome: 'succeeded', references: 2, created: 1, paths: ['rebuilt', 'reencoded'], faceCheckMs: 12, durationMs: expect.any(Number) }),
    ]);
  });

  it('leaves faceCheckMs and stagedSourcesDeleted out of the line when there was no face check and no delete', async () => {
    // Prepare
    const w = world();

    // Act
    await run(sqsMessage(), succeededWith({ references: [reference(1)], created: 1, paths: ['rebuilt'] }), w);

    // Assess
    expect(w.lines()[0]).not.toHaveProperty('faceCheckMs');
    expect(w.lines()[0]).not.toHaveProperty('stagedSourcesDeleted');
  });

  it('logs the time the job took since it started, in whole milliseconds', async () => {
    // Prepare
    const w = world();
    const before = Date.now();

    // Act
    await run(sqsMessage(), succeededWith({ references: [reference(1)], created: 1, paths: ['rebuilt'] }), w, running({ startedAt: before - 5000 }));
    const after = Date.now();

    // Assess: between 5 s and 5 s plus the time the call took.
    const durationMs = w.lines()[0]?.durationMs as number;
    expect(Number.isInteger(durationMs)).toBe(true);
    expect(durationMs).toBeGreaterThanOrEqual(5000);
    expect(durationMs).toBeLessThanOrEqual(after - before + 5000);
  });

  it('when the outcome cannot be published, retries without an exhausted outcome even on the last attempt (the job is stored)', async () => {
    // Prepare
    const w = world({ publishFails: true, maxReceiveCount: 2 });

    // Act
    await run(sqsMessage({ receiveCount: 2 }), succeededWith({ references: [reference(1)], created: 1, paths: ['rebuilt'] }), w);

    // Assess
    expect(w.calls).toEqual([['visibility', 10], ['retried', 'other', 'number']]);
    expect(w.lines()).toEqual([expect.objectContaining({ level: 'warn', lastAttempt: true, msg: 'the job was stored but its outcome could not be published; it will be retried' })]);
  });
});

describe('redactedBody: bounds', () => {
  it('keeps a string of 256 characters and replaces one of 257 by its length', () => {
    // Act
    const redacted = redactedBody(JSON.stringify({ a: 'x'.repeat(256), b: 'y'.repeat(257) }));

    // Assess
    expect(redacted).toEqual({ a: 'x'.repeat(256), b: '<257 base64 chars>' });
  });

  it('replaces a short string under `data` too, at any depth', () => {
    // Act
    const redacted = redactedBody(JSON.stringify({ images: [{ data: 'AAAA' }], data: 'BB' }));

    // Assess
    expect(redacted).toEqual({ images: [{ data: '<4 base64 chars>' }], data: '<2 base64 chars>' });
  });

  it('keeps nine levels of nesting and cuts the tenth', () => {
    // Prepare: objects nested 9 deep under the top one, then one more level.
    const nest = (levels: number): unknown => (levels === 0 ? 'leaf' : { n: nest(levels - 1) });

    // Act
    const nine = redactedBody(JSON.stringify(nest(9)));
    const ten = redactedBody(JSON.stringify(nest(10)));

    // Assess
    expect(nine).toEqual(nest(9));
    expect(JSON.stringify(ten)).toContain('"<nested too deep>"');
    expect(JSON.stringify(ten)).not.toContain('leaf');
  });

  it('counts arrays as levels of nesting too', () => {
    // Prepare
    const nest = (levels: number): unknown => (levels === 0 ? 'leaf' : [nest(levels - 1)]);

    // Act
    const ten = redactedBody(JSON.stringify(nest(10)));

    // Assess
    expect(JSON.stringify(ten)).toContain('"<nested too deep>"');
  });

  it('keeps the first 50 keys of an object', () => {
    // Prepare
    const wide = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, i]));

    // Act
    const redacted = redactedBody(JSON.stringify(wide)) as Record<string, unknown>;

    // Assess
    expect(Object.keys(redacted)).toEqual(Array.from({ length: 50 }, (_, i) => `k${i}`));
  });
});
