/**
 * The consumer: slots, the receive loop, the heartbeat, deadlines and the drain.
 *
 * One loop receives up to ten messages per call, sized to the slots that are free, and waits until
 * enough are free (a quarter of them, at most ten) so a busy worker receives in batches; each message
 * runs in its own slot, so a slow job only ever holds its own. A message is settled exactly once:
 * with its verdict, or — when it outlives JOB_TIMEOUT_SECONDS — as timed out while its work is
 * cancelled, or released at shutdown. Every message in flight is kept invisible by one heartbeat
 * timer, in batches; deletes and visibility changes go out in batches too (src/aws/sqs-batches.ts),
 * flushed within a few milliseconds and always before a drain ends.
 *
 * No sqs-consumer here any more: its receive is sized before its pre-receive hook runs and its next
 * receive waits for the whole batch handler, which is the head-of-line blocking this avoids.
 */
import { ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import { deleteBatcher, visibilityBatcher } from '../aws/sqs-batches.ts';
import { SQS_MAX_BATCH_ENTRIES, SQS_MAX_MESSAGE_BYTES } from '../aws/sqs-rules.ts';
import type { JobPhase } from '../enroll/enroll.ts';
import type { Grant, MemoryBudget } from '../enroll/memory.ts';
import { describeError, transientReason } from '../job/errors.ts';

/** The jobs queue as settling sees it: batched, entry by entry. */
export interface JobsQueue {
  delete(message: Message): Promise<void>;
  setVisibility(message: Message, seconds: number): Promise<void>;
}

/** Who a message is, once it could be read: for the log line of a job settled without its verdict. */
export interface MessageIdentity {
  readonly jobId: string | null;
  readonly userId: string | null;
  readonly signature: string;
}

/** One message at work: its cancellation, its phase, its deadline. */
export interface RunningJob {
  readonly signal: AbortSignal;
  readonly startedAt: number;
  phase: JobPhase;
  identity?: MessageIdentity;
  /**
   * Wraps a wait for shared capacity: the deadline stands still while a wait is under way. The job
   * calls it only while nothing else of it runs (src/enroll/enroll.ts, `stageClock`).
   */
  waitFor<T>(wait: Promise<T>): Promise<T>;
}

/** How a message ended, for `settle`: its own verdict, or what the consumer decided for it. */
export type Settlement<V> =
  | { readonly kind: 'verdict'; readonly verdict: V }
  | { readonly kind: 'timed-out'; readonly phase: JobPhase; readonly timeoutSeconds: number }
  | { readonly kind: 'released' }
  /** `decide` threw, which it must not: a bug, settled as a transient failure. */
  | { readonly kind: 'crashed'; readonly error: unknown };

export interface ConsumerOptions<V> {
  readonly sqs: SQSClient;
  readonly queueUrl: string;
  readonly concurrency: number;
  readonly visibilityTimeoutSeconds: number;
  readonly heartbeatIntervalSeconds: number;
  /** Long-poll wait (1-20 s). A stop waits for the poll in flight, so this bounds an idle stop. */
  readonly pollWaitSeconds: number;
  /** JOB_TIMEOUT_SECONDS, in ms: a job still running after this is settled as timed out and cancelled. */
  readonly jobTimeoutMs: number;
  /** Message bytes held from receipt to settlement (inline images count from the moment they arrive). */
  readonly memory?: MemoryBudget;
  /** How long a batch waits for company (deletes, visibility changes). */
  readonly flushAfterMs: number;
  /** Decides a message's fate; must not throw. It may run on after its job timed out: it is cancelled. */
  readonly decide: (message: Message, job: RunningJob) => Promise<V>;
  /** Acts on the fate; called exactly once per message; must not throw. */
  readonly settle: (message: Message, settlement: Settlement<V>, job: RunningJob, queue: JobsQueue) => Promise<void>;
  readonly log: Logger;
  readonly random?: () => number;
}

export interface ConsumerHealth {
  /** Epoch ms of the last receive that answered (with or without messages). */
  readonly lastReceiveAt: number | undefined;
  readonly inFlight: number;
  readonly slots: number;
  /** Slots whose job outlived its deadline and has not stopped yet. */
  readonly stuck: number;
  /** Epoch ms of the last job settled as timed out. */
  readonly lastTimeoutAt: number | undefined;
}

export interface Consumer {
  start(): void;
  readonly health: ConsumerHealth;
  /**
   * Stops receiving and waits for the jobs in flight until `deadline` (epoch ms); what is still
   * running then is cancelled and handed back to the queue. Waits for the poll in flight too (its
   * messages are handed straight back) and for every batched call. Resolves with how many jobs were
   * still running at the deadline.
   */
  drain(deadline: number, onProgress?: () => void): Promise<{ unfinished: number }>;
}

const RECEIVE_BACKOFF_MIN_MS = 1_000;
const RECEIVE_BACKOFF_MAX_MS = 30_000;
// How long past its wait time a long poll may take to come back (network, a slow endpoint).
const POLL_GRACE_MS = 5_000;
const MESSAGE_CALL_WARNING_INTERVAL_MS = 10_000;
// How long cancelled work may take to stop at the end of a drain before the process moves on.
const CANCEL_GRACE_MS = 1_000;

/** Rejects with `signal.reason` when the signal aborts; resolves after `ms` otherwise. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

type Job = RunningJob & { readonly controller: AbortController };

interface Slot {
  readonly message: Message;
  readonly job: Job;
  settled: boolean;
  /** The settle under way or done, once there is one. */
  settling?: Promise<void>;
  expired: boolean;
  /** Resolves when the job's work has stopped (its verdict came, or its cancellation took). */
  readonly done: Promise<void>;
}

