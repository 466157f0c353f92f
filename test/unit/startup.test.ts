// The start-up checks (src/worker/startup.ts) without a process: untilReady with its injected sleep
// and a clock the sleep moves (so a deadline is reached without waiting for it), the queue ARN, and
// inspectJobsQueue against a fake SQS client that routes by command class.
import { GetQueueAttributesCommand, GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/config.ts';
import { parseQueueArn } from '../../src/aws/queues.ts';
import { inspectJobsQueue, StartupError, untilReady } from '../../src/worker/startup.ts';
import { memoryLogger, networkError, rejectionOf, sdkError } from './helpers.ts';

const T0 = new Date('2026-03-01T12:00:00Z').getTime();

beforeEach(() => {
  // Only the clock is faked: the sleep below moves it, and nothing else waits.
  vi.useFakeTimers({ toFake: ['Date'], now: T0 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** A sleep that records each wait and moves the clock by it, at once. */
function movingSleep() {
  const waits: number[] = [];
  return {
    waits,
    sleep: async (ms: number) => {
      waits.push(ms);
      vi.setSystemTime(Date.now() + ms);
    },
  };
}

/** An attempt that fails with the given errors in turn, then returns `result`. */
function failingThen<T>(errors: readonly unknown[], result: T) {
  let calls = 0;
  return {
    calls: () => calls,
    attempt: async () => {
      calls += 1;
      const error = errors[calls - 1];
      if (error !== undefined) throw error;
      return result;
    },
  };
}

describe('untilReady', () => {
  it('retries transient errors with a backoff that doubles from 1 s, and returns what the attempt gave', async () => {
    // Prepare
    const { log, lines } = memoryLogger();
    const clock = movingSleep();
    const transient = [networkError('ECONNREFUSED'), sdkError('InternalError', 500), sdkError('ThrottlingException', 400), sdkError('CredentialsProviderError')];
    const attempt = failingThen(transient, 'ready');

    // Act
    const result = await untilReady('the thing', attempt.attempt, { deadline: T0 + 60_000, log, sleep: clock.sleep });

    // Assess
    expect(result).toBe('ready');
    expect(attempt.calls()).toBe(5);
    expect(clock.waits).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(lines().map((l) => [l.level, l.msg])).toEqual([
      ['warn', 'the thing: not ready yet, retrying'],
      ['debug', 'the thing: still not ready'],
      ['debug', 'the thing: still not ready'],
      ['debug', 'the thing: still not ready'],
      ['info', 'the thing: ready'],
    ]);
  });

  it('says why in the first failure (once, as a warning) and how many tries the recovery took', async () => {
    // Prepare
    const { log, lines } = memoryLogger();
    const clock = movingSleep();
    const attempt = failingThen([networkError('ECONNRESET'), networkError('ECONNRESET')], 42);

    // Act
    await untilReady('AWS credentials', attempt.attempt, { deadline: T0 + 60_000, log, sleep: clock.sleep });

    // Assess
    const warnings = lines().filter((l) => l.msg === 'AWS credentials: not ready yet, retrying');
    expect(warnings).toEqual([
      expect.objectContaining({ tries: 1, reason: 'network', retryInMs: 1_000, err: { name: 'Error', message: 'read ECONNRESET' } }),
    ]);
    expect(lines().filter((l) => l.msg === 'AWS credentials: ready')).toEqual([expect.objectContaining({ tries: 3 })]);
  });

  it('logs nothing when the first attempt succeeds', async () => {
    // Prepare
    const { log, lines } = memoryLogger();
    const clock = movingSleep();

    // Act
    const result = await untilReady('the queue', async () => 'at once', { deadline: T0 + 60_000, log, sleep: clock.sleep });

    // Assess
    expect(result).toBe('at once');
    expect(clock.waits).toEqual([]);
    expect(lines()).toEqual([]);
  });

  it('caps the backoff at 10 s', async () => {
    // Prepare
    const { log } = memoryLogger();
    const clock = movingSleep();
    const attempt = failingThen(Array.from({ length: 7 }, () => networkError('ETIMEDOUT')), 'late');

    // Act
    await untilReady('the thing', attempt.attempt, { deadline: T0 + 10 * 60_000, log, sleep: clock.sleep });

    // Assess
    expect(clock.waits).toEqual([1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]);
  });

  it('gives up with a StartupError when the next wait would pass the deadline, naming the last error and keeping it as the cause', async () => {
    // Prepare
    const { log } = memoryLogger();
    const clock = movingSleep();
    const last = sdkError('ServiceUnavailable', 503);
    const attempt = failingThen([networkError('ECONNREFUSED'), networkError('ECONNREFUSED'), last, networkError('ECONNREFUSED')], 'never');

    // Act: waits of 1 s and 2 s fit in 5 s; the third (4 s, at 3 s) would not.
    const error = await rejectionOf(() => untilReady('the jobs queue', attempt.attempt, { deadline: T0 + 5_000, log, sleep: clock.sleep }));

    // Assess
    expect(error).toBeInstanceOf(StartupError);
    expect(error).toMatchObject({
      name: 'StartupError',
      message: 'the jobs queue did not succeed before the start-up timeout: ServiceUnavailable from the service',
      cause: last,
    });
    expect(clock.waits).toEqual([1_000, 2_000]);
    expect(attempt.calls()).toBe(3);
  });

  it('gives up at the deadline on an attempt that never answers', async () => {
    // Prepare: the deadline has passed; the attempt hangs.
    const { log } = memoryLogger();
    const clock = movingSleep();

    // Act
    const error = await rejectionOf(() => untilReady('the secret', () => new Promise<never>(() => {}), { deadline: T0 - 1, log, sleep: clock.sleep }));

    // Assess
    expect(error).toBeInstanceOf(StartupError);
    expect(error).toMatchObject({ message: 'the secret did not succeed before the start-up timeout: no answer' });
    expect(clock.waits).toEqual([]);
  });

  it('rethrows an error that is not transient at once, as it came', async () => {
    // Prepare
    const { log, lines } = memoryLogger();
    const clock = movingSleep();
    const denied = sdkError('AccessDenied', 403);
    const bug = new TypeError('cannot read properties of undefined');

    // Act
    const first = await rejectionOf(() => untilReady('the queue', failingThen([denied], 0).attempt, { deadline: T0 + 60_000, log, sleep: clock.sleep }));
    const second = await rejectionOf(() => untilReady('the queue', failingThen([bug], 0).attempt, { deadline: T0 + 60_000, log, sleep: clock.sleep }));

    // Assess
    expect(first).toBe(denied);
    expect(second).toBe(bug);
    expect(clock.waits).toEqual([]);
    expect(lines()).toEqual([]);
  });

  it('throws what explain makes of an error (a ConfigError naming the variable), even of a transient one', async () => {
    // Prepare
    const { log } = memoryLogger();
    const clock = movingSleep();
    const missing = sdkError('QueueDoesNotExist', 400);
    const explain = (e: unknown) => (e === missing ? new ConfigError(['SQS_QUEUE_URL: the queue does not exist']) : undefined);
    const throttled = sdkError('ThrottlingException', 400);

    // Act
    const explained = await rejectionOf(() => untilReady('the queue', failingThen([missing], 0).attempt, { deadline: T0 + 60_000, log, explain, sleep: clock.sleep }));
    const retried = await untilReady('the queue', failingThen([throttled], 'then ready').attempt, { deadline: T0 + 60_000, log, explain, sleep: clock.sleep });

    // Assess
    expect(explained).toBeInstanceOf(ConfigError);
    expect((explained as ConfigError).problems).toEqual(['SQS_QUEUE_URL: the queue does not exist']);
    expect(retried).toBe('then ready');
    expect(clock.waits).toEqual([1_000]);
  });
});

describe('parseQueueArn', () => {
  it.each([
    ['arn:aws:sqs:us-east-1:123456789012:enrollment-dlq', { account: '123456789012', name: 'enrollment-dlq' }],
    ['arn:aws-cn:sqs:cn-north-1:123456789012:jobs.fifo', { account: '123456789012', name: 'jobs.fifo' }],
    ['arn:aws-us-gov:sqs:us-gov-west-1:000000000000:q', { account: '000000000000', name: 'q' }],
  ])('reads the account and the name of %s', (arn, parts) => {
    // Assess
    expect(parseQueueArn(arn)).toEqual(parts);
  });

  it.each([
    ['not an ARN', 'enrollment-dlq'],
    ['another service', 'arn:aws:sns:us-east-1:123456789012:topic'],
    ['another scheme', 'urn:aws:sqs:us-east-1:123456789012:enrollment-dlq'],
    ['too few parts', 'arn:aws:sqs:us-east-1:enrollment-dlq'],
    ['too many parts', 'arn:aws:sqs:us-east-1:123456789012:enrollment-dlq:extra'],
    ['no account', 'arn:aws:sqs:us-east-1::enrollment-dlq'],
    ['no name', 'arn:aws:sqs:us-east-1:123456789012:'],
    ['a URL', 'https://sqs.us-east-1.amazonaws.com/123456789012/enrollment-dlq'],
    ['empty', ''],
  ])('refuses %s', (_what, arn) => {
    // Assess
    expect(parseQueueArn(arn)).toBeUndefined();
  });
});

const JOBS_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/enrollment-jobs';
const DLQ_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/enrollment-dlq';
const redrive = (targetArn: unknown, maxReceiveCount: unknown = 5) => JSON.stringify({ deadLetterTargetArn: targetArn, maxReceiveCount });

type QueueCommand = GetQueueAttributesCommand | GetQueueUrlCommand;

type Answer<T> = T | Error;

/**
 * A fake SQS client that answers by command class: the jobs queue's attributes (or, given a function,
 * each queue's by its URL), and the URL of a queue by name and owner (undefined: the queue does not
 * exist). An Error is thrown as the answer. Records every command.
 */
function fakeQueues(options: { attributes?: Answer<Record<string, string>> | ((queueUrl: string) => Answer<Record<string, string>>); urls?: Record<string, Answer<string>> }) {
  const sent: QueueCommand[] = [];
  const client = {
    send: async (command: QueueCommand) => {
      sent.push(command);
      if (command instanceof GetQueueAttributesCommand) {
        const attributes = typeof options.attributes === 'function' ? options.attributes(command.input.QueueUrl ?? '') : options.attributes;
        if (attributes instanceof Error) throw attributes;
        return { Attributes: attributes ?? {} };
      }
      const url = options.urls?.[`${command.input.QueueOwnerAWSAccountId ?? ''}/${command.input.QueueName ?? ''}`];
      if (url === undefined) throw sdkError('QueueDoesNotExist', 400);
      if (url instanceof Error) throw url;
      return { QueueUrl: url };
    },
  } as unknown as SQSClient;
  return { client, sent };
}

describe('inspectJobsQueue', () => {
  it('finds the dead-letter queue from the redrive policy, by name and owner, with its maxReceiveCount', async () => {
    // Prepare
    const { log, lines } = memoryLogger();
    const sqs = fakeQueues({
      attributes: { RedrivePolicy: redrive('arn:aws:sqs:us-east-1:123456789012:enrollment-dlq', 3), QueueArn: 'arn:aws:sqs:us-east-1:123456789012:enrollment-jobs' },
      urls: { '123456789012/enrollment-dlq': DLQ_URL },
    });

    // Act
    const facts = await inspectJobsQueue(sqs.client, JOBS_URL, undefined, T0 + 60_000, log);

    // Assess
    expect(facts).toEqual({ deadLetterQueueUrl: DLQ_URL, deadLetterSource: 'redrive policy', maxReceiveCount: 3 });
    const attributes = sqs.sent.find((c): c is GetQueueAttributesCommand => c instanceof GetQueueAttributesCommand);
    expect(attributes?.input.QueueUrl).toBe(JOBS_URL);
    expect(attributes?.input.AttributeNames).toEqual(expect.arrayContaining(['RedrivePolicy', 'QueueArn']));
    const lookup = sqs.sent.find((c): c is GetQueueUrlCommand => c instanceof GetQueueUrlCommand);
    expect(lookup?.input).toEqual({ QueueName: 'enrollment-dlq', QueueOwnerAWSAccountId: '123456789012' });
    expect(lines()).toEqual([]);
  });

  it('lets DEAD_LETTER_QUEUE_URL override the redrive policy, without looking the policy\'s queue up, keeping its maxReceiveCount', async () => {
    // Prepare
    const { log } = memoryLogger();
    const configured = 'https://sqs.us-east-1.amazonaws.com/123456789012/configured-dlq';
    const sqs = fakeQueues({ attributes: { RedrivePolicy: redrive('arn:aws:sqs:us-east-1:123456789012:enrollment-dlq', 4) }, urls: { '123456789012/enrollment-dlq': DLQ_URL } });

    // Act
    const facts = await inspectJobsQueue(sqs.client, JOBS_URL, configured, T0 + 60_000, log);

    // Assess
    expect(facts).toEqual({ deadLetterQueueUrl: configured, deadLetterSource: 'DEAD_LETTER_QUEUE_URL', maxReceiveCount: 4 });
    expect(sqs.sent.filter((c) => c instanceof GetQueueUrlCommand)).toEqual([]);
  });

  it('uses DEAD_LETTER_QUEUE_URL when the queue has no redrive policy', async () => {
    // Prepare
    const { log } = memoryLogger();
    const sqs = fakeQueues({ attributes: {} });

    // Act
    const facts = await inspectJobsQueue(sqs.client, JOBS_URL, DLQ_URL, T0 + 60_000, log);

    // Assess
    expect(facts).toEqual({ deadLetterQueueUrl: DLQ_URL, deadLetterSource: 'DEAD_LETTER_QUEUE_URL', maxReceiveCount: undefined });
  });

  it('reports no dead-letter queue when there is neither a policy nor DEAD_LETTER_QUEUE_URL', async () => {
    // Prepare
    const { log } = memoryLogger();
    const sqs = fakeQueues({ attributes: { QueueArn: 'arn:aws:sqs:us-east-1:123456789012:enrollment-jobs' } });

    // Act
    const facts = await inspectJobsQueue(sqs.client, JOBS_URL, undefined, T0 + 60_000, log);

    // Assess
    expect(facts).toEqual({ deadLetterQueueUrl: undefined, deadLetterSource: 'none', maxReceiveCount: undefined });
  });

  it('refuses a redrive policy that names the jobs queue itself (exit 78), under any spelling of its URL', async () => {
    // Prepare: the policy's queue resolves to the jobs queue, spelled with the legacy host.
    const { log } = memoryLogger();
    const sqs = fakeQueues({
      attributes: { RedrivePolicy: redrive('arn:aws:sqs:us-east-1:123456789012:enrollment-jobs') },
      urls: { '123456789012/enrollment-jobs': 'https://queue.amazonaws.com/123456789012/enrollment-jobs' },
    });

    // Act
    const error = await rejectionOf(() => inspectJobsQueue(sqs.client, JOBS_URL, undefined, T0 + 60_000, log));

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual(['SQS_QUEUE_URL: its redrive policy names the jobs queue itself as the dead-letter queue']);
  });

  it('turns a jobs queue that does not exist into a ConfigError naming SQS_QUEUE_URL', async () => {
    // Prepare
    const { log } = memoryLogger();
    const sqs = fakeQueues({ attributes: sdkError('QueueDoesNotExist', 400) });

    // Act
    const error = await rejectionOf(() => inspectJobsQueue(sqs.client, JOBS_URL, undefined, T0 + 60_000, log));

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([`SQS_QUEUE_URL: the queue ${JOBS_URL} cannot be used: QueueDoesNotExist: QueueDoesNotExist from the service`]);
  });

  it('refuses a DEAD_LETTER_QUEUE_URL that does not exist, naming it', async () => {
    // Prepare
    const sqs = fakeQueues({ attributes: (url) => (url === DLQ_URL ? sdkError('QueueDoesNotExist', 400) : {}) });

    // Act
    const error = await rejectionOf(() => inspectJobsQueue(sqs.client, JOBS_URL, DLQ_URL, T0 + 60_000, memoryLogger().log));

    // Assess
    expect((error as ConfigError).problems).toEqual([`DEAD_LETTER_QUEUE_URL: the dead-letter queue ${DLQ_URL} cannot be used: QueueDoesNotExist: QueueDoesNotExist from the service`]);
  });

  it.each([
    ['the jobs queue', undefined, fakeQueues({ attributes: networkError('ECONNRESET') })],
    ['the dead-letter queue', DLQ_URL, fakeQueues({ attributes: (url: string) => (url === DLQ_URL ? networkError('ECONNRESET') : {}) })],
    ['the dead-letter queue', undefined, fakeQueues({ attributes: { RedrivePolicy: redrive('arn:aws:sqs:us-east-1:123456789012:enrollment-dlq') }, urls: { '123456789012/enrollment-dlq': networkError('ECONNRESET') } })],
  ])('names %s when it does not answer before the start-up timeout (DEAD_LETTER_QUEUE_URL %s)', async (what, deadLetterQueueUrl, sqs) => {
    // Act: the first retry would already end past the deadline.
    const error = await rejectionOf(() => inspectJobsQueue(sqs.client, JOBS_URL, deadLetterQueueUrl, T0 + 500, memoryLogger().log));

    // Assess
    expect(error).toBeInstanceOf(StartupError);
    expect((error as Error).message).toMatch(new RegExp(`^${what} did not succeed before the start-up timeout: `));
  });

  it('turns a dead-letter queue the policy names but that does not exist into a ConfigError naming it', async () => {
    // Prepare
    const { log } = memoryLogger();
    const sqs = fakeQueues({ attributes: { RedrivePolicy: redrive('arn:aws:sqs:us-east-1:123456789012:gone-dlq') } });

    // Act
    const error = await rejectionOf(() => inspectJobsQueue(sqs.client, JOBS_URL, undefined, T0 + 60_000, log));

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      'SQS_QUEUE_URL: the dead-letter queue "gone-dlq" named by its redrive policy cannot be used: QueueDoesNotExist: QueueDoesNotExist from the service',
    ]);
  });

  it.each([
    ['not JSON', '{deadLetterTargetArn:', true],
    ['a target that is not an SQS ARN', redrive('arn:aws:sns:us-east-1:123456789012:topic'), false],
    ['a target that is not a string', redrive(42), false],
  ])('ignores a redrive policy with %s: no dead-letter queue', async (_what, policy, warns) => {
    // Prepare
    const { log, lines } = memoryLogger();
    const sqs = fakeQueues({ attributes: { RedrivePolicy: policy } });

    // Act
    const facts = await inspectJobsQueue(sqs.client, JOBS_URL, undefined, T0 + 60_000, log);

    // Assess
    expect(facts.deadLetterQueueUrl).toBeUndefined();
    expect(facts.deadLetterSource).toBe('none');
    expect(lines().some((l) => l.msg === 'the jobs queue has a redrive policy that is not JSON; ignoring it')).toBe(warns);
  });

  it.each([
    ['0', undefined],
    ['-1', undefined],
    ['2.5', undefined],
    ['"7"', 7],
    ['"lots"', undefined],
  ])('reads maxReceiveCount %s as %j', async (count, expected) => {
    // Prepare
    const { log } = memoryLogger();
    const policy = `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:enrollment-dlq","maxReceiveCount":${count}}`;
    const sqs = fakeQueues({ attributes: { RedrivePolicy: policy }, urls: { '123456789012/enrollment-dlq': DLQ_URL } });

    // Act
    const facts = await inspectJobsQueue(sqs.client, JOBS_URL, undefined, T0 + 60_000, log);

    // Assess
    expect(facts.maxReceiveCount).toBe(expected);
  });
});
