// The consumer (src/worker/consumer.ts) against a fake SQS client that routes by command class, with
// fake timers: receives sized to the free slots, one slot per job, batched deletes and heartbeats,
// receive backoff, deadlines, the memory budget, release at shutdown and the drain.
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMemoryBudget } from '../../src/enroll/memory.ts';
import { createConsumer, inOrderPerKey, type Consumer, type ConsumerOptions, type RunningJob, type Settlement } from '../../src/worker/consumer.ts';
import { memoryLogger } from './helpers.ts';

const MIB = 1_048_576;

type Sent = ReceiveMessageCommand | DeleteMessageBatchCommand | ChangeMessageVisibilityBatchCommand;

/** A queue in memory behind a fake client: receives take what is there, or wait like a long poll. */
function fakeSqs(options: { failReceives?: number; failPolls?: number; failVisibility?: boolean; silentReceives?: boolean } = {}) {
  const waiting: Message[] = [];
  const sent: Sent[] = [];
  let failures = options.failReceives ?? 0;
  let failedPolls = options.failPolls ?? 0;
  let wake: (() => void) | undefined;
  let next = 0;
  const client = {
    send: async (command: Sent) => {
      sent.push(command);
      if (command instanceof ReceiveMessageCommand) {
        if (failures > 0) {
          failures -= 1;
          throw Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } });
        }
        // A poll that never answers (a network that swallows it): only the consumer's own bound ends a wait for it.
        if (options.silentReceives) await new Promise<never>(() => {});
        if (waiting.length === 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, (command.input.WaitTimeSeconds ?? 0) * 1000);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
        // A poll that fails at its end (a 5xx after the long poll).
        if (failedPolls > 0) {
          failedPolls -= 1;
          throw Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } });
        }
        return { Messages: waiting.splice(0, command.input.MaxNumberOfMessages ?? 1) };
      }
      if (command instanceof DeleteMessageBatchCommand) return { Successful: (command.input.Entries ?? []).map((e) => ({ Id: e.Id })), Failed: [] };
      if (options.failVisibility) throw Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } });
      return { Successful: (command.input.Entries ?? []).map((e) => ({ Id: e.Id })), Failed: [] };
    },
  } as unknown as SQSClient;
  return {
    client,
    sent,
    add(count: number, body = 'x') {
      for (let i = 0; i < count; i += 1) {
        next += 1;
        waiting.push({ MessageId: `m-${next}`, ReceiptHandle: `r-${next}`, Body: body });
      }
      wake?.();
    },
    receives: () => sent.filter((c): c is ReceiveMessageCommand => c instanceof ReceiveMessageCommand),
    deleteBatches: () => sent.filter((c): c is DeleteMessageBatchCommand => c instanceof DeleteMessageBatchCommand),
    visibilityBatches: () => sent.filter((c): c is ChangeMessageVisibilityBatchCommand => c instanceof ChangeMessageVisibilityBatchCommand),
  };
}

/** Jobs the test finishes by hand: `decide` waits until the test says which message is done. */
function jobs() {
  const running = new Map<string, { job: RunningJob; finish: () => void; fail: (e: Error) => void }>();
  const settled: { id: string; kind: Settlement<string>['kind'] }[] = [];
  const settlements: { settlement: Settlement<string>; phase: string }[] = [];
  return {
    running,
    settled,
    settlements,
    decide: (message: Message, job: RunningJob) =>
      new Promise<string>((resolve, reject) => {
        running.set(message.MessageId ?? '', { job, finish: () => resolve(message.MessageId ?? ''), fail: (e: Error) => reject(e) });
      }),
    finish(id: string) {
      running.get(id)?.finish();
      running.delete(id);
    },
    settle: async (message: Message, settlement: Settlement<string>, job: RunningJob, queue: { delete(m: Message): Promise<void>; setVisibility(m: Message, s: number): Promise<void> }) => {
      settled.push({ id: message.MessageId ?? '', kind: settlement.kind });
      settlements.push({ settlement, phase: job.phase });
      if (settlement.kind === 'verdict') await queue.delete(message);
      else await queue.setVisibility(message, settlement.kind === 'released' ? 0 : 30);
    },
  };
}

/** A settle that holds the messages `holds` picks until the test calls `goOn`, then settles as `work` does. */
function heldSettle(work: ReturnType<typeof jobs>, holds: (message: Message, settlement: Settlement<string>) => boolean) {
  let release: (() => void) | undefined;
  const settle: ConsumerOptions<string>['settle'] = async (message, settlement, job, queue) => {
    if (holds(message, settlement)) await new Promise<void>((r) => (release = r));
    await work.settle(message, settlement, job, queue);
  };
  return { settle, goOn: () => release?.() };
}

function consumer(sqs: ReturnType<typeof fakeSqs>, work: ReturnType<typeof jobs>, overrides: Partial<ConsumerOptions<string>> = {}) {
  const { log, lines } = memoryLogger();
  const c = createConsumer<string>({
    sqs: sqs.client,
    queueUrl: 'https://sqs.us-east-1.amazonaws.com/1/jobs',
    concurrency: 16,
    visibilityTimeoutSeconds: 60,
    heartbeatIntervalSeconds: 20,
    pollWaitSeconds: 20,
    jobTimeoutMs: 25_000,
    flushAfterMs: 10,
    decide: work.decide,
    settle: work.settle,
    log,
    random: () => 0.5,
    ...overrides,
  });
  return { c, lines };
}