/** The consumer's state, shared by the functions below. */
interface State<V> {
  readonly options: ConsumerOptions<V>;
  readonly slots: Set<Slot>;
  /**
   * Jobs whose verdict is being acted on (outcome, dead letter, delete): their slot is free, but they
   * are still under their deadline and heartbeat.
   */
  readonly outcomes: Set<Slot>;
  // Settles still under way (publishing, dead-lettering, deleting): a slot is free as soon as its
  // verdict is known, so the queue work of one job overlaps the next job's work; a drain waits for them.
  readonly settling: Set<Promise<void>>;
  readonly stopping: AbortController;
  readonly queue: JobsQueue;
  readonly flush: () => Promise<void>;
  /** Called whenever a slot frees or the consumer stops: waiters re-check their condition. */
  readonly wakeups: Set<() => void>;
  readonly warnings: { last: number; suppressed: number };
  lastReceiveAt: number | undefined;
  lastTimeoutAt: number | undefined;
  loop: Promise<void> | undefined;
  heartbeat: NodeJS.Timeout | undefined;
}

const ignore = (): void => undefined;

/**
 * Calls of `send` for one key, in the order they were asked for: each waits until the key's call
 * before it has been answered (succeeded or failed). A message's visibility changes go through it:
 * a heartbeat still on its way when the message is handed back at shutdown could otherwise reach SQS
 * after the hand-back and hide the message for a whole visibility timeout (seen under load).
 */
export function inOrderPerKey<T>(send: (key: string, value: T) => Promise<void>): (key: string, value: T) => Promise<void> {
  const last = new Map<string, Promise<void>>();
  return (key, value) => {
    const call = (last.get(key) ?? Promise.resolve()).then(() => send(key, value));
    const settled = call.then(ignore, ignore);
    last.set(key, settled);
    void settled.then(() => {
      if (last.get(key) === settled) last.delete(key);
    });
    return call;
  };
}

function newState<V>(options: ConsumerOptions<V>): State<V> {
  const timing = { flushAfterMs: options.flushAfterMs };
  const deletes = deleteBatcher(options.sqs, options.queueUrl, timing);
  const visibility = visibilityBatcher(options.sqs, options.queueUrl, timing);
  const setVisibility = inOrderPerKey<number>((receiptHandle, seconds) => visibility.add({ receiptHandle, seconds }));
  const receipt = (message: Message) => message.ReceiptHandle ?? '';
  return {
    options,
    slots: new Set(),
    outcomes: new Set(),
    settling: new Set(),
    stopping: new AbortController(),
    queue: {
      delete: (message) => deletes.add(receipt(message)),
      setVisibility: (message, seconds) => setVisibility(receipt(message), seconds),
    },
    flush: async () => void (await Promise.all([deletes.flush(), visibility.flush()])),
    wakeups: new Set(),
    warnings: { last: 0, suppressed: 0 },
    lastReceiveAt: undefined,
    lastTimeoutAt: undefined,
    loop: undefined,
    heartbeat: undefined,
  };
}

function wake<V>(state: State<V>): void {
  for (const w of state.wakeups) w();
}

/** Waits until `ready()` holds or the consumer stops; re-checked whenever a slot frees. */
async function waitUntil<V>(state: State<V>, ready: () => boolean): Promise<void> {
  const { signal } = state.stopping;
  while (!ready() && !signal.aborted) {
    await new Promise<void>((resolve) => {
      const w = () => {
        state.wakeups.delete(w);
        signal.removeEventListener('abort', w);
        resolve();
      };
      state.wakeups.add(w);
      signal.addEventListener('abort', w, { once: true });
    });
  }
}

