// The shipped unit under a real systemd: a Debian container booted by systemd-nspawn, with the built
// worker, Node 24, the unit and an env file installed as README "Deploy on EC2" says, talking to
// moto on the host's loopback (credentials from moto's IMDS: no keys anywhere). Everything is
// checked from inside through systemctl and journalctl. Needs root; `npm run test:systemd`.
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jpegImage, pngImage } from '../support/images.ts';
import { inlineJob, outcomes, sendJob } from '../support/jobs.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { createStack, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { boot, ensureHostTools, ensureRootfs, REPO, resultsFolder, stagePackage, type Container } from './container.ts';

/** The whole run, provisioning included, is bounded by this; the container cannot outlive it. */
const RUN_BOUND_SECONDS = 20 * 60;
const UNIT = 'enrollment-worker.service';
const VERSION = '0.0.0-test';
const WATCHDOG_SECONDS = 30; // WatchdogSec= of the shipped unit
const RESTART_SECONDS = 5; // RestartSec=

let moto: Moto;
let stack: Stack;
let box: Container;
let secrets: SecretsManagerClient;
let secretName = '';
let metricsPort = 0;
let goodEnv = '';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** `systemctl show` properties of the unit. */
async function show(...names: string[]): Promise<Record<string, string>> {
  const out = await box.ok(`systemctl show ${UNIT} ${names.map((n) => `-p ${n}`).join(' ')}`);
  const props: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return props;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

interface JournalEntry {
  message: string;
  pid: string;
  identifier: string;
  /** µs since the epoch */
  at: number;
  /** the worker's pino line, when the message is one */
  log?: Record<string, unknown>;
}

/** The unit's journal (systemd's own lines about it and the worker's). */
async function journal(since?: string): Promise<JournalEntry[]> {
  const out = await box.ok(`journalctl -u ${UNIT} -o json --no-pager ${since ? `--since '${since}'` : ''}`);
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      const e = JSON.parse(l) as Record<string, unknown>;
      const message = typeof e.MESSAGE === 'string' ? e.MESSAGE : Array.isArray(e.MESSAGE) ? Buffer.from(e.MESSAGE as number[]).toString() : '';
      let log: Record<string, unknown> | undefined;
      if (message.startsWith('{')) {
        try {
          log = JSON.parse(message) as Record<string, unknown>;
        } catch {
          log = undefined;
        }
      }
      return {
        message,
        pid: String(e._PID ?? ''),
        identifier: String(e.SYSLOG_IDENTIFIER ?? ''),
        at: Number(e.__REALTIME_TIMESTAMP ?? 0),
        ...(log ? { log } : {}),
      };
    });
}