/** A consumer on a fake queue holding `messages` messages, started and past its first receive. */
async function started(messages: number, overrides: Partial<ConsumerOptions<string>> = {}, queue: Parameters<typeof fakeSqs>[0] = {}) {
  const sqs = fakeSqs(queue);
  const work = jobs();
  const { c, lines } = consumer(sqs, work, overrides);
  sqs.add(messages);
  c.start();
  await vi.advanceTimersByTimeAsync(0);
  return { sqs, work, c, lines };
}

/**
 * Drains with a deadline `deadlineInMs` from now, fake time running in `stepMs` steps only until the
 * drain has returned (at most `limitMs`): what it returned and how long it took.
 */
async function drainInFakeTime(c: Consumer, deadlineInMs: number, stepMs = 100, limitMs = 60_000) {
  const began = Date.now();
  let endedAt: number | undefined;
  const drained = c.drain(began + deadlineInMs);
  void drained.then(() => (endedAt = Date.now()));
  while (endedAt === undefined && Date.now() - began < limitMs) await vi.advanceTimersByTimeAsync(stepMs);
  const { unfinished } = await drained;
  return { unfinished, tookMs: (endedAt ?? Infinity) - began };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the consumer', () => {
  it('receives up to ten messages per call, sized to the free slots, and runs each in its own slot', async () => {
    // Prepare
    const sqs = fakeSqs();
    const work = jobs();
    const { c } = consumer(sqs, work);
    sqs.add(25);

    // Act
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    const first = { receives: sqs.receives().map((r) => r.input.MaxNumberOfMessages), running: work.running.size };
    for (const id of ['m-1', 'm-2', 'm-3']) work.finish(id);
    await vi.advanceTimersByTimeAsync(20);
    const afterThree = sqs.receives().length;
    work.finish('m-4');
    await vi.advanceTimersByTimeAsync(20);

    // Assess: ten, then the six free; then nothing until a quarter of the 16 slots (4) are free.
    expect(first).toEqual({ receives: [10, 6], running: 16 });
    expect(afterThree).toBe(2);
    expect(sqs.receives().map((r) => r.input.MaxNumberOfMessages)).toEqual([10, 6, 4]);
    expect(work.running.size).toBe(16);
    expect(c.health.inFlight).toBe(16);
  });

  it('lets a slow job hold only its own slot: the others finish and the slots are refilled', async () => {
    // Prepare
    const { sqs, work, c } = await started(6, { concurrency: 4 });

    // Act: m-1 is slow; m-2..m-4 finish.
    for (const id of ['m-2', 'm-3', 'm-4']) work.finish(id);
    await vi.advanceTimersByTimeAsync(20);

    // Assess
    expect([...work.running.keys()].sort()).toEqual(['m-1', 'm-5', 'm-6']);
    expect(work.settled.map((s) => s.id)).toEqual(['m-2', 'm-3', 'm-4']);
  });

  it('deletes messages settled within a few milliseconds of each other in one batch call', async () => {
    // Prepare
    const { sqs, work, c } = await started(4, { concurrency: 4 });

    // Act
    work.finish('m-1');
    await vi.advanceTimersByTimeAsync(3);
    work.finish('m-2');
    work.finish('m-3');
    await vi.advanceTimersByTimeAsync(10);

    // Assess
    expect(sqs.deleteBatches().map((b) => b.input.Entries?.map((e) => e.ReceiptHandle))).toEqual([['r-1', 'r-2', 'r-3']]);
  });

  it('keeps every running job invisible with one batched heartbeat per interval, and stops for settled ones', async () => {
    // Prepare
    const { sqs, work, c } = await started(3, { concurrency: 4, heartbeatIntervalSeconds: 20, visibilityTimeoutSeconds: 60, jobTimeoutMs: 600_000 });
    work.finish('m-3');

    // Act: three intervals (a heartbeat that beat once would pass one), then m-2 is settled.
    const perInterval: string[][] = [];
    await vi.advanceTimersByTimeAsync(10); // each heartbeat's batch goes out 10 ms (flushAfterMs) after its beat
    for (let i = 0; i < 3; i += 1) {
      await vi.advanceTimersByTimeAsync(20_000);
      perInterval.push((sqs.visibilityBatches()[i]?.input.Entries ?? []).map((e) => `${e.ReceiptHandle}:${e.VisibilityTimeout}`));
    }
    work.finish('m-2');
    await vi.advanceTimersByTimeAsync(20_000);

    // Assess: one batch per interval, each with every job still running.
    expect(perInterval).toEqual([
      ['r-1:60', 'r-2:60'],
      ['r-1:60', 'r-2:60'],
      ['r-1:60', 'r-2:60'],
    ]);
    expect(sqs.visibilityBatches().map((b) => (b.input.Entries ?? []).map((e) => e.ReceiptHandle))).toHaveLength(4);
    expect(sqs.visibilityBatches()[3]?.input.Entries?.map((e) => e.ReceiptHandle)).toEqual(['r-1']);
  });

  it('backs off after a failed receive (1 s, doubling) and logs the outage once', async () => {
    // Prepare
    const sqs = fakeSqs({ failReceives: 3 });
    const work = jobs();
    const { c, lines } = consumer(sqs, work, { pollWaitSeconds: 1 });

    // Act
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    const afterFirst = sqs.receives().length;
    await vi.advanceTimersByTimeAsync(999);
    const beforeBackoffEnds = sqs.receives().length;
    await vi.advanceTimersByTimeAsync(1 + 2_000 + 4_000);
    const receives = sqs.receives().length;
    await vi.advanceTimersByTimeAsync(1_000); // the fourth receive, a 1 s long poll, answers

    // Assess
    expect([afterFirst, beforeBackoffEnds, receives]).toEqual([1, 1, 4]);
    expect(lines().filter((l) => l.msg === 'receiving from the jobs queue failed; backing off')).toHaveLength(1);
    expect(lines().filter((l) => l.msg === 'receiving from the jobs queue works again')).toHaveLength(1);
  });

  it('settles a job past its deadline as timed out at once, cancels its work, and counts its slot as stuck until it stops', async () => {
    // Prepare
    const { sqs, work, c, lines } = await started(1, { concurrency: 2, jobTimeoutMs: 5_000 });
    const job = work.running.get('m-1')?.job;
    if (job) job.phase = 'decode';

    // Act
    await vi.advanceTimersByTimeAsync(5_000);
    const atDeadline = { settled: [...work.settled], aborted: job?.signal.aborted, stuck: c.health.stuck, lastTimeoutAt: c.health.lastTimeoutAt };
    work.finish('m-1');
    await vi.advanceTimersByTimeAsync(20);

    // Assess
    expect(atDeadline).toEqual({ settled: [{ id: 'm-1', kind: 'timed-out' }], aborted: true, stuck: 1, lastTimeoutAt: expect.any(Number) });
    expect(work.settled).toEqual([{ id: 'm-1', kind: 'timed-out' }]);
    expect(lines().filter((l) => l.msg === 'a timed-out job stopped; its late verdict is dropped')).toMatchObject([{ level: 'debug', messageId: 'm-1' }]);
    expect(c.health.stuck).toBe(0);
    expect(sqs.visibilityBatches().flatMap((b) => b.input.Entries ?? []).map((e) => e.VisibilityTimeout)).toEqual([30]);
  });

  it('does not run the deadline while a job waits its turn (waitFor)', async () => {
    // Prepare
    const { sqs, work, c } = await started(1, { concurrency: 2, jobTimeoutMs: 5_000 });
    const job = work.running.get('m-1')?.job;
    let endWait!: () => void;

    // Act: 3 s of work, 60 s waiting for memory, 1.5 s of work.
    await vi.advanceTimersByTimeAsync(3_000);
    const waiting = job?.waitFor(new Promise<void>((r) => (endWait = r)));
    await vi.advanceTimersByTimeAsync(60_000);
    endWait();
    await waiting;
    await vi.advanceTimersByTimeAsync(1_500);
    const before = [...work.settled];
    await vi.advanceTimersByTimeAsync(600);

    // Assess
    expect(before).toEqual([]);
    expect(work.settled).toEqual([{ id: 'm-1', kind: 'timed-out' }]);
  });

  it('runs the deadline on while a verdict is acted on, and keeps the message invisible meanwhile; the slot is free at once', async () => {
    // Prepare: the verdict comes after 1 s; publishing it then hangs until the job's deadline (5 s).
    const sqs = fakeSqs();
    const work = jobs();
    let cutShortAt: number | undefined;
    const started = Date.now();
    const settle = async (_m: Message, _s: Settlement<string>, job: RunningJob) => {
      await new Promise<void>((resolve) => job.signal.addEventListener('abort', () => resolve(), { once: true }));
      cutShortAt = Date.now() - started;
    };
    const { c } = consumer(sqs, work, { concurrency: 1, jobTimeoutMs: 5_000, heartbeatIntervalSeconds: 2, settle });
    sqs.add(1);
    c.start();
    await vi.advanceTimersByTimeAsync(1_000);

    // Act
    work.finish('m-1');
    await vi.advanceTimersByTimeAsync(10);
    const slotFree = c.health.inFlight;
    await vi.advanceTimersByTimeAsync(3_800);
    const beforeDeadline = cutShortAt;
    await vi.advanceTimersByTimeAsync(400);
    const beats = sqs.visibilityBatches().flatMap((b) => b.input.Entries ?? []).filter((e) => e.ReceiptHandle === 'r-1');

    // Assess
    expect(slotFree).toBe(0);
    expect(beforeDeadline).toBeUndefined();
    expect(cutShortAt).toBeGreaterThanOrEqual(5_000);
    expect(beats.length).toBeGreaterThanOrEqual(1);
    expect(c.health.lastTimeoutAt).toEqual(expect.any(Number));
  });

  it("holds room for a receive's messages through its long poll, then each message's own bytes until it is settled", async () => {
    // Prepare: room for three 1 MiB messages; two slots.
    const sqs = fakeSqs();
    const work = jobs();
    const memory = createMemoryBudget(3 * MIB);
    const { c } = consumer(sqs, work, { concurrency: 2, memory });

    // Act
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    const duringFirstPoll = memory.held;
    sqs.add(2, 'x'.repeat(600_000));
    await vi.advanceTimersByTimeAsync(0);
    const whileRunning = memory.held;
    work.finish('m-1');
    work.finish('m-2');
    await vi.advanceTimersByTimeAsync(5_000);

    // Assess: the next poll holds its room again, and nothing else is held.
    expect(duringFirstPoll).toBe(2 * MIB);
    expect(whileRunning).toBe(1_200_000);
    const nextPoll = sqs.receives().at(-1)?.input.MaxNumberOfMessages ?? 0;
    expect(sqs.receives()).toHaveLength(2);
    expect(nextPoll).toBeGreaterThan(0);
    expect(memory.held).toBe(nextPoll * MIB);
  });

  it('receives only what can be admitted: nothing while a job waits for memory, then only as many messages as fit', async () => {
    // Prepare: a 3 MiB budget; a job holds 1.5 MiB and another waits for 2 MiB.
    const sqs = fakeSqs();
    const work = jobs();
    const memory = createMemoryBudget(3 * MIB);
    const running = await memory.acquire(1.5 * MIB);
    const waiting = memory.acquire(2 * MIB);
    const { c } = consumer(sqs, work, { concurrency: 4, memory });
    sqs.add(4);

    // Act
    c.start();
    await vi.advanceTimersByTimeAsync(100);
    const receivesWhileAJobWaits = sqs.receives().length;
    running.release();
    const admitted = await waiting;
    await vi.advanceTimersByTimeAsync(100);
    const receivesBesideIt = sqs.receives().map((r) => r.input.MaxNumberOfMessages);
    const dispatched = work.running.size;
    admitted.release();

    // Assess: 1 MiB of room left beside the admitted job: one message, straight into a slot.
    expect(receivesWhileAJobWaits).toBe(0);
    expect(receivesBesideIt).toEqual([1]);
    expect(dispatched).toBe(1);
  });

  it('drains: no new receive, jobs in flight finish, the poll in flight is let finish and what it brings is handed back', async () => {
    // Prepare
    const { sqs, work, c } = await started(1, { concurrency: 4, pollWaitSeconds: 5 });

    // Act: stop while m-1 runs and a long poll is open; a message arrives into that poll.
    const drained = c.drain(Date.now() + 30_000);
    await vi.advanceTimersByTimeAsync(100);
    sqs.add(1);
    await vi.advanceTimersByTimeAsync(100);
    work.finish('m-1');
    await vi.advanceTimersByTimeAsync(6_000);
    const { unfinished } = await drained;

    // Assess
    expect(unfinished).toBe(0);
    expect(work.settled).toEqual([
      { id: 'm-2', kind: 'released' },
      { id: 'm-1', kind: 'verdict' },
    ]);
    // m-2 never ran: it is handed back in its first phase.
    expect(work.settlements.map((s) => s.phase)).toEqual(['download', 'outcome']);
    const receivesAfterStop = sqs.receives().length;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(sqs.receives().length).toBe(receivesAfterStop);
  });

  it('at the drain\'s deadline cancels what is left and hands it back, and flushes every batch before it returns', async () => {
    // Prepare
    const sqs = fakeSqs();
    const work = jobs();
    // Batches wait a minute for company, and this settle does not wait for its hand-back: only the
    // drain's own flush can send it before the drain returns.
    const settle: ConsumerOptions<string>['settle'] = async (message, settlement, _job, queue) => {
      work.settled.push({ id: message.MessageId ?? '', kind: settlement.kind });
      void queue.setVisibility(message, 0);
    };
    const { c } = consumer(sqs, work, { concurrency: 4, pollWaitSeconds: 1, jobTimeoutMs: 600_000, flushAfterMs: 60_000, settle });
    sqs.add(2);
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    const signals = [...work.running.values()].map((r) => r.job.signal);

    // Act: time runs only until the drain has returned (its deadline, the cancel grace, the poll).
    const { unfinished } = await drainInFakeTime(c, 2_000);

    // Assess
    expect(unfinished).toBe(2);
    expect(signals.map((s) => s.aborted)).toEqual([true, true]);
    expect(work.settled.map((s) => s.kind)).toEqual(['released', 'released']);
    expect(sqs.visibilityBatches().flatMap((b) => b.input.Entries ?? []).map((e) => [e.ReceiptHandle, e.VisibilityTimeout])).toEqual([
      ['r-1', 0],
      ['r-2', 0],
    ]);
  });

  it('asks SQS for every attribute the job needs, with its visibility timeout and long poll', async () => {
    const sqs = fakeSqs();
    const { c } = consumer(sqs, jobs(), { concurrency: 2, visibilityTimeoutSeconds: 45, pollWaitSeconds: 7 });
    c.start();
    await vi.advanceTimersByTimeAsync(0);

    expect(sqs.receives()[0]?.input).toEqual({
      QueueUrl: 'https://sqs.us-east-1.amazonaws.com/1/jobs',
      MaxNumberOfMessages: 2,
      WaitTimeSeconds: 7,
      VisibilityTimeout: 45,
      MessageAttributeNames: ['All'],
      MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp', 'AWSTraceHeader', 'MessageGroupId'],
    });
  });

  it('jitters the receive backoff, logs each further failure at debug, and says once that receiving works again', async () => {
    // Prepare: random 0 is the shortest jitter, three quarters of the nominal delay.
    const sqs = fakeSqs({ failReceives: 3 });
    const { c, lines } = consumer(sqs, jobs(), { pollWaitSeconds: 1, random: () => 0 });

    // Act
    c.start();
    await vi.advanceTimersByTimeAsync(749);
    const before = sqs.receives().length;
    await vi.advanceTimersByTimeAsync(1);
    const at = sqs.receives().length;
    await vi.advanceTimersByTimeAsync(1_125 + 1_688 + 5_000); // two more failures, then polls that answer

    // Assess
    expect([before, at]).toEqual([1, 2]);
    expect(lines().filter((l) => l.msg === 'receiving from the jobs queue still fails').map((l) => [l.level, l.retryInMs, l.reason])).toEqual([
      ['debug', 1_125, 'server'],
      ['debug', 1_688, 'server'],
    ]);
    expect(lines().find((l) => l.msg === 'receiving from the jobs queue failed; backing off')).toMatchObject({ retryInMs: 750, reason: 'server' });
    expect(sqs.receives().length).toBeGreaterThan(5);
    expect(lines().filter((l) => l.msg === 'receiving from the jobs queue works again')).toHaveLength(1);
  });

  it('warns of a failing heartbeat once per 10 s, with how many failures it held back', async () => {
    // Prepare: a 2 s heartbeat whose visibility calls all fail.
    const { sqs, work, c, lines } = await started(2, { concurrency: 2, heartbeatIntervalSeconds: 2, jobTimeoutMs: 600_000 }, { failVisibility: true });

    // Act: beats at 2, 4, …, 12 s, two messages each.
    await vi.advanceTimersByTimeAsync(12_100);

    // Assess
    const failures = lines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('a heartbeat failed'));
    expect(failures.map((l) => [l.level, l.suppressed])).toEqual([
      ['warn', 0],
      ...Array.from({ length: 9 }, () => ['debug', undefined]),
      ['warn', 9],
      ['debug', undefined],
    ]);
    expect(failures[0]).toMatchObject({ messageId: 'm-1', reason: 'server', err: { name: 'ServiceUnavailable' } });
    expect(failures[0]?.msg).toBe('a heartbeat failed; the message may be received again');
  });

  it("beats only for jobs running close to an interval: one received just before a beat waits for the next, one received up to 50 ms after a beat counts as a whole interval old at the next (timers run late)", async () => {
    const sqs = fakeSqs();
    const work = jobs();
    const { c } = consumer(sqs, work, { concurrency: 4, heartbeatIntervalSeconds: 20, jobTimeoutMs: 600_000 });
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(19_000);
    sqs.add(1); // r-1, 1 s before the beat at 20 s
    await vi.advanceTimersByTimeAsync(1_050);
    sqs.add(1); // r-2, 50 ms after it: 19.95 s old at the beat at 40 s
    await vi.advanceTimersByTimeAsync(1);
    sqs.add(1); // r-3, 51 ms after it: 19.949 s old then
    await vi.advanceTimersByTimeAsync(49);
    const first = sqs.visibilityBatches().length;
    await vi.advanceTimersByTimeAsync(40_000);

    expect(first).toBe(0);
    expect(sqs.visibilityBatches().map((b) => b.input.Entries?.map((e) => e.ReceiptHandle))).toEqual([
      ['r-1', 'r-2'],
      ['r-1', 'r-2', 'r-3'],
    ]);
  });

  it('gives a timed-out settlement its phase and JOB_TIMEOUT_SECONDS, cancels the work with a TimeoutError, and stops beating for it', async () => {
    // Prepare: m-1 will time out in its decode phase; m-2 runs on.
    const { sqs, work, c } = await started(2, { concurrency: 2, jobTimeoutMs: 5_000, heartbeatIntervalSeconds: 4 });
    const job = work.running.get('m-1')?.job;
    const firstPhase = job?.phase;
    if (job) job.phase = 'decode';
    work.running.get('m-2')?.job.waitFor(new Promise(() => {})); // waits its turn for good: no deadline

    // Act
    await vi.advanceTimersByTimeAsync(5_000);
    const stuck = c.health.stuck;
    await vi.advanceTimersByTimeAsync(8_100);

    // Assess
    expect(firstPhase).toBe('download');
    expect(work.settlements.map((s) => s.settlement)).toEqual([{ kind: 'timed-out', phase: 'decode', timeoutSeconds: 5 }]);
    expect(job?.signal.reason).toMatchObject({ name: 'TimeoutError', message: 'the job outlived JOB_TIMEOUT_SECONDS (5 s) in its decode phase' });
    expect(stuck).toBe(1);
    const beats = sqs.visibilityBatches().flatMap((b) => b.input.Entries ?? []).filter((e) => e.VisibilityTimeout === 60);
    expect(beats.map((e) => e.ReceiptHandle)).toEqual(['r-1', 'r-2', 'r-2', 'r-2']);
  });

  it('acts on a verdict in the outcome phase, and leaves no deadline behind a job that ended in time, or whose decide threw', async () => {
    // Prepare
    const { sqs, work, c } = await started(2, { concurrency: 2, jobTimeoutMs: 5_000 });

    // Act
    work.finish('m-1');
    work.running.get('m-2')?.fail(new Error('a bug'));
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(work.settlements.map((s) => [s.settlement.kind, s.phase])).toEqual([
      ['verdict', 'outcome'],
      ['crashed', 'download'],
    ]);
    expect(work.settlements[1]?.settlement).toMatchObject({ kind: 'crashed', error: { message: 'a bug' } });
    expect([c.health.lastTimeoutAt, c.health.stuck]).toEqual([undefined, 0]);
  });

  it('keeps the deadline still until the last of overlapping waits ends', async () => {
    const { sqs, work, c } = await started(1, { concurrency: 2, jobTimeoutMs: 5_000 });
    const job = work.running.get('m-1')?.job;
    let endFirst!: () => void;
    let endSecond!: () => void;

    // Act: two waits; the first ends after 1 s, the second after 60 s more.
    const first = job?.waitFor(new Promise<void>((r) => (endFirst = r)));
    const second = job?.waitFor(new Promise<void>((r) => (endSecond = r)));
    await vi.advanceTimersByTimeAsync(1_000);
    endFirst();
    await first;
    await vi.advanceTimersByTimeAsync(60_000);
    const during = [...work.settled];
    endSecond();
    await second;
    await vi.advanceTimersByTimeAsync(5_000);

    // Assess
    expect(during).toEqual([]);
    expect(work.settled).toEqual([{ id: 'm-1', kind: 'timed-out' }]);
  });

  it('reserves a full receive when nothing is held, even beyond the budget (admitted alone)', async () => {
    const sqs = fakeSqs();
    const memory = createMemoryBudget(MIB);
    const { c } = consumer(sqs, jobs(), { concurrency: 4, memory });
    c.start();
    await vi.advanceTimersByTimeAsync(0);

    expect(sqs.receives().map((r) => r.input.MaxNumberOfMessages)).toEqual([4]);
    expect(memory.held).toBe(4 * MIB);
  });

  it('drains: waits for settles under way, and does not settle a timed-out job again', async () => {
    // Prepare: m-1 times out and its work never stops; m-2's verdict is acted on until the test lets it finish.
    const sqs = fakeSqs();
    const work = jobs();
    const { settle, goOn: publish } = heldSettle(work, (_m, settlement) => settlement.kind === 'verdict');
    const { c, lines } = consumer(sqs, work, { concurrency: 2, jobTimeoutMs: 5_000, pollWaitSeconds: 1, settle });
    sqs.add(2);
    c.start();
    await vi.advanceTimersByTimeAsync(4_000);
    work.finish('m-2');
    await vi.advanceTimersByTimeAsync(1_500);

    // Act
    let done = false;
    const drained = c.drain(Date.now() + 3_000);
    void drained.then(() => (done = true));
    await vi.advanceTimersByTimeAsync(10_000);
    const beforePublish = done;
    publish();
    await vi.advanceTimersByTimeAsync(10);
    const { unfinished } = await drained;

    // Assess
    expect(beforePublish).toBe(false);
    expect(work.settled).toEqual([
      { id: 'm-1', kind: 'timed-out' },
      { id: 'm-2', kind: 'verdict' },
    ]);
    expect(unfinished).toBe(0);
    expect(lines().filter((l) => l.level === 'error')).toEqual([]);
  });

  it('drains while every slot is busy: the receive loop waiting for a slot ends at once', async () => {
    // Prepare: both slots hold jobs that never finish; the loop waits for a free slot.
    const { sqs, work, c, lines } = await started(2, { concurrency: 2, pollWaitSeconds: 20, jobTimeoutMs: 600_000 });

    // Act
    const { unfinished, tookMs } = await drainInFakeTime(c, 2_000);

    // Assess: the deadline, then the cancel grace (1 s): not the 25 s a long poll would take.
    expect(unfinished).toBe(2);
    expect(tookMs).toBeLessThanOrEqual(3_200);
    expect(lines().filter((l) => l.level === 'error')).toEqual([]);
  });

  it('drains after the poll in flight, however long it is, calling onProgress meanwhile', async () => {
    const sqs = fakeSqs();
    const { c } = consumer(sqs, jobs(), { concurrency: 2, pollWaitSeconds: 20 });
    c.start();
    await vi.advanceTimersByTimeAsync(1_000);

    let done = false;
    let progress = 0;
    const drained = c.drain(Date.now() + 30_000, () => (progress += 1));
    void drained.then(() => (done = true));
    await vi.advanceTimersByTimeAsync(15_000);
    const midPoll = { done, progress };
    await vi.advanceTimersByTimeAsync(5_000);
    await drained;

    expect(midPoll.done).toBe(false);
    expect(midPoll.progress).toBeGreaterThanOrEqual(14);
  });

  it('calls onProgress every 250 ms while jobs finish, and no more often (it extends the stop timeout; a tight loop would spin)', async () => {
    const { sqs, work, c } = await started(1, { concurrency: 2, pollWaitSeconds: 1 });

    let progress = 0;
    const drained = c.drain(Date.now() + 30_000, () => (progress += 1));
    await vi.advanceTimersByTimeAsync(2_000);
    const whileRunning = progress;
    work.finish('m-1');
    await vi.advanceTimersByTimeAsync(3_000);
    await drained;

    // Every 250 ms of the 2 s (8), and the 1 s timer's own calls (2).
    expect(whileRunning).toBeGreaterThanOrEqual(8);
    expect(whileRunning).toBeLessThanOrEqual(10);
  });
});

