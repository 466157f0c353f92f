// What ops see: the systemd notify protocol on a real datagram socket, `check`, the metrics and
// health endpoint, and a reload (SIGHUP) that re-reads the secret.
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { jpegImage } from '../support/images.ts';
import { scrapeMetrics } from '../support/metrics.ts';
import { listenForNotifications } from '../support/notify-listener.ts';
import { inlineJob, outcomes, sendJob } from '../support/jobs.ts';
import { createStack, TEST_REGION, uniqueName, type Stack } from '../support/resources.ts';
import { processState } from '../support/proc.ts';
import { sleep, until } from '../support/wait.ts';
import { spawnCli, stackEnv, startWorker, workerReaper } from '../support/worker-process.ts';

const emulator = inject('emulator');
const workers = workerReaper();
let stack: Stack;

beforeAll(async () => {
  stack = await createStack(emulator.endpoint, uniqueName('ops'));
});
afterAll(() => workers.killAll());

describe('sd_notify', () => {
  it('sends READY once running, then WATCHDOG pings and STATUS, and STOPPING at the drain', async () => {
    const socket = await listenForNotifications();
    try {
      const env = stackEnv(stack, emulator.imdsEndpoint, { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '1000000' });
      const worker = workers.track(spawnCli(['run'], env));
      await until('READY=1', () => socket.messages.some((m) => m.startsWith('READY=1')), 30_000);
      await until('three WATCHDOG=1', () => socket.messages.filter((m) => m === 'WATCHDOG=1').length >= 3, 30_000);
      await until('a STATUS update', () => socket.messages.some((m) => m.startsWith('STATUS=in flight')), 30_000);

      expect((await worker.stop('SIGTERM')).code).toBe(0);

      const first = (prefix: string) => socket.messages.findIndex((m) => m.startsWith(prefix));
      expect(first('READY=1')).toBeGreaterThanOrEqual(0);
      expect(first('READY=1')).toBeLessThan(first('WATCHDOG=1'));
      expect(first('WATCHDOG=1')).toBeLessThan(first('STOPPING=1'));
      expect(socket.messages.find((m) => m.startsWith('READY=1'))).toMatch(/^READY=1\nSTATUS=in flight 0; succeeded 0/);
      expect(worker.logs.find((l) => l.msg === 'ready: receiving jobs')?.notify).toBe(true);
    } finally {
      socket.close();
    }
  });

  it('stops the watchdog pings while the event loop is stopped', async () => {
    const socket = await listenForNotifications();
    try {
      const env = stackEnv(stack, emulator.imdsEndpoint, { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '400000' });
      const worker = workers.track(await startWorker(env));
      await until('pings', () => socket.messages.filter((m) => m === 'WATCHDOG=1').length >= 2, 30_000);

      const pid = worker.child.pid ?? 0;
      worker.child.kill('SIGSTOP');
      await until('the worker to be stopped', () => processState(pid) === 'T', 30_000);
      // Fences through the socket itself: what the worker sent before it stopped is read before the
      // first mark, and anything it sent while stopped would be read before the second.
      const frozenAt = await socket.mark('test: frozen');
      await sleep(1_500); // several watchdog intervals (a ping every 200 ms while running)
      const thawAt = await socket.mark('test: thawing');
      const whileFrozen = socket.messages.slice(frozenAt + 1, thawAt);
      worker.child.kill('SIGCONT');
      await until('pings after SIGCONT', () => socket.messages.slice(thawAt + 1).includes('WATCHDOG=1'), 30_000);

      expect(whileFrozen).toEqual([]);
      await worker.stop();
    } finally {
      socket.close();
    }
  });

  it('is silent without NOTIFY_SOCKET', async () => {
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint)));
    expect(worker.logs.find((l) => l.msg === 'ready: receiving jobs')?.notify).toBe(false);
    await worker.stop();
  });
});

