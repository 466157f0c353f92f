// Partial batch failures end to end: SQS answers a batch call entry by entry, and an entry it
// refuses was not acted on. The built worker runs against the fast endpoint, whose entry-failure
// switch refuses one chosen entry of a delete, visibility, outcome or dead-letter batch; the job must
// then be retried or reported — never deleted without its outcome or its dead-letter entry — and
// every step is counted in /metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFastAws, type FastAws } from '../support/fast-aws.ts';
import { jpegImage } from '../support/images.ts';
import { inlineJob, outcomes, queueHolds, sendJob } from '../support/jobs.ts';
import { scrapeMetrics } from '../support/metrics.ts';
import { createStack, drainQueue, uniqueName, type Stack } from '../support/resources.ts';
import { stackEnv, startWorker, workerReaper, type LogLine, type WorkerProcess } from '../support/worker-process.ts';

const VISIBILITY_SECONDS = 4;
const reaper = workerReaper();
let aws: FastAws;
let stack: Stack;
let worker: WorkerProcess;
let metricsUrl: string;

beforeAll(async () => {
  aws = await startFastAws({ delayMs: 2 });
  stack = await createStack(aws.endpoint, uniqueName('partial'));
  // RETRY_BASE_SECONDS 0: a retry comes back at once. The visibility timeout is short, so a message
  // whose delete or retry delay was refused comes back soon; a heartbeat every second keeps a
  // running job's message hidden.
  const env = { METRICS_PORT: '0', VISIBILITY_TIMEOUT_SECONDS: String(VISIBILITY_SECONDS), HEARTBEAT_INTERVAL_SECONDS: '1', RETRY_BASE_SECONDS: '0', RETRY_MAX_SECONDS: '0' };
  worker = reaper.track(await startWorker(stackEnv(stack, aws.imdsEndpoint, env)));
  metricsUrl = `${String(worker.logs.find((l) => l.msg === 'ready: receiving jobs')?.metrics)}/metrics`;
});

afterAll(async () => {
  await reaper.killAll();
  await aws.stop();
});

/** Whether a batch entry's receipt handle is one of the jobs queue's (the fast endpoint's handles name their queue). */
const ofJobsQueue = (entry: Readonly<Record<string, unknown>>) =>
  Buffer.from(String(entry.ReceiptHandle ?? ''), 'base64url').toString().startsWith(`${stack.jobsQueueUrl.split('/').pop() ?? ''}\n`);
const bodyOf = (entry: Readonly<Record<string, unknown>>) => String(entry.MessageBody ?? '');
const line = (jobId: string, msg: string) => (l: LogLine) => l.jobId === jobId && String(l.msg).startsWith(msg);
const succeededLines = (jobId: string) => worker.logs.filter(line(jobId, 'job succeeded'));