describe('the consumer: health, batching, memory and the end of a drain', () => {
  it('reports the last receive that answered: the start, then each poll when it answers, never a failed one', async () => {
    // Prepare: the first receive fails (1 s backoff at random 0.5); the next is a 5 s long poll.
    const sqs = fakeSqs({ failReceives: 1 });
    const { c } = consumer(sqs, jobs(), { concurrency: 2, pollWaitSeconds: 5 });
    const began = Date.now();

    // Act
    c.start();
    const atStart = c.health;
    await vi.advanceTimersByTimeAsync(500);
    const afterFailure = c.health.lastReceiveAt;
    await vi.advanceTimersByTimeAsync(500 + 5_000 + 500);

    // Assess: the second receive went out at 1 s and answered (empty) at 6 s.
    expect(atStart).toEqual({ lastReceiveAt: began, inFlight: 0, slots: 2, stuck: 0, lastTimeoutAt: undefined });
    expect(afterFailure).toBe(began);
    expect(c.health.lastReceiveAt).toBe(began + 6_000);
  });

  it('waits for a quarter of the slots, rounded up: with 6 slots, for two', async () => {
    // Prepare
    const { sqs, work } = await started(8, { concurrency: 6 });

    // Act
    work.finish('m-1');
    await vi.advanceTimersByTimeAsync(20);
    const afterOne = sqs.receives().length;
    work.finish('m-2');
    await vi.advanceTimersByTimeAsync(20);

    // Assess
    expect(afterOne).toBe(1);
    expect(sqs.receives().map((r) => r.input.MaxNumberOfMessages)).toEqual([6, 2]);
    expect([...work.running.keys()].sort()).toEqual(['m-3', 'm-4', 'm-5', 'm-6', 'm-7', 'm-8']);
  });

  it("holds a received message's bytes until it is settled: a receive that does not fit waits for them", async () => {
    // Prepare: a 2 MiB budget; two messages of 900 kB leave no room for another 1 MiB message.
    // Settling m-1 (its verdict acted on) waits until the test lets it go on.
    const sqs = fakeSqs();
    const work = jobs();
    const { settle, goOn } = heldSettle(work, (message) => message.MessageId === 'm-1');
    const memory = createMemoryBudget(2 * MIB);
    const { c } = consumer(sqs, work, { concurrency: 4, memory, settle });
    sqs.add(2, 'x'.repeat(900_000));
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    sqs.add(2, 'y'.repeat(900_000));

    // Act: m-1's verdict comes; its settling hangs, then goes on.
    await vi.advanceTimersByTimeAsync(100);
    const beforeVerdict = { receives: sqs.receives().length, held: memory.held };
    work.finish('m-1');
    await vi.advanceTimersByTimeAsync(100);
    const whileSettling = { receives: sqs.receives().length, held: memory.held, inFlight: c.health.inFlight };
    goOn();
    await vi.advanceTimersByTimeAsync(100);

    // Assess: the slot was free at once, the bytes only once settled; then one message's room.
    expect(beforeVerdict).toEqual({ receives: 1, held: 1_800_000 });
    expect(whileSettling).toEqual({ receives: 1, held: 1_800_000, inFlight: 1 });
    expect(sqs.receives().map((r) => r.input.MaxNumberOfMessages)).toEqual([4, 1]);
    expect([...work.running.keys()].sort()).toEqual(['m-2', 'm-3']);
    expect(memory.held).toBe(1_800_000);
  });

  it('stops keeping a message invisible once its verdict has outlived the deadline', async () => {
    // Prepare: the verdict comes at once; acting on it hangs past the 5 s deadline, whatever the
    // cancellation. Heartbeats every 2 s.
    const hangs = () => new Promise<void>(() => {});
    const { sqs, work, c } = await started(1, { concurrency: 1, jobTimeoutMs: 5_000, heartbeatIntervalSeconds: 2, settle: hangs });
    work.finish('m-1');

    // Act
    await vi.advanceTimersByTimeAsync(20_000);

    // Assess: beats at 2 s and 4 s, none after the deadline; the job counts as timed out.
    const beats = sqs.visibilityBatches().flatMap((b) => b.input.Entries ?? []);
    expect(beats.map((e) => [e.ReceiptHandle, e.VisibilityTimeout])).toEqual([
      ['r-1', 60],
      ['r-1', 60],
    ]);
    expect(c.health.lastTimeoutAt).toEqual(expect.any(Number));
  });

  it('hands back a job still waiting its turn at the drain, and does not time it out when its wait ends later', async () => {
    // Prepare: m-1 waits for capacity for good; its work ignores the cancellation.
    const { work, c } = await started(1, { concurrency: 2, jobTimeoutMs: 5_000, pollWaitSeconds: 1 });
    let endWait!: () => void;
    const waiting = work.running.get('m-1')?.job.waitFor(new Promise<void>((r) => (endWait = r)));

    // Act: drain (1 s deadline), then the wait ends, and long past the job's deadline.
    const { unfinished } = await drainInFakeTime(c, 1_000);
    endWait();
    await waiting;
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(unfinished).toBe(1);
    expect(work.settled).toEqual([{ id: 'm-1', kind: 'released' }]);
    expect([c.health.lastTimeoutAt, c.health.stuck]).toEqual([undefined, 0]);
  });

  it('ends a drain whose poll never answers after the long poll and its 5 s grace', async () => {
    // Prepare: a 3 s long poll that the network swallows.
    const sqs = fakeSqs({ silentReceives: true });
    const { c, lines } = consumer(sqs, jobs(), { concurrency: 2, pollWaitSeconds: 3 });
    c.start();
    await vi.advanceTimersByTimeAsync(0);

    // Act
    const { tookMs } = await drainInFakeTime(c, 1_000);

    // Assess: 3 s + 5 s, not at the drain's own deadline and not never.
    expect(tookMs).toBeGreaterThanOrEqual(8_000);
    expect(tookMs).toBeLessThanOrEqual(8_100);
    expect(lines().filter((l) => l.level === 'error')).toEqual([]);
  });

  it('frees the slot as soon as the verdict is known: the next receive goes out while the verdict is acted on', async () => {
    // Prepare: one slot; acting on m-1's verdict waits until the test lets it go on.
    const sqs = fakeSqs();
    const work = jobs();
    const { settle, goOn } = heldSettle(work, (message) => message.MessageId === 'm-1');
    const { c } = consumer(sqs, work, { concurrency: 1, settle });
    sqs.add(2);
    c.start();
    await vi.advanceTimersByTimeAsync(0);

    // Act
    work.finish('m-1');
    await vi.advanceTimersByTimeAsync(100);
    const whileActing = { running: [...work.running.keys()], settled: [...work.settled] };
    goOn();
    await vi.advanceTimersByTimeAsync(100);

    // Assess
    expect(whileActing).toEqual({ running: ['m-2'], settled: [] });
    expect(sqs.receives().map((r) => r.input.MaxNumberOfMessages)).toEqual([1, 1]);
    expect(work.settled).toEqual([{ id: 'm-1', kind: 'verdict' }]);
  });

  it("does not keep a job asking for more than the whole budget waiting behind the poll's reservation", async () => {
    // Prepare: a 2 MiB budget, all of it reserved by the poll in flight (two slots, an empty queue).
    const sqs = fakeSqs();
    const memory = createMemoryBudget(2 * MIB);
    const { c } = consumer(sqs, jobs(), { concurrency: 2, memory });
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    const reserved = memory.held;

    // Act: a job asks for 3 MiB (admitted alone, beside nothing but received messages' bytes).
    let admitted: number | undefined;
    void memory.acquire(3 * MIB).then((grant) => {
      admitted = Date.now();
      grant.release();
    });
    const asked = Date.now();
    await vi.advanceTimersByTimeAsync(0);

    // Assess: at once, not when the 20 s poll ends.
    expect(reserved).toBe(2 * MIB);
    expect(admitted).toBe(asked);
  });

  it('at its deadline cancels what runs, waits for it to stop (up to 1 s) and returns as soon as it has', async () => {
    // Prepare: m-1's work stops 300 ms after it is cancelled.
    const sqs = fakeSqs();
    const work = jobs();
    let stoppedAt: number | undefined;
    let cancelled: unknown;
    const decide: ConsumerOptions<string>['decide'] = (_message, job) =>
      new Promise<string>((resolve) => {
        job.signal.addEventListener('abort', () => {
          cancelled = job.signal.reason;
          setTimeout(() => {
            stoppedAt = Date.now();
            resolve('too late');
          }, 300);
        });
      });
    const { c, lines } = consumer(sqs, work, { concurrency: 2, pollWaitSeconds: 1, jobTimeoutMs: 600_000, decide });
    sqs.add(1);
    c.start();
    await vi.advanceTimersByTimeAsync(0);

    // Act: a drain whose deadline (1.1 s) falls between two of its 250 ms checks.
    const began = Date.now();
    const { unfinished, tookMs } = await drainInFakeTime(c, 1_100, 10);

    // Assess: cancelled at the deadline, stopped 300 ms later; the drain ends then, not after the whole 1 s grace.
    expect(unfinished).toBe(1);
    expect(cancelled).toMatchObject({ message: 'the drain timed out' });
    expect((stoppedAt ?? 0) - began).toBe(1_400);
    expect(tookMs).toBeGreaterThanOrEqual(1_400);
    expect(tookMs).toBeLessThan(1_500);
    expect(lines().filter((l) => l.msg === 'a timed-out job stopped; its late verdict is dropped')).toHaveLength(1);
  });

  it('ends a drain that begins during a poll which then fails, without sitting out the backoff', async () => {
    // Prepare: a 2 s poll that fails at its end; the backoff after it would be 1 s.
    const sqs = fakeSqs({ failPolls: 1 });
    const { c } = consumer(sqs, jobs(), { concurrency: 2, pollWaitSeconds: 2 });
    c.start();
    await vi.advanceTimersByTimeAsync(500);

    // Act
    const { tookMs } = await drainInFakeTime(c, 10_000, 10);

    // Assess: the poll failed 1.5 s after the drain began; the drain ended with it.
    expect(sqs.receives()).toHaveLength(1);
    expect(tookMs).toBeLessThan(1_600);
  });

  it('logs a failure of the receive loop itself as an error with its cause', async () => {
    // Prepare: a bug where the backoff is jittered (the random source throws).
    const sqs = fakeSqs({ failReceives: 1 });
    const { c, lines } = consumer(sqs, jobs(), {
      random: () => {
        throw new Error('no randomness');
      },
    });

    // Act
    c.start();
    await vi.advanceTimersByTimeAsync(0);

    // Assess
    expect(lines().filter((l) => l.level === 'error')).toMatchObject([{ msg: 'the receive loop stopped unexpectedly', err: { message: 'no randomness' } }]);
  });

  it('leaves no timer running once drained (heartbeat, progress, deadlines), so the process can exit', async () => {
    // Prepare
    const { work, c } = await started(1, { concurrency: 2, pollWaitSeconds: 1, jobTimeoutMs: 5_000 });

    // Act: m-1 finishes during the drain; then time runs past every one-shot timer.
    let done = false;
    const drained = c.drain(Date.now() + 3_000, () => {});
    void drained.then(() => (done = true));
    await vi.advanceTimersByTimeAsync(500);
    work.finish('m-1');
    while (!done) await vi.advanceTimersByTimeAsync(100);
    await vi.advanceTimersByTimeAsync(60_000);

    // Assess
    expect(work.settled).toEqual([{ id: 'm-1', kind: 'verdict' }]);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('inOrderPerKey', () => {
  it('sends a key\'s calls one after the other, each once the one before it is answered, and other keys at once', async () => {
    // Prepare: a send the test answers by hand
    const started: string[] = [];
    const answers = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
    const send = inOrderPerKey<number>(
      (key, seconds) =>
        new Promise<void>((resolve, reject) => {
          started.push(`${key}:${seconds}`);
          answers.set(`${key}:${seconds}`, { resolve, reject });
        }),
    );
    const settled = async () => {
      for (let i = 0; i < 5; i++) await Promise.resolve();
    };

    // Act: a heartbeat for m1, then its hand-back, and a heartbeat for m2
    const heartbeat = send('m1', 60);
    const handBack = send('m1', 0);
    const other = send('m2', 60);
    await settled();

    // Assess: the hand-back waits for the heartbeat's answer; m2 does not wait for m1
    expect(started).toEqual(['m1:60', 'm2:60']);
    answers.get('m1:60')?.reject(new Error('throttled'));
    await expect(heartbeat).rejects.toThrow('throttled');
    await settled();
    expect(started).toEqual(['m1:60', 'm2:60', 'm1:0']);
    answers.get('m1:0')?.resolve();
    answers.get('m2:60')?.resolve();
    await expect(handBack).resolves.toBeUndefined();
    await expect(other).resolves.toBeUndefined();
  });
});