describe('enrollment-worker check', () => {
  it('passes on a working stack, one ✓ line per check, exit 0, and leaves nothing in the bucket', async () => {
    const cli = spawnCli(['check'], stackEnv(stack, emulator.imdsEndpoint));

    const exit = await cli.exited;

    expect(exit.code, cli.text.join('\n')).toBe(0);
    expect(cli.text.map((l) => l.split(':')[0])).toEqual([
      '✓ credentials',
      '✓ configuration',
      '✓ signing',
      '✓ jobs queue',
      '✓ visibility',
      '✓ dead-letter queue',
      '✓ reference bucket',
      '✓ staging bucket',
      '✓ result queue',
      '✓ JPEG codec',
      '✓ face check',
    ]);
    const { listKeys } = await import('../support/resources.ts');
    expect(await listKeys(stack.s3, stack.bucket)).toEqual([]);
  });

  it('fails with ✗ and a fix for each broken part, exit 1, and --json for machines', async () => {
    const broken = await createStack(emulator.endpoint, uniqueName('opsbad'), { withDeadLetterQueue: false });
    const env = stackEnv(broken, emulator.imdsEndpoint, {
      S3_BUCKET: 'no-such-bucket-here',
      RESULT_QUEUE_URL: `${broken.resultQueueUrl}-gone`,
      VISIBILITY_TIMEOUT_SECONDS: '30',
      HEARTBEAT_INTERVAL_SECONDS: '20',
    });
    const cli = spawnCli(['check', '--json'], env);

    const exit = await cli.exited;

    expect(exit.code).toBe(1);
    const report = JSON.parse(cli.text.join('\n')) as { ok: boolean; checks: { name: string; ok: boolean; hint?: string }[] };
    expect(report.ok).toBe(false);
    const failed = Object.fromEntries(report.checks.filter((c) => !c.ok).map((c) => [c.name, c.hint]));
    expect(Object.keys(failed).sort()).toEqual(['dead-letter queue', 'reference bucket', 'result queue', 'visibility']);
    expect(failed['reference bucket']).toContain('s3:PutObject');
    expect(failed.visibility).toContain('HEARTBEAT_INTERVAL_SECONDS');
  });

  it('names the bad variable when the configuration is wrong', async () => {
    const cli = spawnCli(['check'], stackEnv(stack, emulator.imdsEndpoint, { S3_BUCKET: undefined }));

    expect((await cli.exited).code).toBe(1);
    expect(cli.text.join('\n')).toMatch(/^✗ configuration: S3_BUCKET is required\n {4}fix: /);
  });
});

describe('metrics and health', () => {
  it('serves /metrics and /healthz on loopback, counting what the jobs did', async () => {
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { METRICS_PORT: '0' })));
    const base = String(worker.logs.find((l) => l.msg === 'ready: receiving jobs')?.metrics);
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    await sendJob(stack, inlineJob('pat', [await jpegImage()]));
    await sendJob(stack, inlineJob('../pat', [await jpegImage()]));
    await outcomes(stack, 2);
    // An outcome is published before its message is deleted and its bytes released: wait for idle —
    // nothing in flight, and in the held share nothing but the room the long poll in flight holds for
    // what it may bring: at most CONCURRENCY (4) messages of SQS's largest size, whole mebibytes.
    const pollRoom = (held: number | undefined) => held !== undefined && held % 1_048_576 === 0 && held <= 4 * 1_048_576;
    const metrics = await until(
      'the worker to be idle (nothing held but the long poll\'s room, nothing in flight)',
      async () => {
        const now = await scrapeMetrics(`${base}/metrics`);
        return pollRoom(now['enrollment_memory_in_use_bytes{share="held"}']) && now.enrollment_jobs_in_flight === 0 ? now : undefined;
      },
      15_000,
    );
    const health = await fetch(`${base}/healthz`);

    // Every series of the worker's own, exactly: one success, one failure, nothing retried or
    // handed back (a label series appears once counted), nothing in flight or stuck.
    const ours = Object.fromEntries(Object.entries(metrics).filter(([name]) => name.startsWith('enrollment_') && !/_(bucket|sum)\{|_timestamp_seconds$/.test(name)));
    const stored = Object.keys(ours).filter((name) => name.startsWith('enrollment_references_stored_total'));
    expect(stored).toHaveLength(1);
    expect(ours).toEqual({
      enrollment_jobs_received_total: 2,
      enrollment_jobs_succeeded_total: 1,
      'enrollment_jobs_failed_total{code="INVALID_USER_ID"}': 1,
      enrollment_jobs_released_total: 0,
      [stored[0] ?? '']: 1,
      'enrollment_job_duration_seconds_count{outcome="succeeded"}': 1,
      'enrollment_job_duration_seconds_count{outcome="failed"}': 1,
      enrollment_jobs_in_flight: 0,
      enrollment_slots_stuck: 0,
      // The default MAX_IN_FLIGHT_BYTES (384 MiB): a third held, two thirds for decoding; once idle, nothing
      // decoding, and held only the long poll's room (checked above).
      'enrollment_memory_budget_bytes{share="held"}': 134217728,
      'enrollment_memory_budget_bytes{share="decode"}': 268435456,
      'enrollment_memory_in_use_bytes{share="held"}': ours['enrollment_memory_in_use_bytes{share="held"}'],
      'enrollment_memory_in_use_bytes{share="decode"}': 0,
      'enrollment_memory_waiting{share="held"}': 0,
      'enrollment_memory_waiting{share="decode"}': 0,
    });
    expect(stored[0]).toMatch(/^enrollment_references_stored_total\{path="(rebuilt|turned|reencoded)"\}$/);
    expect(metrics.enrollment_last_success_timestamp_seconds).toBeGreaterThan(0);
    expect(metrics.process_resident_memory_bytes).toBeGreaterThan(0);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', inFlight: 0 });
    await worker.stop();
  });
});