function envFile(overrides: Record<string, string> = {}): string {
  const settings: Record<string, string> = {
    AWS_REGION: stack.region,
    SQS_QUEUE_URL: stack.jobsQueueUrl,
    S3_BUCKET: stack.bucket,
    STAGING_BUCKET: stack.stagingBucket ?? '',
    RESULT_QUEUE_URL: stack.resultQueueUrl ?? '',
    SECRETS_MANAGER_SECRET_NAME: secretName,
    CONCURRENCY: '4',
    // Short long polls: a stop waits for them.
    POLL_WAIT_SECONDS: '5',
    METRICS_PORT: String(metricsPort),
    // The emulator on the host's loopback (the container shares the host's network), and its IMDS
    // as the credential source: no keys.
    // By name, so that resolving a host (getaddrinfo) is exercised under the sandbox too.
    AWS_ENDPOINT_URL: moto.endpoint.replace('127.0.0.1', 'localhost'),
    AWS_EC2_METADATA_SERVICE_ENDPOINT: moto.endpoint,
    ...overrides,
  };
  return `${Object.entries(settings)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;
}

async function installEnv(text: string): Promise<void> {
  await box.ok('install -D -m 0640 /dev/stdin /etc/enrollment-worker/enrollment-worker.env', { input: text });
}

beforeAll(async () => {
  // A hard bound for the whole run, whatever hangs.
  setTimeout(() => {
    process.stderr.write(`[systemd-test] the run exceeded ${String(RUN_BOUND_SECONDS)} s; giving up\n`);
    process.exit(1);
  }, RUN_BOUND_SECONDS * 1000).unref();

  await ensureHostTools();
  const rootfs = await ensureRootfs();
  const results = await resultsFolder();
  process.stderr.write(`[systemd-test] results, commands and journal: ${results}\n`);
  const stage = join(results, 'package');
  await stagePackage(stage);
  await mkdir(join(results, 'install'), { recursive: true });

  moto = await startMoto();
  stack = await createStack(moto.endpoint, uniqueName('systemd'));
  secrets = new SecretsManagerClient({
    region: stack.region,
    endpoint: moto.endpoint,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  secretName = `${uniqueName('systemd')}/settings`;
  await secrets.send(new CreateSecretCommand({ Name: secretName, SecretString: JSON.stringify({ RETRY_BASE_SECONDS: '1', RETRY_MAX_SECONDS: '2' }) }));
  metricsPort = await freePort();
  goodEnv = envFile();

  box = await boot({
    rootfs,
    results,
    lifetimeSeconds: RUN_BOUND_SECONDS,
    bindReadOnly: {
      // Node 24, where the unit expects it.
      [join(REPO, 'node_modules', 'node', 'bin', 'node')]: '/usr/bin/node',
      // The package, as unpacked from a release; the unit runs /opt/enrollment-worker → it.
      [stage]: `/opt/enrollment-worker-${VERSION}`,
      // The shipped files, exactly as in the repo.
      [join(REPO, 'systemd')]: '/srv/shipped',
    },
  });

  // The install steps of README "Deploy on EC2".
  await box.ok(
    [
      'set -e',
      `ln -sfn /opt/enrollment-worker-${VERSION} /opt/enrollment-worker`,
      'install -m 0644 /srv/shipped/enrollment-worker.service /etc/systemd/system/enrollment-worker.service',
      'install -d -m 0755 /etc/enrollment-worker',
      // debootstrap leaves no /etc/hosts; every real instance has one.
      "[ -e /etc/hosts ] || printf '127.0.0.1 localhost\\n::1 localhost ip6-localhost ip6-loopback\\n' > /etc/hosts",
      'systemctl daemon-reload',
      `systemctl enable ${UNIT}`,
      'node --version',
    ].join('\n'),
  );
}, RUN_BOUND_SECONDS * 1000);

afterAll(async () => {
  if (box) {
    await box.sh(`journalctl -b --no-pager > /results/journal-all.txt; systemctl status ${UNIT} --no-pager -l > /results/status-final.txt`).catch(() => undefined);
    await box.poweroff();
    // The staged package is large and reproducible: keep only what the run said and did.
    await rm(join(box.results, 'package'), { recursive: true, force: true });
    process.stderr.write(`[systemd-test] kept: ${box.results}\n`);
  }
  secrets?.destroy();
  stack?.sqs.destroy();
  stack?.s3.destroy();
  await moto?.stop();
}, 120_000);

describe('enrollment-worker under a real systemd', { sequential: true }, () => {
  it('the installed unit verifies clean and rates under 2.0 with the real binaries present', async () => {
    const verify = await box.sh(`systemd-analyze verify /etc/systemd/system/${UNIT}`);
    expect(verify.out.trim(), verify.out).toBe('');
    expect(verify.code).toBe(0);
    const security = await box.sh(`systemd-analyze security --no-pager --threshold=20 ${UNIT}`);
    expect(security.out).toMatch(/Overall exposure level for enrollment-worker\.service: [01]\.\d/);
    expect(security.code, security.out).toBe(0);
  });

  it('a bad configuration ends failed with status 78, and is not restarted', async () => {
    await installEnv(envFile({ CONCURRENCY: '0' }));
    const start = await box.sh(`systemctl start ${UNIT}`, { timeoutMs: 120_000 });
    expect(start.code).not.toBe(0);
    const failed = await show('ActiveState', 'Result', 'ExecMainStatus', 'NRestarts');
    expect(failed).toMatchObject({ ActiveState: 'failed', Result: 'exit-code', ExecMainStatus: '78', NRestarts: '0' });
    // Past RestartSec: still failed, still no restart.
    await sleep((RESTART_SECONDS + 3) * 1000);
    expect(await show('ActiveState', 'NRestarts', 'ExecMainStatus')).toMatchObject({ ActiveState: 'failed', NRestarts: '0', ExecMainStatus: '78' });
    const lines = await journal();
    expect(lines.some((l) => l.message.includes('CONCURRENCY must be a whole number'))).toBe(true);
    expect(lines.filter((l) => l.log?.msg === undefined && l.message.startsWith('Started ')).length).toBe(0);

    await installEnv(goodEnv);
    await box.ok(`systemctl reset-failed ${UNIT}`);
  }, 120_000);

  it('becomes active only after READY: held in "activating" while AWS does not answer', async () => {
    process.kill(moto.pid, 'SIGSTOP');
    let held: Record<string, string>;
    try {
      await box.ok(`systemctl start --no-block ${UNIT}`);
      await sleep(1000);
      const starting = await show('ActiveState', 'SubState', 'MainPID');
      expect(starting).toMatchObject({ ActiveState: 'activating', SubState: 'start' });
      expect(Number(starting.MainPID)).toBeGreaterThan(0);
      // Node runs (under the sandbox) but cannot confirm credentials, the secret or the queue.
      await sleep(4000);
      held = await show('ActiveState', 'SubState');
    } finally {
      process.kill(moto.pid, 'SIGCONT');
    }
    expect(held).toMatchObject({ ActiveState: 'activating', SubState: 'start' });
    await until('the unit to be active', async () => ((await show('ActiveState')).ActiveState === 'active' ? true : undefined), 80_000);

    const t = await show('ExecMainStartTimestampMonotonic', 'ActiveEnterTimestampMonotonic');
    expect(Number(t.ActiveEnterTimestampMonotonic) - Number(t.ExecMainStartTimestampMonotonic)).toBeGreaterThanOrEqual(5_000_000);
    // systemd said "Started" only after the worker had confirmed its credentials, read the secret
    // and seen the queue (the worker logs its "ready" line just after sending READY=1).
    const lines = await journal();
    const started = lines.filter((l) => l.message.startsWith('Started ')).at(-1);
    expect(started, 'systemd logs "Started" once READY arrives').toBeDefined();
    for (const step of ['AWS credentials', 'settings read from the secret']) {
      const line = lines.filter((l) => l.log?.msg === step).at(-1);
      expect(line, step).toBeDefined();
      expect(line?.at ?? Infinity, `${step} before "Started"`).toBeLessThanOrEqual(started?.at ?? 0);
    }
    expect(lines.filter((l) => l.log?.msg === 'ready: receiving jobs').at(-1)?.log).toMatchObject({ notify: true });
  }, 120_000);

  it('runs Node unprivileged under the sandbox: no capabilities, seccomp, no new privileges', async () => {
    const { MainPID } = await show('MainPID');
    const status = await box.ok(`cat /proc/${MainPID}/status`);
    const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
    expect(field('Uid').split(/\s+/)[0]).not.toBe('0');
    expect(field('CapEff')).toBe('0000000000000000');
    expect(field('CapBnd')).toBe('0000000000000000');
    expect(field('NoNewPrivs')).toBe('1');
    expect(field('Seccomp')).toBe('2');
    // A dynamic user: systemd allocates it from 61184-65519 for the life of the unit.
    const uid = Number(field('Uid').split(/\s+/)[0]);
    expect(uid).toBeGreaterThanOrEqual(61184);
    expect(uid).toBeLessThanOrEqual(65519);
    // The metrics server (bound to the loopback it shares with the host) answers, with the process
    // metrics that read /proc/self under ProcSubset=pid.
    const metrics = await fetch(`http://127.0.0.1:${String(metricsPort)}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^process_resident_memory_bytes \d/m);
    // Healthy once the first long poll has come back (POLL_WAIT_SECONDS=5 here).
    await until(
      '/healthz to answer 200',
      async () => ((await fetch(`http://127.0.0.1:${String(metricsPort)}/healthz`)).status === 200 ? true : undefined),
      15_000,
    );
    // Nothing was denied loudly by the filter.
    const lines = await journal();
    expect(lines.filter((l) => /Bad system call|SIGSYS|EPERM|operation not permitted/i.test(l.message))).toEqual([]);
  });

  it('stores jobs sent from the host, and systemctl status shows the live STATUS', async () => {
    const before = (await show('StatusText')).StatusText ?? '';
    expect(before).toMatch(/succeeded \d+/);
    const user = `systemd-${randomUUID().slice(0, 8)}@example.com`;
    const jobs = [
      inlineJob(user, [await jpegImage({ width: 128, height: 128 })]),
      inlineJob(user, [await pngImage({ width: 128, height: 128 })]),
      inlineJob(user, [await jpegImage({ width: 160, height: 128 }), await pngImage({ width: 128, height: 160 })]),
    ];
    for (const job of jobs) await sendJob(stack, job);
    const results = await outcomes(stack, jobs.length, 60_000);
    expect(results.map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(await listKeys(stack.s3, stack.bucket, `users/${user}/`)).toHaveLength(4);

    const text = await until(
      'STATUS to count the jobs',
      async () => {
        const now = (await show('StatusText')).StatusText ?? '';
        return /succeeded 3\b/.test(now) ? now : undefined;
      },
      15_000,
    );
    expect(text).toMatch(/in flight \d+/);
    expect(text).toMatch(/last success \d+s ago/);
    const status = await box.ok(`systemctl status ${UNIT} --no-pager -l`);
    expect(status).toMatch(/Active: active \(running\)/);
    expect(status).toMatch(/Status: "in flight \d+; succeeded 3/);
  }, 120_000);

  it('systemctl reload re-reads the secret without a restart', async () => {
    const before = await show('MainPID', 'NRestarts');
    const since = (await box.ok("date '+%Y-%m-%d %H:%M:%S'")).trim();
    await secrets.send(new PutSecretValueCommand({ SecretId: secretName, SecretString: JSON.stringify({ RETRY_BASE_SECONDS: '3', RETRY_MAX_SECONDS: '4' }) }));
    await box.ok(`systemctl reload ${UNIT}`);
    const reloaded = await until(
      'the reload log line',
      async () => (await journal(since)).find((l) => l.log?.msg === 'reload: secret re-read'),
      20_000,
    );
    expect(reloaded.log).toMatchObject({ secret: secretName });
    expect(JSON.stringify(reloaded.log?.applied)).toMatch(/retry/i);
    await until('active after the reload', async () => ((await show('ActiveState')).ActiveState === 'active' ? true : undefined), 10_000);
    expect(await show('MainPID', 'NRestarts')).toEqual(before);
    // Still working.
    const user = `reload-${randomUUID().slice(0, 8)}@example.com`;
    await sendJob(stack, inlineJob(user, [await jpegImage({ width: 128, height: 128 })]));
    expect((await outcomes(stack, 1, 30_000)).map((o) => o.status)).toEqual(['succeeded']);
  }, 60_000);

  it('keeps the watchdog fed: still the same process after more than WatchdogSec', async () => {
    const t = await show('ActiveEnterTimestampMonotonic', 'MainPID');
    const now = Number((await box.ok('cut -d" " -f1 /proc/uptime')).trim()) * 1e6;
    const ranFor = (now - Number(t.ActiveEnterTimestampMonotonic)) / 1e6;
    if (ranFor < WATCHDOG_SECONDS + 5) await sleep((WATCHDOG_SECONDS + 5 - ranFor) * 1000);
    const after = await show('ActiveState', 'MainPID', 'NRestarts', 'WatchdogUSec');
    expect(after).toMatchObject({ ActiveState: 'active', MainPID: t.MainPID, NRestarts: '0', WatchdogUSec: '30s' });
  }, 60_000);

  it('a process frozen with SIGSTOP is killed by the watchdog and restarted', async () => {
    const before = await show('MainPID');
    await box.ok(`systemctl kill --kill-who=main --signal=SIGSTOP ${UNIT}`);
    const restarted = await until(
      'a restart by the watchdog',
      async () => {
        const p = await show('NRestarts', 'MainPID', 'ActiveState');
        return p.NRestarts === '1' && p.ActiveState === 'active' && p.MainPID !== before.MainPID ? p : undefined;
      },
      (WATCHDOG_SECONDS + RESTART_SECONDS + 60) * 1000,
      1000,
    );
    expect(restarted.MainPID).not.toBe(before.MainPID);
    const lines = await journal();
    expect(lines.some((l) => /Watchdog timeout/.test(l.message))).toBe(true);
  }, 150_000);

  it('systemctl stop drains and the unit ends inactive, not failed', async () => {
    const user = `stop-${randomUUID().slice(0, 8)}@example.com`;
    await sendJob(stack, inlineJob(user, [await jpegImage({ width: 128, height: 128 })]));
    const started = Date.now();
    const stop = await box.sh(`systemctl stop ${UNIT}`, { timeoutMs: 90_000 });
    const tookSeconds = (Date.now() - started) / 1000;
    expect(stop.code, stop.out).toBe(0);
    expect(tookSeconds).toBeLessThan(45);
    const after = await show('ActiveState', 'SubState', 'Result', 'ExecMainCode', 'ExecMainStatus');
    expect(after).toMatchObject({ ActiveState: 'inactive', SubState: 'dead', Result: 'success', ExecMainStatus: '0' });
    const lines = await journal();
    expect(lines.some((l) => l.log?.msg === 'stopped')).toBe(true);
    expect(lines.some((l) => /Deactivated successfully/.test(l.message))).toBe(true);
    // Whatever was received was either done or handed back: the job is not lost.
    const done = await listKeys(stack.s3, stack.bucket, `users/${user}/`);
    if (done.length === 0) {
      const { ApproximateNumberOfMessages = '0', ApproximateNumberOfMessagesNotVisible = '0' } =
        (await stack.sqs.send(
          new (await import('@aws-sdk/client-sqs')).GetQueueAttributesCommand({
            QueueUrl: stack.jobsQueueUrl,
            AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
          }),
        )).Attributes ?? {};
      expect(Number(ApproximateNumberOfMessages) + Number(ApproximateNumberOfMessagesNotVisible)).toBe(1);
    }
  }, 120_000);
});
