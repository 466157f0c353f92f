// The running worker's wiring (src/bootstrap.ts, src/worker/daemon.ts) in this process, against the
// in-process endpoint (test/support/fast-aws.ts): start-up, a stored job and a failed one end to
// end (outcome with the job's trace carried on, dead-letter entry, staged sources deleted), the
// counters and gauges as /metrics shows them, /healthz, what the ready line and the start warnings
// say, the status given to systemd, reload without a secret, and the drain; then reload with a
// secret (applied, refused, unreadable), and a job held on its staged image past its deadline and
// through a drain (the timeout's verdict, the drain's systemd extension and status). The integration
// suites run the built process; this is what mutation testing sees of the same wiring.
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateQueueCommand, type Message } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bootstrap } from '../../src/bootstrap.ts';
import { checkEnvironment } from '../../src/config.ts';
import type { Outcome } from '../../src/job/contract.ts';
import { createDaemon, type Daemon } from '../../src/worker/daemon.ts';
import type { Notifier } from '../../src/worker/notify.ts';
import { createTracing, type JobEnd, type Tracing } from '../../src/worker/tracing.ts';
import { startFastAws, type FastAws } from '../support/fast-aws.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { jpegImage } from '../support/images.ts';
import { inlineJob, sendJob, stagedImage } from '../support/jobs.ts';
import { parseMetrics } from '../support/metrics.ts';
import { createStack, drainQueue, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { stackEnv } from '../support/worker-process.ts';
import { until } from '../support/wait.ts';
import { memoryLogger } from './helpers.ts';

const MIB = 1_048_576;
const PRODUCER_TRACE = '0af7651916cd43dd8448eb211c80319c';
const PRODUCER_SPAN = 'b7ad6b7169203331';

/** A notifier that remembers what the worker told systemd. */
function recordingNotifier(): Notifier & { readonly calls: string[] } {
  const calls: string[] = [];
  return {
    enabled: false,
    calls,
    ready: (status) => void calls.push(`ready ${status ?? ''}`),
    reloading: () => void calls.push('reloading'),
    status: (text) => void calls.push(`status ${text}`),
    stopping: () => void calls.push('stopping'),
    extendTimeout: (seconds) => void calls.push(`extend ${seconds}`),
    startWatchdog: () => void calls.push('watchdog'),
    close: () => void calls.push('close'),
  };
}

/** The tracing the daemon builds, with each job's phases (one list per trace) and end remembered. */
function recordingTracing(inner: Tracing): Tracing & { readonly ends: JobEnd[]; readonly phases: string[][] } {
  const ends: JobEnd[] = [];
  const phases: string[][] = [];
  return {
    ...inner,
    ends,
    phases,
    forMessage: (message) => {
      const trace = inner.forMessage(message);
      const entered: string[] = [];
      phases.push(entered);
      return {
        ...trace,
        phase: (name) => {
          entered.push(name);
          trace.phase(name);
        },
        end: (result) => {
          ends.push(result);
          trace.end(result);
        },
      };
    },
  };
}

let aws: FastAws;
beforeAll(async () => {
  aws = await startFastAws({ delayMs: 0 });
  // The default credential chain reads these first: the endpoint's dummy values, never real ones.
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await aws.stop();
});

async function startDaemon(stack: Stack, overrides: Record<string, string | undefined>) {
  const env = stackEnv(stack, aws.imdsEndpoint, { METRICS_PORT: '0', METRICS_HOST: '127.0.0.1', POLL_WAIT_SECONDS: '1', ...overrides });
  const { log, lines } = memoryLogger();
  const notifier = recordingNotifier();
  const ready = await bootstrap(env, checkEnvironment(env), log, notifier);
  const tracing = recordingTracing(await createTracing(ready.config.tracing, ready.config.queueUrl, log));
  const daemon = createDaemon(ready, { log, notifier, tracing });
  await daemon.start();
  return { daemon, lines, notifier, ready, tracing };
}

async function stop(daemon: Daemon): Promise<number> {
  const stopping = daemon.drain();
  // The idle long poll is answered at once, so the drain need not wait it out.
  aws.releaseWaits();
  return stopping;
}

const lineOf = (lines: () => Record<string, unknown>[], msg: string) => lines().find((l) => l.msg === msg);

describe('the daemon, wired to the in-process endpoint', () => {
  it('stores a job, dead-letters a bad one and deletes both messages, counting each fate, then drains', { timeout: 30_000 }, async () => {
    // Prepare
    const stack = await createStack(aws.endpoint, uniqueName('daemon'));
    const { daemon, lines, notifier, tracing } = await startDaemon(stack, { DELETE_STAGED_SOURCES: 'true', MAX_IMAGES_PER_JOB: '20', DRAIN_TIMEOUT_SECONDS: '30' });
    const metricsUrl = String(lineOf(lines, 'ready: receiving jobs')?.metrics);
    const [inline, stagedBytes] = await Promise.all([jpegImage({ width: 320, height: 400 }), jpegImage({ width: 400, height: 320 })]);
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.stagingBucket, Key: 'uploads/1', Body: stagedBytes }));

    // Act
    await sendJob(stack, inlineJob('alice', [inline], 'job-good'), { traceparent: { DataType: 'String', StringValue: `00-${PRODUCER_TRACE}-${PRODUCER_SPAN}-01` } });
    await sendJob(stack, { version: 1, jobId: 'job-staged', userId: 'bob', images: [stagedImage(stack.stagingBucket, 'uploads/1', stagedBytes)] });
    await sendJob(stack, { version: 1, jobId: 'job-bad', userId: 'carol', images: [{ data: Buffer.from('not an image').toString('base64') }] }, { source: { DataType: 'String', StringValue: 'test' } });
    const results = await drainQueue(stack.sqs, stack.resultQueueUrl ?? '', { expected: 3, timeoutMs: 20_000 });
    const dead = await drainQueue(stack.sqs, stack.deadLetterQueueUrl ?? '', { expected: 1, timeoutMs: 10_000 });
    const jobsQueue = stack.jobsQueueUrl.split('/').at(-1) ?? '';
    await vi.waitUntil(() => aws.queueDepth(jobsQueue).inFlight === 0, { timeout: 5_000, interval: 20 });
    const scraped = await fetch(`${metricsUrl}/metrics`);
    const metrics = parseMetrics(await scraped.text());
    const health = await fetch(`${metricsUrl}/healthz`);
    const healthBody = (await health.json()) as Record<string, unknown>;
    const notFound = (await fetch(`${metricsUrl}/nowhere`)).status;
    const posted = (await fetch(`${metricsUrl}/metrics`, { method: 'POST' })).status;
    const withQuery = (await fetch(`${metricsUrl}/healthz?verbose=1`)).status;
    await daemon.reload();
    const code = await stop(daemon);

    // Assess: the outcomes, each with its attributes; the good job's continues its producer's trace.
    const byJob = new Map(results.map((m: Message) => [(JSON.parse(m.Body ?? '{}') as Outcome).jobId, m]));
    const good = byJob.get('job-good');
    expect(JSON.parse(good?.Body ?? '{}')).toMatchObject({ status: 'succeeded', jobId: 'job-good' });
    expect(good?.MessageAttributes?.status?.StringValue).toBe('succeeded');
    expect(good?.MessageAttributes?.traceparent?.StringValue).toMatch(new RegExp(`^00-${PRODUCER_TRACE}-[0-9a-f]{16}-01$`));
    expect(JSON.parse(byJob.get('job-staged')?.Body ?? '{}')).toMatchObject({ status: 'succeeded' });
    expect(JSON.parse(byJob.get('job-bad')?.Body ?? '{}')).toMatchObject({ status: 'failed', error: { code: 'INVALID_IMAGE' } });
    expect(dead.map((m) => [m.MessageAttributes?.ErrorCode?.StringValue, m.MessageAttributes?.source?.StringValue])).toEqual([['INVALID_IMAGE', 'test']]);
    // How each job's span ends: its verdict, and what it stored or why it failed.
    expect([...tracing.ends].sort((a, b) => String(a.jobId).localeCompare(String(b.jobId)))).toEqual([
      { verdict: 'failed', jobId: 'job-bad', code: 'INVALID_IMAGE', error: expect.stringMatching(/\S/) },
      { verdict: 'succeeded', jobId: 'job-good', references: 1 },
      { verdict: 'succeeded', jobId: 'job-staged', references: 1 },
    ]);
    // One trace per job, from its receipt through its phases to the outcome.
    expect(tracing.phases.map((p) => [p[0], p.at(-1), p.length > 2])).toEqual(Array.from({ length: 3 }, () => ['download', 'outcome', true]));
    expect(await listKeys(stack.s3, stack.bucket)).toHaveLength(2);
    expect(await listKeys(stack.s3, stack.stagingBucket ?? '')).toEqual([]);
    expect(aws.queueDepth(jobsQueue)).toMatchObject({ visible: 0, inFlight: 0 });

    // Every counter and gauge as scraped.
    expect(metrics).toMatchObject({
      enrollment_jobs_received_total: 3,
      enrollment_jobs_succeeded_total: 2,
      'enrollment_jobs_failed_total{code="INVALID_IMAGE"}': 1,
      enrollment_jobs_released_total: 0,
      enrollment_jobs_in_flight: 0,
      enrollment_slots_stuck: 0,
      'enrollment_memory_budget_bytes{share="held"}': Math.floor((384 * MIB) / 3),
      'enrollment_memory_budget_bytes{share="decode"}': 384 * MIB - Math.floor((384 * MIB) / 3),
      'enrollment_memory_waiting{share="held"}': 0,
    });
    expect(Object.entries(metrics).filter(([name]) => name.startsWith('enrollment_references_stored_total')).reduce((sum, [, n]) => sum + n, 0)).toBe(2);
    expect(metrics.enrollment_last_receive_timestamp_seconds).toBeGreaterThan(0);
    expect(metrics.enrollment_last_success_timestamp_seconds).toBeGreaterThan(0);
    expect([health.status, healthBody.status, healthBody.inFlight, healthBody.stuck, healthBody.lastTimeoutAt, notFound, posted, withQuery]).toEqual([200, 'ok', 0, 0, null, 404, 405, 200]);
    expect(health.headers.get('content-type')).toBe('application/json');
    expect(scraped.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(healthBody.lastReceiveAt).toEqual(expect.stringMatching(/^\d{4}-\d\d-\d\dT/));

    // What the worker said: the ready line, the warnings of its settings, reload, the stop.
    expect(lineOf(lines, 'ready: receiving jobs')).toMatchObject({
      queue: stack.jobsQueueUrl,
      bucket: stack.bucket,
      concurrency: 4,
      deadLetterQueue: stack.deadLetterQueueUrl,
      deadLetterSource: 'redrive policy',
      maxReceiveCount: 5,
      resultQueue: stack.resultQueueUrl,
      stagingBucket: stack.stagingBucket,
      signingKeys: expect.any(Object),
      maxInFlightBytes: 384 * MIB,
      jobTimeoutSeconds: 25,
      faceCheck: 'off',
      endpoint: aws.endpoint,
      metrics: expect.stringMatching(/^http:\/\/127\.0\.0\.1:[1-9]\d*$/),
      notify: false,
      tracing: 'off',
    });
    expect(lines().find((l) => l.allowUnsignedJobs === true)?.level).toBe('warn');
    // Every line: the service, the process, the level by name and an ISO time (src/log.ts).
    expect(lineOf(lines, 'AWS credentials')).toMatchObject({
      service: 'enrollment-worker',
      pid: process.pid,
      level: 'info',
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      credentialSource: expect.any(String),
      arn: expect.stringMatching(/^arn:aws:/),
      account: expect.any(String),
    });
    expect(lines().find((l) => l.worstJobBytes !== undefined)).toMatchObject({ level: 'warn', worstJobBytes: 20 * 10 * MIB, maxImagesPerJob: 20, heldShareBytes: Math.floor((384 * MIB) / 3) });
    expect(lines().some((l) => typeof l.msg === 'string' && l.msg.startsWith('no dead-letter queue'))).toBe(false);
    expect(lineOf(lines, 'reload: no secret is configured; nothing to re-read')?.level).toBe('info');
    expect(lineOf(lines, 'stopped')).toMatchObject({ succeeded: 2, failed: 1, retried: 0, released: 0, inFlight: 0 });
    expect(lines().some((l) => l.msg === 'drain timeout: unfinished jobs were cancelled and handed back to the queue')).toBe(false);
    expect(code).toBe(0);
    expect(daemon.guardMs).toBe(40_000);
    expect(notifier.calls[0]).toBe('ready in flight 0; succeeded 0, failed 0, retried 0; last success none yet');
    expect(notifier.calls).toContain('watchdog');
    expect(notifier.calls.slice(-2)).toEqual(['stopping', 'close']);
    expect(notifier.calls).not.toContain('reloading');
  });

  it('warns at start when there is no dead-letter queue, and logs a failed job in full instead', { timeout: 30_000 }, async () => {
    // Prepare
    const stack = await createStack(aws.endpoint, uniqueName('daemon-nodlq'), { withDeadLetterQueue: false });
    // One job's worst case (1 × 10 MiB) exactly fills the held share (a third of 30 MiB): no warning.
    const { daemon, lines } = await startDaemon(stack, { POLL_WAIT_SECONDS: '3', DRAIN_TIMEOUT_SECONDS: '1', MAX_IMAGES_PER_JOB: '1', MAX_IMAGE_BYTES: String(10 * MIB), MAX_IN_FLIGHT_BYTES: String(30 * MIB) });

    // Act
    await sendJob(stack, { version: 1, jobId: 'job-bad', userId: 'carol', images: [{ data: Buffer.from('not an image').toString('base64') }] });
    const results = await drainQueue(stack.sqs, stack.resultQueueUrl ?? '', { expected: 1, timeoutMs: 20_000 });
    await stop(daemon);

    // Assess
    expect(results.map((m) => (JSON.parse(m.Body ?? '{}') as Outcome).status)).toEqual(['failed']);
    expect(lines().find((l) => typeof l.msg === 'string' && l.msg.startsWith('no dead-letter queue'))?.level).toBe('warn');
    expect(lines().find((l) => l.msg === 'job failed')).toMatchObject({ level: 'error', deadLetter: 'none', code: 'INVALID_IMAGE' });
    expect(lineOf(lines, 'ready: receiving jobs')).toMatchObject({ deadLetterQueue: null, deadLetterSource: 'none', maxReceiveCount: null });
    expect(lines().some((l) => l.worstJobBytes !== undefined)).toBe(false);
    expect(daemon.guardMs).toBe(13_000);
  });
});