/** Heartbeats of every running job fail together in an outage: one warning per interval. */
function warnMessageCall<V>(state: State<V>, e: unknown, what: string, messageId: string | undefined): void {
  const { log } = state.options;
  const fields = { messageId, reason: transientReason(e), err: describeError(e) };
  const now = Date.now();
  if (now - state.warnings.last >= MESSAGE_CALL_WARNING_INTERVAL_MS) {
    log.warn({ ...fields, suppressed: state.warnings.suppressed }, `${what} failed; the message may be received again`);
    state.warnings.last = now;
    state.warnings.suppressed = 0;
  } else {
    state.warnings.suppressed += 1;
    log.debug(fields, `${what} failed`);
  }
}

function settleOnce<V>(state: State<V>, slot: Slot, settlement: Settlement<V>): Promise<void> {
  if (slot.settled) return slot.settling ?? Promise.resolve();
  slot.settled = true;
  const done = state.options.settle(slot.message, settlement, slot.job, state.queue).finally(() => state.settling.delete(done));
  state.settling.add(done);
  slot.settling = done;
  return done;
}

/**
 * A job's deadline clock: it runs from receipt until the job's verdict has been acted on, and stands
 * still while the job only waits its turn for shared capacity. Past it, `expire` is called once.
 */
function deadlineClock(timeoutMs: number, expire: () => void) {
  let remainingMs = timeoutMs;
  let runningSince = Date.now();
  let waits = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    runningSince = Date.now();
    timer = setTimeout(expire, Math.max(0, remainingMs));
  };
  return {
    start: arm,
    stop: () => clearTimeout(timer),
    async waitFor<T>(wait: Promise<T>, stillRunning: () => boolean): Promise<T> {
      if (waits++ === 0 && timer) {
        clearTimeout(timer);
        timer = undefined;
        remainingMs -= Date.now() - runningSince;
      }
      try {
        return await wait;
      } finally {
        if (--waits === 0 && stillRunning()) arm();
      }
    },
  };
}

/** Runs one message in a slot: decide (under its deadline), then settle once. */
function run<V>(state: State<V>, message: Message, grant: Grant | undefined): void {
  const { options } = state;
  const controller = new AbortController();
  const clock = deadlineClock(options.jobTimeoutMs, () => {
    // Past its deadline the message goes back to the queue at once, whatever the work is doing; the
    // work is cancelled, and its slot is counted as stuck until it has actually stopped.
    slot.expired = true;
    state.lastTimeoutAt = Date.now();
    // Named as a timeout, so a step cut short by it (an outcome being published) is retried as one.
    const reason = Object.assign(new Error(`the job outlived JOB_TIMEOUT_SECONDS (${options.jobTimeoutMs / 1000} s) in its ${job.phase} phase`), { name: 'TimeoutError' });
    controller.abort(reason);
    void settleOnce(state, slot, { kind: 'timed-out', phase: job.phase, timeoutSeconds: options.jobTimeoutMs / 1000 });
  });
  const job: Job = {
    signal: controller.signal,
    startedAt: Date.now(),
    phase: 'download',
    controller,
    waitFor: (wait) => clock.waitFor(wait, () => !slot.expired && !slot.settled),
  };
  let finish!: () => void;
  const slot: Slot = { message, job, settled: false, expired: false, done: new Promise<void>((r) => (finish = r)) };
  state.slots.add(slot);
  clock.start();
  void (async () => {
    let actingOnVerdict = false;
    try {
      const verdict = await options.decide(message, job);
      if (slot.settled) {
        options.log.debug({ messageId: message.MessageId }, 'a timed-out job stopped; its late verdict is dropped');
      } else {
        // The slot frees now (the next job overlaps this one's queue work), but the deadline runs on
        // while the verdict is acted on — publishing, dead-lettering — and the heartbeat keeps the
        // message invisible until that is done.
        job.phase = 'outcome';
        actingOnVerdict = true;
        state.outcomes.add(slot);
        void settleOnce(state, slot, { kind: 'verdict', verdict }).finally(() => {
          clock.stop();
          state.outcomes.delete(slot);
        });
      }
    } catch (e: unknown) {
      void settleOnce(state, slot, { kind: 'crashed', error: e });
    } finally {
      if (!actingOnVerdict) clock.stop();
      // The message's bytes are held until it is settled (a dead-letter entry carries its body); their
      // release can be what a receive waits for, so it wakes the loop too.
      void Promise.resolve(slot.settling).finally(() => {
        grant?.release();
        wake(state);
      });
      state.slots.delete(slot);
      finish();
      wake(state);
    }
  })();
}