describe('reload (SIGHUP)', () => {
  const emulatorSecrets = () =>
    new SecretsManagerClient({
      region: TEST_REGION,
      endpoint: emulator.endpoint,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, // the emulator's dummies
    });

  it('re-reads the secret: a changed setting applies to the next job, without a restart', async () => {
    const secrets = emulatorSecrets();
    const name = uniqueName('reload');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ MAX_IMAGES_PER_JOB: '1' }) }));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { SECRETS_MANAGER_SECRET_NAME: name })));
    const two = async (jobId: string) => inlineJob('quinn', [await jpegImage(), await jpegImage()], jobId);

    await sendJob(stack, await two('before-reload'));
    const [before] = await outcomes(stack, 1);
    await secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: JSON.stringify({ MAX_IMAGES_PER_JOB: '5', CONCURRENCY: '2' }) }));
    worker.child.kill('SIGHUP');
    const reloaded = await worker.waitForLog((l) => l.msg === 'reload: secret re-read');
    await sendJob(stack, await two('after-reload'));
    const [after] = await outcomes(stack, 1);

    expect(before).toMatchObject({ status: 'failed', error: { code: 'TOO_MANY_IMAGES' } });
    expect(reloaded).toMatchObject({ applied: ['maxImagesPerJob'], needRestart: ['concurrency'] });
    expect(after).toMatchObject({ jobId: 'after-reload', status: 'succeeded' });
    expect(worker.child.exitCode).toBeNull();
    await worker.stop();
    secrets.destroy();
  });

  it('refuses a reload whose RESULT_QUEUE_URL names no queue: the old settings stay and jobs are still processed', async () => {
    const secrets = emulatorSecrets();
    const name = uniqueName('reload-typo');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ MAX_IMAGES_PER_JOB: '3' }) }));
    const worker = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, { SECRETS_MANAGER_SECRET_NAME: name })));

    await secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: JSON.stringify({ MAX_IMAGES_PER_JOB: '1', RESULT_QUEUE_URL: `${stack.resultQueueUrl}-typo` }) }));
    worker.child.kill('SIGHUP');
    const refused = await worker.waitForLog((l) => l.msg === 'reload failed: the worker keeps its current settings');
    await sendJob(stack, inlineJob('rita', [await jpegImage(), await jpegImage()], 'after-refused-reload'));
    const [after] = await outcomes(stack, 1);

    expect(refused).toMatchObject({ level: 'error', problems: [expect.stringMatching(/^RESULT_QUEUE_URL: the result queue .*-typo cannot be used/)] });
    // Neither setting of the refused secret applies: two images pass, and the outcome reaches the old queue.
    expect(after).toMatchObject({ jobId: 'after-refused-reload', status: 'succeeded' });
    expect(worker.logs.some((l) => l.msg === 'reload: secret re-read')).toBe(false);

    // A later reload with the queue fixed applies; a per-job worst case above the held share is warned of.
    await secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: JSON.stringify({ MAX_IMAGES_PER_JOB: '100', MAX_IMAGE_BYTES: String(100 * 1024 * 1024) }) }));
    worker.child.kill('SIGHUP');
    const applied = await worker.waitForLog((l) => l.msg === 'reload: secret re-read');
    const warning = await worker.waitForLog((l) => String(l.msg).startsWith('one job may need MAX_IMAGES_PER_JOB × MAX_IMAGE_BYTES'));
    expect([...(applied.applied as string[])].sort()).toEqual(['maxImageBytes', 'maxImagesPerJob']);
    expect(warning).toMatchObject({ level: 'warn', worstJobBytes: 100 * 100 * 1024 * 1024, heldShareBytes: Math.floor(402_653_184 / 3) });
    expect(worker.child.exitCode).toBeNull();
    await worker.stop();
    secrets.destroy();
  });
});