describe('reload with a secret', () => {
  it('applies what the secret changes, says what needs a restart, and refuses a lost signing key, an output that does not answer and an unreadable secret', { timeout: 30_000 }, async () => {
    // Prepare: the settings come from a secret named by SECRETS_NAME (the older of the two names).
    const stack = await createStack(aws.endpoint, uniqueName('daemon-secret'));
    const secret = uniqueName('worker');
    const keyA = 'a'.repeat(40);
    const keyB = 'b'.repeat(40);
    const otherResults = (await stack.sqs.send(new CreateQueueCommand({ QueueName: uniqueName('results') }))).QueueUrl ?? '';
    aws.putSecret(secret, JSON.stringify({ JOB_SIGNING_KEY: keyA }));
    const { daemon, lines, notifier } = await startDaemon(stack, { SECRETS_NAME: secret, METRICS_PORT: undefined });
    const started = lineOf(lines, 'ready: receiving jobs')?.signingKeys as { current: string | null };
    const reloadWith = async (settings: Record<string, string> | undefined) => {
      aws.putSecret(secret, settings && JSON.stringify(settings));
      const before = lines().length;
      const calls = notifier.calls.length;
      await daemon.reload();
      return { said: lines().slice(before), told: notifier.calls.slice(calls) };
    };

    // Act
    const applied = await reloadWith({ JOB_SIGNING_KEY: keyB, JOB_SIGNING_KEY_PREVIOUS: keyA, CONCURRENCY: '8', MAX_IMAGES_PER_JOB: '20', RESULT_QUEUE_URL: otherResults });
    const unchanged = await reloadWith({ JOB_SIGNING_KEY: keyB, JOB_SIGNING_KEY_PREVIOUS: keyA, MAX_IMAGES_PER_JOB: '20', RESULT_QUEUE_URL: otherResults });
    const keyless = await reloadWith({ RESULT_QUEUE_URL: otherResults });
    const missingQueue = `${aws.endpoint}/123456789012/${uniqueName('no-such-results')}`;
    const deadQueue = await reloadWith({ JOB_SIGNING_KEY: keyB, RESULT_QUEUE_URL: missingQueue });
    const deadBucket = await reloadWith({ JOB_SIGNING_KEY: keyB, RESULT_QUEUE_URL: otherResults, S3_BUCKET: uniqueName('no-such-bucket') });
    const unreadable = await reloadWith(undefined);
    await stop(daemon);

    // Assess: started with the secret's signing key (so no warning of unsigned jobs), and no metrics port.
    expect(started.current).toMatch(/^[0-9a-f]{8}$/);
    expect(lines().some((l) => l.allowUnsignedJobs !== undefined)).toBe(false);
    expect(lineOf(lines, 'ready: receiving jobs')?.metrics).toBeNull();
    // Assess: the first reload applies what is read per job and names the rest for the next start.
    const reread = applied.said.find((l) => l.msg === 'reload: secret re-read');
    expect(reread).toMatchObject({ level: 'info', secret, needRestart: ['concurrency'] });
    expect((reread?.applied as string[]).sort()).toEqual(['maxImagesPerJob', 'resultQueueUrl', 'signingKeys']);
    const keys = reread?.signingKeys as { current: string | null; previous: string | null };
    expect([keys.current === started.current, keys.previous]).toEqual([false, started.current]);
    expect(applied.said.find((l) => l.msg === 'reload: these settings take effect only at the next start')).toMatchObject({ level: 'warn', settings: ['concurrency'] });
    expect(applied.said.find((l) => l.worstJobBytes !== undefined)).toMatchObject({ level: 'warn', maxImagesPerJob: 20 });
    expect(applied.told).toEqual(['reloading', 'ready in flight 0; succeeded 0, failed 0, retried 0; last success none yet']);
    // The same settings in force again, CONCURRENCY back to the running one: nothing to apply or restart for.
    expect(unchanged.said.find((l) => l.msg === 'reload: secret re-read')).toMatchObject({ applied: [], needRestart: [], signingKeys: keys });
    expect(unchanged.said.some((l) => l.msg === 'reload: these settings take effect only at the next start')).toBe(false);

    // Each refusal keeps the settings in force, says why, and tells systemd the worker is ready again.
    const problemsOf = (said: Record<string, unknown>[]) => said.find((l) => l.msg === 'reload failed: the worker keeps its current settings');
    expect(problemsOf(keyless.said)).toMatchObject({ level: 'error', problems: ['JOB_SIGNING_KEY is gone from the secret: a reload does not switch job authentication off (restart to do that)'] });
    expect(problemsOf(deadQueue.said)?.problems).toEqual([expect.stringMatching(new RegExp(`^RESULT_QUEUE_URL: the result queue ${missingQueue} cannot be used: `))]);
    expect(problemsOf(deadBucket.said)?.problems).toEqual([expect.stringMatching(/^S3_BUCKET: references cannot be written to s3:\/\/no-such-bucket/)]);
    expect(problemsOf(unreadable.said)?.problems).toEqual([`SECRETS_NAME secret "${secret}" cannot be read: ResourceNotFoundException: Secrets Manager can't find the specified secret.`]);
    for (const refused of [keyless, deadQueue, deadBucket, unreadable]) {
      expect(refused.said.some((l) => l.msg === 'reload: secret re-read')).toBe(false);
      expect(refused.told).toEqual(['reloading', 'ready in flight 0; succeeded 0, failed 0, retried 0; last success none yet']);
    }
    expect(aws.requests['secretsmanager:GetSecretValue']).toBeGreaterThanOrEqual(7);
  });
});