/** A slot for a message handed straight back: received as the stop began. */
function releaseAtOnce<V>(state: State<V>, message: Message): Promise<void> {
  const controller = new AbortController();
  const job: Job = { signal: controller.signal, startedAt: Date.now(), phase: 'download', controller, waitFor: (wait) => wait };
  return settleOnce(state, { message, job, settled: false, expired: false, done: Promise.resolve() }, { kind: 'released' });
}

/** Slots: ready when enough are free (a batch's worth), or when nothing runs at all. */
function slotsReady<V>(state: State<V>): boolean {
  const { options, slots } = state;
  const free = options.concurrency - slots.size;
  // Receive in batches once a quarter of the slots (at most ten) are free; with nothing running, at once.
  const batch = Math.min(SQS_MAX_BATCH_ENTRIES, Math.ceil(options.concurrency / 4));
  return free > 0 && (free >= batch || slots.size === 0);
}

/** The memory held for one receive, and how many messages it may ask for. */
interface Reservation {
  readonly grant: Grant | undefined;
  readonly count: number;
}

/** How many messages the next receive asks for: as many as there are free slots, at most ten. */
const receiveSize = <V>(state: State<V>) => Math.min(SQS_MAX_BATCH_ENTRIES, state.options.concurrency - state.slots.size);

/**
 * Memory for the next receive, taken before it is made: room for as many of SQS's largest messages as
 * there are free slots (fewer when only fewer fit), held from now — through the long poll — until each
 * message's share is carved out for its slot and the rest given back. Taken only when no job waits
 * for memory and it fits (or nothing is held), and never by waiting in the line: so a received
 * message never waits for memory outside a slot, where no heartbeat keeps it invisible. Without a
 * budget: nothing to reserve.
 */
function reserveForReceive<V>(state: State<V>): Reservation | undefined {
  const memory = state.options.memory;
  const free = receiveSize(state);
  if (!memory) return { grant: undefined, count: free };
  if (memory.waiting > 0) return undefined;
  // As many as fit beside what is held; with nothing held, a full receive (admitted alone).
  const count = memory.held === 0 ? free : Math.min(free, Math.floor((memory.limit - memory.held) / SQS_MAX_MESSAGE_BYTES));
  if (count < 1) return undefined;
  const grant = memory.tryAcquire(count * SQS_MAX_MESSAGE_BYTES, { background: true });
  return grant ? { grant, count } : undefined;
}

/** A received message goes straight into a slot, with its own bytes carved out of the receive's reservation. */
function dispatch<V>(state: State<V>, message: Message, reservation: Grant | undefined): void {
  if (state.stopping.signal.aborted) {
    void releaseAtOnce(state, message);
    return;
  }
  // Message bytes are held from now: the memory budget counts them until the job is settled.
  run(state, message, reservation?.take(Buffer.byteLength(message.Body ?? '')));
}

async function receiveLoop<V>(state: State<V>): Promise<void> {
  // Memory given back anywhere (a job's, a settled message's) may be what lets the next receive go.
  const unwatch = state.options.memory?.watch(() => wake(state));
  try {
    await receiveUntilStopped(state);
  } finally {
    unwatch?.();
  }
}

async function receiveUntilStopped<V>(state: State<V>): Promise<void> {
  const { options } = state;
  const { log } = options;
  let backoffMs = 0;
  let failing = false;
  while (!state.stopping.signal.aborted) {
    // The check and the reservation are one step (nothing can take the memory in between).
    let reserved: Reservation | undefined;
    await waitUntil(state, () => slotsReady(state) && (reserved = reserveForReceive(state)) !== undefined);
    if (state.stopping.signal.aborted || reserved === undefined) {
      reserved?.grant?.release();
      break;
    }
    const reservation = reserved.grant;
    let messages: Message[];
    try {
      messages = await receiveBatch(state, reserved.count);
    } catch (e: unknown) {
      reservation?.release();
      backoffMs = Math.min(RECEIVE_BACKOFF_MAX_MS, Math.max(RECEIVE_BACKOFF_MIN_MS, backoffMs * 2));
      backoffMs = Math.round(backoffMs * (0.75 + (options.random ?? Math.random)() * 0.5));
      const fields = { reason: transientReason(e), err: describeError(e), retryInMs: backoffMs };
      // One line when receiving starts failing and one when it recovers, not one per try.
      if (!failing) log.warn(fields, 'receiving from the jobs queue failed; backing off');
      else log.debug(fields, 'receiving from the jobs queue still fails');
      failing = true;
      await sleep(backoffMs, state.stopping.signal);
      continue;
    }
    backoffMs = 0;
    state.lastReceiveAt = Date.now();
    if (failing) log.info('receiving from the jobs queue works again');
    failing = false;
    for (const message of messages) dispatch(state, message, reservation);
    reservation?.release();
  }
}

