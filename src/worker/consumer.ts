/**
 * The sqs-consumer wiring: concurrency, heartbeat, ack / retry / release.
 *
 * sqs-consumer processes a received batch in lock-step: its next receive waits for the whole
 * batch, so one slow job would hold up nine others. The pool therefore runs CONCURRENCY consumers
 * of batch size 1 over one shared SQS client: each slot receives, runs and acknowledges its own
 * job, so a slow job only ever occupies its own slot. sqs-consumer keeps doing what it does well —
 * the long-poll loop, the heartbeat that keeps a running job invisible, the delete on success and
 * the visibility change on failure.
 */
import type { Message, SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import { Consumer } from 'sqs-consumer';
import { describeError, transientReason } from '../job/errors.ts';
import type { MessageVerdict } from './job-message.ts';

export interface PoolOptions {
  readonly sqs: SQSClient;
  readonly queueUrl: string;
  readonly concurrency: number;
  readonly visibilityTimeoutSeconds: number;
  readonly heartbeatIntervalSeconds: number;
  /** Long-poll wait (1-20 s). A stop waits for polls in flight, so this bounds an idle stop. */
  readonly pollWaitSeconds: number;
  /** Decides one message's fate; must not throw. */
  readonly process: (message: Message) => Promise<MessageVerdict>;
  /** Visibility for a message whose delete failed after it was processed (it will run again). */
  readonly redeliveryDelaySeconds: (message: Message) => number;
  readonly log: Logger;
}

export interface PoolStats {
  inFlight: number;
  succeeded: number;
  failed: number;
  retried: number;
  released: number;
  lastSuccessAt: number | undefined;
  /** When a receive last answered, with or without messages: the pool's pulse, for /healthz. */
  lastReceiveAt: number | undefined;
}

export interface ConsumerPool {
  start(): void;
  readonly stats: Readonly<PoolStats>;
  /**
   * Stops receiving and waits for the jobs in flight, at most until `deadline` (epoch ms), and for
   * the long polls in flight, whose messages are handed straight back to the queue.
   */
  drain(deadline: number, onProgress?: () => void): Promise<{ unfinished: number }>;
}

/** Thrown from the handler to make sqs-consumer set the message's visibility (and not delete it). */
class ReturnToQueue extends Error {
  override readonly name = 'ReturnToQueue';
}

const RECEIVE_BACKOFF_MIN_MS = 1_000;
const RECEIVE_BACKOFF_MAX_MS = 30_000;
// How long past its wait time a long poll may take to come back (network, a slow endpoint).
const POLL_GRACE_MS = 5_000;
const MESSAGE_CALL_WARNING_INTERVAL_MS = 10_000;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export function createConsumerPool(options: PoolOptions): ConsumerPool {
  const { log } = options;
  const stats: PoolStats = {
    inFlight: 0,
    succeeded: 0,
    failed: 0,
    retried: 0,
    released: 0,
    lastSuccessAt: undefined,
    lastReceiveAt: undefined,
  };
  const stopping = new AbortController();
  // One log line when receiving starts failing and one when it recovers, not one per slot per try.
  let receiveFailing = false;
  let lastMessageCallWarning = 0;
  let suppressedMessageCallWarnings = 0;
  const idle = new Set<() => void>();

  const returnAfter = new WeakMap<Message, number>();

  const slots = Array.from({ length: options.concurrency }, (_, index) => {
    let busy = false;
    // Handing a message back at shutdown: its visibility change must land before the exit.
    let releasing = false;
    let backoffMs = 0;

    const receiveSucceeded = () => {
      backoffMs = 0;
      stats.lastReceiveAt = Date.now();
      if (receiveFailing) {
        receiveFailing = false;
        log.info('receiving from the jobs queue works again');
      }
    };

    const consumer = Consumer.create({
      queueUrl: options.queueUrl,
      sqs: options.sqs,
      batchSize: 1,
      waitTimeSeconds: options.pollWaitSeconds,
      visibilityTimeout: options.visibilityTimeoutSeconds,
      heartbeatInterval: options.heartbeatIntervalSeconds,
      messageAttributeNames: ['All'],
      messageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
      strictReturn: true,
      // sqs-consumer retries a failed receive at once; back off instead, so an outage is no busy loop.
      preReceiveMessageCallback: async () => {
        await sleep(backoffMs, stopping.signal);
        // A stop during the backoff: do not start another long poll.
        if (stopping.signal.aborted) throw new ReturnToQueue('stopping');
      },
      handleMessage: async (message) => {
        if (stopping.signal.aborted) {
          // Received as the stop began: hand it straight back rather than hold it until it times out.
          returnAfter.set(message, 0);
          releasing = true;
          stats.released += 1;
          log.info({ messageId: message.MessageId }, 'message received during shutdown; returned to the queue');
          throw new ReturnToQueue('released at shutdown');
        }
        const verdict = await options.process(message);
        if (verdict.action === 'delete') {
          if (verdict.status === 'succeeded') {
            stats.succeeded += 1;
            stats.lastSuccessAt = Date.now();
          } else {
            stats.failed += 1;
          }
          return message;
        }
        stats.retried += 1;
        returnAfter.set(message, verdict.delaySeconds);
        throw new ReturnToQueue('retry later');
      },
      terminateVisibilityTimeout: (messages) => {
        const [message] = messages;
        if (!message) return 0;
        return returnAfter.get(message) ?? options.redeliveryDelaySeconds(message);
      },
    });

    consumer.on('message_received', () => {
      busy = true;
      stats.inFlight += 1;
      receiveSucceeded();
    });
    consumer.on('response_processed', () => {
      busy = false;
      releasing = false;
      stats.inFlight -= 1;
      for (const wake of idle) wake();
    });
    consumer.on('empty', receiveSucceeded);
    consumer.on('processing_error', (err) => {
      // ReturnToQueue is our own signal and was logged where it was decided.
      const cause = (err as { cause?: unknown }).cause;
      if (cause instanceof ReturnToQueue) return;
      log.error({ slot: index, err: describeError(cause ?? err) }, 'unexpected failure while processing a message');
    });
    consumer.on('error', (err, message) => {
      if (stopping.signal.aborted && !message) return; // a receive cancelled by the stop
      const fields = { slot: index, reason: transientReason(err), err: describeError(err) };
      if (message) {
        // Heartbeats of every running job fail together in an outage: one warning per interval.
        const now = Date.now();
        if (now - lastMessageCallWarning >= MESSAGE_CALL_WARNING_INTERVAL_MS) {
          log.warn({ ...fields, suppressed: suppressedMessageCallWarnings }, 'a queue call for a received message failed; the message may be received again');
          lastMessageCallWarning = now;
          suppressedMessageCallWarnings = 0;
        } else {
          suppressedMessageCallWarnings += 1;
          log.debug(fields, 'a queue call for a received message failed');
        }
        return;
      }
      backoffMs = Math.min(RECEIVE_BACKOFF_MAX_MS, Math.max(RECEIVE_BACKOFF_MIN_MS, backoffMs * 2));
      backoffMs = Math.round(backoffMs * (0.75 + Math.random() * 0.5));
      if (!receiveFailing) {
        receiveFailing = true;
        log.warn({ ...fields, retryInMs: backoffMs }, 'receiving from the jobs queue failed; backing off');
      } else {
        log.debug({ ...fields, retryInMs: backoffMs }, 'receiving from the jobs queue still fails');
      }
    });

    return { consumer, isBusy: () => busy && !releasing, isPolling: () => consumer.status.isPolling };
  });

  return {
    stats,
    start() {
      // The start-up checks have just reached the queue: count that as the first answer.
      stats.lastReceiveAt = Date.now();
      for (const slot of slots) slot.consumer.start();
    },
    async drain(deadline, onProgress) {
      stopping.abort();
      // No abort of the polls in flight: a long poll abandoned by the client can still be handed
      // messages by the server, which would then stay invisible until their visibility timeout.
      // They are let finish; whatever they bring is returned to the queue at once.
      for (const slot of slots) slot.consumer.stop();
      const pollsDone = Date.now() + options.pollWaitSeconds * 1000 + POLL_GRACE_MS;
      const hardStop = Math.max(deadline, pollsDone);
      const waitingFor = () =>
        slots.filter((slot) => slot.isPolling() && !(slot.isBusy() && Date.now() >= deadline)).length;
      while (waitingFor() > 0 && Date.now() < hardStop) {
        await new Promise<void>((resolve) => {
          const wake = () => {
            clearTimeout(timer);
            idle.delete(wake);
            resolve();
          };
          const timer = setTimeout(wake, 100);
          idle.add(wake);
        });
        onProgress?.();
      }
      return { unfinished: stats.inFlight };
    },
  };
}