describe('an entry SQS refuses is not taken as done', () => {
  it('a refused delete: the message is received again and settled again, not taken as deleted', async () => {
    const job = inlineJob('delete-refused', [await jpegImage()], 'delete-refused');
    aws.failBatchEntries({ action: 'DeleteMessageBatch', match: ofJobsQueue });

    const messageId = await sendJob(stack, job);
    const refused = await worker.waitForLog((l) => l.messageId === messageId && String(l.msg).startsWith('the message could not be deleted'));
    const again = await worker.waitForLog((l) => line(job.jobId, 'job succeeded')(l) && l.receiveCount === 2);
    const results = await outcomes(stack, 2);

    expect(refused).toMatchObject({ level: 'warn', reason: 'server' });
    expect(again).toMatchObject({ created: 0 });
    expect(results.map((o) => [o.jobId, o.status])).toEqual([
      [job.jobId, 'succeeded'],
      [job.jobId, 'succeeded'],
    ]);
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 });
  });

  it('a refused outcome: the stored job is retried until its outcome is sent, then deleted', async () => {
    const job = inlineJob('outcome-refused', [await jpegImage()], 'outcome-refused');
    aws.failBatchEntries({ action: 'SendMessageBatch', match: (e) => bodyOf(e).includes('"status":"succeeded"') && bodyOf(e).includes(job.jobId) });

    await sendJob(stack, job);
    const retry = await worker.waitForLog(line(job.jobId, 'the job was stored but its outcome could not be published'));
    const [outcome] = await outcomes(stack, 1);

    expect(retry).toMatchObject({ level: 'warn', outcome: 'retry', reason: 'server', receiveCount: 1 });
    expect(outcome).toMatchObject({ jobId: job.jobId, status: 'succeeded' });
    expect(succeededLines(job.jobId)).toEqual([expect.objectContaining({ receiveCount: 2, created: 0 })]);
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 });
  });

  it('a refused retry delay: said so, and the message comes back after its visibility timeout', async () => {
    const job = inlineJob('delay-refused', [await jpegImage()], 'delay-refused');
    aws.failBatchEntries({ action: 'SendMessageBatch', match: (e) => bodyOf(e).includes('"status":"succeeded"') && bodyOf(e).includes(job.jobId) });
    // The retry delay (0 s here), not a heartbeat (which sets the visibility timeout).
    aws.failBatchEntries({ action: 'ChangeMessageVisibilityBatch', match: (e) => ofJobsQueue(e) && e.VisibilityTimeout !== VISIBILITY_SECONDS });

    const messageId = await sendJob(stack, job);
    const refused = await worker.waitForLog((l) => l.messageId === messageId && String(l.msg).startsWith('the retry delay could not be set'));
    const [outcome] = await outcomes(stack, 1);

    expect(refused).toMatchObject({ level: 'warn', reason: 'server' });
    expect(outcome).toMatchObject({ jobId: job.jobId, status: 'succeeded' });
    expect(succeededLines(job.jobId)).toEqual([expect.objectContaining({ receiveCount: 2 })]);
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 });
  });

  it('a refused dead-letter entry: the failed job is retried, and ends with one entry and one outcome', async () => {
    const job = { ...inlineJob('dlq-refused', []), jobId: 'dlq-refused', images: [{ data: Buffer.from('not an image').toString('base64') }] };
    aws.failBatchEntries({ action: 'SendMessageBatch', match: (e) => bodyOf(e) === JSON.stringify(job) });

    await sendJob(stack, job);
    const retry = await worker.waitForLog(line(job.jobId, 'could not dead-letter a failed job'));
    const [outcome] = await outcomes(stack, 1);
    const dead = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 1, timeoutMs: 10_000 });

    expect(retry).toMatchObject({ level: 'warn', outcome: 'retry', reason: 'server', receiveCount: 1 });
    expect(outcome).toMatchObject({ jobId: job.jobId, status: 'failed', error: { code: 'INVALID_IMAGE' } });
    expect(dead.map((m) => [m.Body, m.MessageAttributes?.ErrorCode?.StringValue])).toEqual([[JSON.stringify(job), 'INVALID_IMAGE']]);
    await worker.waitForLog(line(job.jobId, 'job failed'));
    expect(worker.logs.filter(line(job.jobId, 'job failed'))).toEqual([expect.objectContaining({ receiveCount: 2, deadLetter: 'sent' })]);
    await queueHolds(stack, stack.jobsQueueUrl, { visible: 0, inFlight: 0 });
  });

  it('counts every step in /metrics: received, succeeded, failed and retried by reason', async () => {
    // Four jobs, each received twice; three retries for a refused entry, one failure.
    const metrics = await scrapeMetrics(metricsUrl);

    expect(metrics).toMatchObject({
      enrollment_jobs_received_total: 8,
      enrollment_jobs_succeeded_total: 4,
      'enrollment_jobs_failed_total{code="INVALID_IMAGE"}': 1,
      'enrollment_jobs_retried_total{reason="server"}': 3,
      'enrollment_job_duration_seconds_count{outcome="retry"}': 3,
      'enrollment_job_duration_seconds_count{outcome="succeeded"}': 4,
      'enrollment_job_duration_seconds_count{outcome="failed"}': 1,
      enrollment_jobs_in_flight: 0,
      enrollment_jobs_released_total: 0,
    });
  });
});