async function receiveBatch<V>(state: State<V>, max: number): Promise<Message[]> {
  const { options } = state;
  const out = await options.sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: options.queueUrl,
      MaxNumberOfMessages: max,
      WaitTimeSeconds: options.pollWaitSeconds,
      VisibilityTimeout: options.visibilityTimeoutSeconds,
      MessageAttributeNames: ['All'],
      // AWSTraceHeader: the producer's X-Ray trace; MessageGroupId: its tenant (docs/operations.md "Tracing").
      MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp', 'AWSTraceHeader', 'MessageGroupId'],
    }),
  );
  return out.Messages ?? [];
}

/** Keeps every message in flight invisible: one batched visibility change each interval. */
function beat<V>(state: State<V>): void {
  const { options } = state;
  const now = Date.now();
  // A job settled without its verdict (timed out) is no longer ours to keep invisible; one whose
  // verdict is being acted on is, until that is done or its deadline passes.
  const ours = [...[...state.slots].filter((slot) => !slot.settled), ...[...state.outcomes].filter((slot) => !slot.expired)];
  for (const slot of ours) {
    if (now - slot.job.startedAt < options.heartbeatIntervalSeconds * 1000 - 50) continue;
    state.queue.setVisibility(slot.message, options.visibilityTimeoutSeconds).catch((e: unknown) => warnMessageCall(state, e, 'a heartbeat', slot.message.MessageId));
  }
}

async function drain<V>(state: State<V>, deadline: number, onProgress?: () => void): Promise<{ unfinished: number }> {
  const { options, slots } = state;
  state.stopping.abort();
  // The long poll in flight is not cut off: a poll abandoned by the client can still be handed
  // messages by the server, which would then stay invisible until their visibility timeout. It is
  // let finish, and whatever it brings is handed straight back.
  const pollDone = state.loop ?? Promise.resolve();
  const progress = setInterval(() => onProgress?.(), 1_000);
  try {
    while (slots.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.all([...slots].map((s) => s.done)), sleep(Math.min(250, Math.max(0, deadline - Date.now())))]);
      onProgress?.();
    }
    await Promise.race([Promise.all([...state.settling]), sleep(Math.max(0, deadline - Date.now()))]);
    const unfinished = [...slots].filter((s) => !s.settled).length;
    // Past the drain's deadline: cancel what is left and hand it back, so the next worker (or this
    // one, restarted) picks it up at once instead of after its visibility timeout.
    const left = [...slots];
    for (const slot of left) slot.job.controller.abort(new Error('the drain timed out'));
    await Promise.all(left.map((slot) => settleOnce(state, slot, { kind: 'released' })));
    await Promise.race([Promise.all(left.map((s) => s.done)), sleep(CANCEL_GRACE_MS)]);
    await Promise.race([pollDone, sleep(options.pollWaitSeconds * 1000 + POLL_GRACE_MS)]);
    await Promise.all([...state.settling]);
    if (state.heartbeat) clearInterval(state.heartbeat);
    await state.flush();
    return { unfinished };
  } finally {
    clearInterval(progress);
  }
}

export function createConsumer<V>(options: ConsumerOptions<V>): Consumer {
  const state = newState(options);
  return {
    get health() {
      return {
        lastReceiveAt: state.lastReceiveAt,
        inFlight: state.slots.size,
        slots: options.concurrency,
        stuck: [...state.slots].filter((s) => s.expired).length,
        lastTimeoutAt: state.lastTimeoutAt,
      };
    },
    start() {
      // The start-up checks have just reached the queue: count that as the first answer.
      state.lastReceiveAt = Date.now();
      state.heartbeat = setInterval(() => beat(state), options.heartbeatIntervalSeconds * 1000);
      state.loop = receiveLoop(state).catch((e: unknown) => options.log.error({ err: e }, 'the receive loop stopped unexpectedly'));
    },
    drain: (deadline, onProgress) => drain(state, deadline, onProgress),
  };
}