describe('a job past its deadline, and a drain that outlasts its jobs', () => {
  it('hands a timed-out job back as a retry, then asks systemd for more time once while the drain waits, and cancels what is left', { timeout: 30_000 }, async () => {
    // Prepare: the worker's calls go through a proxy that holds every request for one staged image.
    const stack = await createStack(aws.endpoint, uniqueName('daemon-held'));
    const proxy = await startFaultProxy(aws.endpoint);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let held = 0;
    proxy.setRule((req) => (req.path.includes('/uploads/held') ? (held++, { kind: 'hold', until: released }) : undefined));
    try {
      const { daemon, lines, notifier, tracing } = await startDaemon(stack, { AWS_ENDPOINT_URL: proxy.url, JOB_TIMEOUT_SECONDS: '3', DRAIN_TIMEOUT_SECONDS: '1' });
      const metricsUrl = String(lineOf(lines, 'ready: receiving jobs')?.metrics);

      // Act: the job times out on its held download; its retry comes back and is held again when the stop begins.
      await sendJob(stack, { version: 1, jobId: 'job-held', userId: 'dave', images: [stagedImage(stack.stagingBucket, 'uploads/held', Buffer.from('x'))] });
      const timedOut = await until('the job to time out', () => tracing.ends[0], 10_000);
      const asked = Date.now();
      const health = await fetch(`${metricsUrl}/healthz`);
      const answered = Date.now();
      const healthBody = (await health.json()) as { status: string; lastTimeoutAt: string | null };
      const metrics = parseMetrics(await (await fetch(`${metricsUrl}/metrics`)).text());
      await until('the retry to be held again', () => held >= 2, 10_000);
      const stopping = notifier.calls.length;
      const code = await stop(daemon);

      // Assess: the timeout is a retry named as one, in the phase it was cut short in.
      expect(timedOut).toEqual({ verdict: 'retry', code: 'timeout', error: 'timed out in its download phase' });
      expect(healthBody.lastTimeoutAt).toMatch(/^\d{4}-\d\d-\d\dT/);
      const lastTimeoutAt = Date.parse(healthBody.lastTimeoutAt ?? '');
      // Unhealthy for JOB_TIMEOUT_SECONDS after a timeout (when the answer came within them).
      if (answered - lastTimeoutAt < 3_000) expect([health.status, healthBody.status]).toEqual([503, 'unhealthy']);
      if (asked - lastTimeoutAt >= 3_000) expect(health.status).toBe(200);
      expect(lines().find((l) => l.msg === 'drain timeout: unfinished jobs were cancelled and handed back to the queue')).toMatchObject({ level: 'warn', unfinished: 1 });
      expect(tracing.ends.at(-1)).toEqual({ verdict: 'released' });
      // The slot's first phase, the judgement entering it, then its settlement.
      expect(tracing.phases[0]).toEqual(['download', 'download', 'outcome']);
      // One extension while the drain waits (at most one every 5 s), with the status as it stood.
      expect(notifier.calls.slice(stopping)).toEqual(['stopping', 'extend 15', 'status stopping: in flight 1; succeeded 0, failed 0, retried 1; last success none yet', 'close']);
      expect(metrics).toMatchObject({ 'enrollment_jobs_retried_total{reason="timeout"}': 1, 'enrollment_job_duration_seconds_count{outcome="retry"}': 1 });
      expect(lineOf(lines, 'stopped')).toMatchObject({ retried: 1, timedOut: 1, released: 1 });
      expect(code).toBe(0);
    } finally {
      release();
      await proxy.close();
    }
  });
});
