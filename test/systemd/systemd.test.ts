// The release and its install.sh under a real systemd: `npm run release` builds two releases of this
// code (two version numbers), a Debian container booted by systemd-nspawn gets Node 24 and the
// tarballs, and everything docs/operations.md "Deploy on EC2" says is done the way it says: checksum, unpack,
// install.sh, settings, install.sh again; then the unit's behaviour (READY, Status, jobs, reload,
// memory limits, watchdog, an OOM kill), two worker processes (enrollment-worker@1 and @2) with an
// upgrade while a job is in flight, a rollback and a refused switch-over, back to one process, a
// stop, and an uninstall. The worker talks to moto on the host's loopback through a fault proxy (credentials
// from moto's IMDS: no keys anywhere). Everything is checked from inside through systemctl,
// journalctl and the file system. Needs root; `npm run test:systemd`.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jpegImage, pngImage } from '../support/images.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { inlineJob, outcomes, sendJob } from '../support/jobs.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { createStack, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { freePort, sleep, until } from '../support/wait.ts';
import { boot, buildRelease, prepareRun, REPO, type Container, type Release } from './container.ts';

const exec = promisify(execFile);

/** The whole run, provisioning included, is bounded by this; the container cannot outlive it. */
const RUN_BOUND_SECONDS = 20 * 60;
const UNIT = 'enrollment-worker.service';
/** The units `install.sh --processes 2` runs instead of UNIT. */
const INSTANCES = ['enrollment-worker@1.service', 'enrollment-worker@2.service'] as const;
const ENV_FILE = '/etc/enrollment-worker/enrollment-worker.env';
/** Where the releases are unpacked inside, as an operator would in their home folder. */
const UNPACKED = '/root/releases';
const WATCHDOG_SECONDS = 30; // WatchdogSec= of the shipped unit
const RESTART_SECONDS = 5; // RestartSec=
const MiB = 1024 * 1024;
const MEMORY_HIGH = 768 * MiB; // MemoryHigh= of the shipped unit and template
const MEMORY_MAX = 896 * MiB; // MemoryMax=
/** How long the upgrade test holds a job's first write: longer than install.sh's check takes. */
const HOLD_MS = 20_000;

let moto: Moto;
let proxy: FaultProxy;
let stack: Stack;
/** The release of this version, and a second one of the same code with the next patch version. */
let first: Release;
let second: Release;
let box: Container;
let secrets: SecretsManagerClient;
let secretName = '';
let metricsPort = 0;
/** enrollment-worker@2's own METRICS_PORT (in /etc/enrollment-worker/enrollment-worker@2.env). */
let secondMetricsPort = 0;
let goodEnv = '';

/** CLOCK_MONOTONIC now (libuv reads it for hrtime), in µs: the clock of systemd's *Monotonic timestamps. */
const monotonicMicroseconds = (): number => Number(process.hrtime.bigint() / 1000n);

/** Probes that run a command in the container poll every half second. */
const INSIDE_POLL = { everyMs: 500 };

/** `systemctl show` properties of the unit. */
function show(...names: string[]): Promise<Record<string, string>> {
  return showOf(UNIT, ...names);
}

/** `systemctl show` properties of one unit. */
async function showOf(unit: string, ...names: string[]): Promise<Record<string, string>> {
  const out = await box.ok(`systemctl show ${unit} ${names.map((n) => `-p ${n}`).join(' ')}`);
  const props: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return props;
}

interface JournalEntry {
  message: string;
  pid: string;
  identifier: string;
  /** the unit the line is from (the worker's) or about (systemd's) */
  unit: string;
  /** µs since the epoch */
  at: number;
  /** the worker's pino line, when the message is one */
  log?: Record<string, unknown>;
}

/** The units' journal (systemd's own lines about them and the worker's); UNIT's by default. */
async function journal(since?: string, units: readonly string[] = [UNIT]): Promise<JournalEntry[]> {
  const out = await box.ok(`journalctl ${units.map((u) => `-u ${u}`).join(' ')} -o json --no-pager ${since ? `--since '${since}'` : ''}`);
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
        unit: String(e.UNIT ?? e._SYSTEMD_UNIT ?? ''),
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
    // Inline jobs without signatures (the worker will refuse to start unsigned without this).
    ALLOW_UNSIGNED_JOBS: 'true',
    CONCURRENCY: '4',
    // Short long polls: a stop waits for them.
    POLL_WAIT_SECONDS: '5',
    METRICS_PORT: String(metricsPort),
    // The emulator on the host's loopback (the container shares the host's network), behind the
    // fault proxy, and its IMDS as the credential source: no keys.
    // By name, so that resolving a host (getaddrinfo) is exercised under the sandbox too.
    AWS_ENDPOINT_URL: proxy.url.replace('127.0.0.1', 'localhost'),
    AWS_EC2_METADATA_SERVICE_ENDPOINT: moto.endpoint,
    ...overrides,
  };
  return `${Object.entries(settings)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;
}

/** Edits the settings file as an operator would (it keeps its owner and mode). */
async function writeSettings(text: string): Promise<void> {
  await box.ok(`cat > ${ENV_FILE}`, { input: text });
}

/** Runs an install.sh inside; `script` is the path of the install.sh and its arguments. */
function installSh(script: string): Promise<{ code: number; out: string }> {
  return box.sh(script, { timeoutMs: 180_000 });
}

const unpacked = (release: Release) => `${UNPACKED}/${release.folder}`;
const installed = (release: Release) => `/opt/enrollment-worker-${release.version}`;

/** The release's list of files and their checksums, read from its tarball. */
async function manifest(release: Release): Promise<Map<string, string>> {
  const { stdout } = await exec('tar', ['-xzOf', release.tarball, `${release.folder}/MANIFEST.sha256`], { maxBuffer: 64 * 1024 * 1024 });
  return new Map(
    stdout
      .trim()
      .split('\n')
      .map((line) => [line.slice(66), line.slice(0, 64)] as [string, string]),
  );
}

/**
 * The container's clock, as journalctl --since reads it, to the microsecond: to the second, lines
 * of a step that ended earlier in the same second would count as this step's.
 */
async function containerNow(): Promise<string> {
  return (await box.ok("date '+%Y-%m-%d %H:%M:%S.%6N'")).trim();
}

interface MemoryControl {
  /** The kernel holds the unit's cgroup to MemoryHigh=/MemoryMax=. */
  enforced: boolean;
  /** systemd learns of an OOM kill in the unit (memory.events, cgroup v2 only) and says so. */
  oomKillReported: boolean;
  /** What the container has, as the report prints it. */
  what: string;
}

/**
 * What the container's systemd can do with a unit's memory limits. It needs the kernel's memory
 * controller: on a cgroup v2 host it writes memory.high/memory.max and reads memory.events; on a
 * cgroup v1 host systemd-nspawn mounts the v1 controllers read-only in the container (the CI
 * machine: "System is tainted: cgroupsv1"), so systemd takes the settings, shows them, and cannot
 * apply them; on a cgroup v2 host that does not delegate the memory controller to the container,
 * neither. Those are the only reasons for "not applied" this accepts, each checked.
 */
async function memoryControl(controlGroup: string): Promise<MemoryControl> {
  const v2 = await box.sh(`cat /sys/fs/cgroup${controlGroup}/memory.high /sys/fs/cgroup${controlGroup}/memory.max`);
  if (v2.code === 0) {
    expect(v2.out.trim().split('\n')).toEqual([String(MEMORY_HIGH), String(MEMORY_MAX)]);
    return { enforced: true, oomKillReported: true, what: `cgroup v2: memory.high and memory.max of ${controlGroup} are ${v2.out.trim().replace('\n', ', ')}` };
  }
  const v1 = await box.sh(`cat /sys/fs/cgroup/memory${controlGroup}/memory.limit_in_bytes`);
  if (v1.code === 0) {
    // cgroup v1 has no memory.high, and no memory.events: an OOM kill is a SIGKILL to systemd.
    expect(v1.out.trim()).toBe(String(MEMORY_MAX));
    return { enforced: true, oomKillReported: false, what: `cgroup v1: memory.limit_in_bytes of ${controlGroup} is ${v1.out.trim()}` };
  }
  // cgroup v2 whose memory controller the host did not delegate to the container.
  const controllers = await box.sh('cat /sys/fs/cgroup/cgroup.controllers');
  if (controllers.code === 0) {
    expect(controllers.out.split(/\s+/), 'cgroup v2 with a memory controller, yet no memory.max for the unit').not.toContain('memory');
    return { enforced: false, oomKillReported: false, what: `not applied here: cgroup v2 without the memory controller in the container (controllers: ${controllers.out.trim()})` };
  }
  const mount = (await box.ok("grep ' /sys/fs/cgroup/memory ' /proc/self/mountinfo || true")).trim();
  expect(mount, 'the memory limits are not applied, and not because the memory controller is read-only in the container').toMatch(/ \/sys\/fs\/cgroup\/memory ro,/);
  return { enforced: false, oomKillReported: false, what: `not applied here: the container's cgroup v1 memory hierarchy is read-only (${mount})` };
}

/** A process's peak resident memory (VmHWM), in bytes. */
async function peakRss(pid: string): Promise<number> {
  const status = await box.ok(`cat /proc/${pid}/status`);
  const kib = /^VmHWM:\s*(\d+) kB$/m.exec(status)?.[1];
  expect(kib, `no VmHWM for ${pid}`).toBeDefined();
  return Number(kib) * 1024;
}

beforeAll(async () => {
  const { rootfs, results } = await prepareRun(RUN_BOUND_SECONDS);

  first = await buildRelease();
  const [major, minor, patch] = first.version.split(/[.+-]/).map(Number);
  second = await buildRelease(`${String(major)}.${String(minor)}.${String((patch ?? 0) + 1)}-test`);
  expect(dirname(second.tarball)).toBe(dirname(first.tarball));

  moto = await startMoto();
  proxy = await startFaultProxy(moto.endpoint);
  stack = await createStack(moto.endpoint, uniqueName('systemd'));
  secrets = new SecretsManagerClient({
    region: stack.region,
    endpoint: moto.endpoint,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  secretName = `${uniqueName('systemd')}/settings`;
  await secrets.send(new CreateSecretCommand({ Name: secretName, SecretString: JSON.stringify({ RETRY_BASE_SECONDS: '1', RETRY_MAX_SECONDS: '2' }) }));
  metricsPort = await freePort();
  do secondMetricsPort = await freePort();
  while (secondMetricsPort === metricsPort);
  goodEnv = envFile();

  box = await boot({
    rootfs,
    results,
    lifetimeSeconds: RUN_BOUND_SECONDS,
    bindReadOnly: {
      // Node 24, not yet where the unit expects it: the first test shows install.sh asking for it.
      [join(REPO, 'node_modules', 'node', 'bin', 'node')]: '/srv/node24/bin/node',
      // What an operator downloads: the tarballs and SHA256SUMS.
      [dirname(first.tarball)]: '/srv/download',
    },
  });
  // debootstrap leaves no /etc/hosts; every real instance has one.
  await box.ok("[ -e /etc/hosts ] || printf '127.0.0.1 localhost\\n::1 localhost ip6-localhost ip6-loopback\\n' > /etc/hosts");
}, RUN_BOUND_SECONDS * 1000);

afterAll(async () => {
  if (box) {
    await box.sh(`journalctl -b --no-pager > /results/journal-all.txt; systemctl status ${UNIT} --no-pager -l > /results/status-final.txt`).catch(() => undefined);
    await box.poweroff();
    process.stderr.write(`[systemd-test] kept: ${box.results}\n`);
  }
  secrets?.destroy();
  stack?.sqs.destroy();
  stack?.s3.destroy();
  await proxy?.close();
  await moto?.stop();
}, 120_000);

describe('enrollment-worker installed from its release under a real systemd', { sequential: true }, () => {
  it('the release holds the production dependencies only, and two builds differ only in the version', async () => {
    const files = await manifest(first);
    const paths = [...files.keys()];
    expect(paths).toContain('./install.sh');
    expect(paths).toContain('./dist/cli.js');
    expect(paths).toContain('./build/Release/sd_notify.node');
    expect(paths).toContain('./systemd/enrollment-worker.service');
    expect(paths).toContain('./systemd/enrollment-worker@.service');
    expect(paths).toContain('./systemd/enrollment-worker.env.example');
    expect(paths.some((p) => p.startsWith(`./node_modules/@img/sharp-libvips-linux-${process.arch}/lib/libvips-cpp.so`))).toBe(true);
    // No devDependency: not the node binary, not the test or build tools.
    for (const dev of ['node', 'typescript', 'vitest', 'testcontainers', 'pino-pretty', '@types/node']) {
      expect(paths.filter((p) => p.startsWith(`./node_modules/${dev}/`))).toEqual([]);
    }
    // Same code, another version: only the files that carry the version differ.
    const other = await manifest(second);
    const differing = [...new Set([...files.keys(), ...other.keys()])].filter((p) => files.get(p) !== other.get(p)).sort();
    expect(differing).toEqual(['./RELEASE', './node_modules/.package-lock.json', './package-lock.json', './package.json']);
  });

  it('the download verifies against SHA256SUMS and unpacks', async () => {
    await box.ok(
      [
        'set -e',
        'cd /srv/download',
        `sha256sum -c --ignore-missing SHA256SUMS | grep -F '${basename(first.tarball)}: OK'`,
        `sha256sum -c --ignore-missing SHA256SUMS | grep -F '${basename(second.tarball)}: OK'`,
        `mkdir -p ${UNPACKED}`,
        `tar -xzf ${basename(first.tarball)} -C ${UNPACKED}`,
        `tar -xzf ${basename(second.tarball)} -C ${UNPACKED}`,
      ].join('\n'),
    );
  });

  it('install.sh refuses without Node 24 at the unit\'s path, says how to get it, and installs nothing', async () => {
    const { code, out } = await installSh(`${unpacked(first)}/install.sh`);
    expect(code, out).toBe(1);
    expect(out).toContain('Node.js 24 is needed at /usr/bin/node');
    expect(out).toContain('https://nodejs.org/dist/');
    expect((await box.sh('ls -d /opt/enrollment-worker* /etc/enrollment-worker /etc/systemd/system/enrollment-worker.service')).out).not.toMatch(/^\//m);

    // As docs/operations.md says: the official binary, linked where the unit runs it.
    await box.ok('ln -s /srv/node24/bin/node /usr/bin/node && node --version | grep -q ^v24');
  });

  it('the first run installs the release and the example settings, and waits for them to be filled in', async () => {
    const { code, out } = await installSh(`${unpacked(first)}/install.sh`);
    expect(code, out).toBe(3);
    // The number of worker processes it would run: one per 2 cores, at least one.
    const cores = Number((await box.ok('nproc')).trim());
    expect(out).toContain(`worker processes: ${String(Math.max(1, Math.floor(cores / 2)))} (one per 2 cores of ${String(cores)}; --processes N chooses)`);
    expect(out).toContain(`installed release ${first.version} in ${installed(first)}`);
    expect(out).toContain(`created ${ENV_FILE} from the example`);
    expect(out).toContain('fill in AWS_REGION, SQS_QUEUE_URL and S3_BUCKET');
    await box.ok(`cmp ${installed(first)}/systemd/enrollment-worker.env.example ${ENV_FILE}`);
    expect((await box.ok(`stat -c '%a %U:%G' ${ENV_FILE}`)).trim()).toBe('640 root:root');
    // Nothing runs yet: no symlink, no unit.
    expect((await box.sh('ls -d /opt/enrollment-worker /etc/systemd/system/enrollment-worker.service')).code).not.toBe(0);
  });

  it('with a bad setting, check fails, install.sh says why, and nothing is started', async () => {
    await writeSettings(envFile({ CONCURRENCY: '0' }));
    const { code, out } = await installSh(`${unpacked(first)}/install.sh`);
    expect(code, out).toBe(1);
    expect(out).toMatch(/✗ [a-z ]+: CONCURRENCY must be a whole number/);
    expect(out).toContain('check failed (above)');
    expect((await box.sh('ls -d /opt/enrollment-worker /etc/systemd/system/enrollment-worker.service')).code).not.toBe(0);
  });

  it('with the settings filled in, install.sh checks, switches, installs the unit and starts it', async () => {
    await writeSettings(goodEnv);
    // One process, whatever this machine's cores: two come later (--processes 2).
    const { code, out } = await installSh(`${unpacked(first)}/install.sh --processes 1`);
    expect(code, out).toBe(0);
    expect(out).toContain(`release ${first.version} is already in ${installed(first)}`);
    expect(out).toMatch(/✓ jobs queue/);
    expect(out).toContain(`/opt/enrollment-worker -> ${installed(first)}`);
    expect(out).toContain('(daemon-reload)');
    expect(out).toContain(`starting (switching to ${first.version})`);
    expect(out).toContain(`release ${first.version} is running`);
    expect((await box.ok('readlink /opt/enrollment-worker')).trim()).toBe(installed(first));
    await box.ok(`cmp ${installed(first)}/systemd/${UNIT} /etc/systemd/system/${UNIT}`);
    await box.ok(`cmp ${installed(first)}/systemd/enrollment-worker@.service /etc/systemd/system/enrollment-worker@.service`);
    expect(await show('ActiveState', 'UnitFileState', 'NRestarts')).toMatchObject({ ActiveState: 'active', UnitFileState: 'enabled', NRestarts: '0' });
    // No instance of the template runs.
    expect((await box.ok("systemctl list-units --all --plain --no-legend 'enrollment-worker@*'")).trim()).toBe('');
    // Files owned by root and not writable by the worker's user.
    expect((await box.ok(`find ${installed(first)} ! -user root -o -perm /022 ! -type l | head -5`)).trim()).toBe('');
  });

  it('a second install.sh run reports no change and changes nothing', async () => {
    const before = await show('MainPID', 'NRestarts', 'ExecMainStartTimestampMonotonic');
    await box.ok('touch /run/before-second-run && sleep 1');
    const { code, out } = await installSh(`${unpacked(first)}/install.sh`);
    expect(code, out).toBe(0);
    expect(out).toContain(`nothing changed: release ${first.version} is installed and running`);
    expect(out).not.toMatch(/daemon-reload|restarting|starting|installed release|✓/);
    expect(await show('MainPID', 'NRestarts', 'ExecMainStartTimestampMonotonic')).toEqual(before);
    // Not a file, link or folder was written.
    expect((await box.ok('find /opt /etc/enrollment-worker /etc/systemd/system -newer /run/before-second-run')).trim()).toBe('');
  });

  it('the installed unit and template verify clean and rate under 2.0 with the real binaries present', async () => {
    for (const unit of [UNIT, INSTANCES[0]]) {
      const verify = await box.sh(`systemd-analyze verify ${unit}`);
      expect(verify.out.trim(), verify.out).toBe('');
      expect(verify.code).toBe(0);
      const security = await box.sh(`systemd-analyze security --no-pager --threshold=20 ${unit}`);
      expect(security.out).toContain(`Overall exposure level for ${unit}: `);
      expect(security.out).toMatch(/Overall exposure level for .*: [01]\.\d/);
      expect(security.code, security.out).toBe(0);
    }
  });

  it('a bad configuration ends failed with status 78, and is not restarted', async () => {
    await box.ok(`systemctl stop ${UNIT}`, { timeoutMs: 90_000 });
    await writeSettings(envFile({ CONCURRENCY: '0' }));
    const since = await containerNow();
    const start = await box.sh(`systemctl start ${UNIT}`, { timeoutMs: 120_000 });
    expect(start.code).not.toBe(0);
    const failed = await show('ActiveState', 'Result', 'ExecMainStatus', 'NRestarts');
    expect(failed).toMatchObject({ ActiveState: 'failed', Result: 'exit-code', ExecMainStatus: '78', NRestarts: '0' });
    // Past RestartSec: still failed, still no restart.
    await sleep((RESTART_SECONDS + 3) * 1000);
    expect(await show('ActiveState', 'NRestarts', 'ExecMainStatus')).toMatchObject({ ActiveState: 'failed', NRestarts: '0', ExecMainStatus: '78' });
    const lines = await journal(since);
    expect(lines.some((l) => l.message.includes('CONCURRENCY must be a whole number'))).toBe(true);
    expect(lines.filter((l) => l.log?.msg === undefined && l.message.startsWith('Started ')).length).toBe(0);

    await writeSettings(goodEnv);
    await box.ok(`systemctl reset-failed ${UNIT}`);
  }, 120_000);

  it('becomes active only after READY: held in "activating" while AWS does not answer', async () => {
    process.kill(moto.pid, 'SIGSTOP');
    let held: Record<string, string>;
    let thawedAt = Number.POSITIVE_INFINITY;
    try {
      await box.ok(`systemctl start --no-block ${UNIT}`);
      const starting = await until(
        'the unit to have a main process',
        async () => {
          const props = await show('ActiveState', 'SubState', 'MainPID');
          return Number(props.MainPID) > 0 ? props : undefined;
        },
        30_000,
        INSIDE_POLL,
      );
      expect(starting).toMatchObject({ ActiveState: 'activating', SubState: 'start' });
      // Node runs (under the sandbox) but cannot confirm credentials, the secret or the queue.
      await sleep(4000);
      held = await show('ActiveState', 'SubState');
    } finally {
      // The kernel's monotonic clock, which the container shares with this process.
      thawedAt = monotonicMicroseconds();
      process.kill(moto.pid, 'SIGCONT');
    }
    expect(held).toMatchObject({ ActiveState: 'activating', SubState: 'start' });
    await until('the unit to be active', async () => (await show('ActiveState')).ActiveState === 'active', 80_000, INSIDE_POLL);

    // Active only once AWS answered again, however long the frozen start took.
    const t = await show('ExecMainStartTimestampMonotonic', 'ActiveEnterTimestampMonotonic');
    expect(Number(t.ExecMainStartTimestampMonotonic)).toBeLessThan(thawedAt);
    expect(Number(t.ActiveEnterTimestampMonotonic)).toBeGreaterThanOrEqual(thawedAt);
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
      async () => (await fetch(`http://127.0.0.1:${String(metricsPort)}/healthz`)).status === 200,
      15_000,
      INSIDE_POLL,
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
      INSIDE_POLL,
    );
    expect(text).toMatch(/in flight \d+/);
    expect(text).toMatch(/last success \d+s ago/);
    const status = await box.ok(`systemctl status ${UNIT} --no-pager -l`);
    expect(status).toMatch(/Active: active \(running\)/);
    expect(status).toMatch(/Status: "in flight \d+; succeeded 3/);
  }, 120_000);

  it('ran those jobs under the unit\'s memory limits, MemoryHigh=768M and MemoryMax=896M', async () => {
    const limits = await show('MemoryHigh', 'MemoryMax', 'MemoryAccounting', 'MemoryCurrent', 'ControlGroup', 'MainPID', 'NRestarts');
    expect(limits).toMatchObject({ MemoryHigh: String(MEMORY_HIGH), MemoryMax: String(MEMORY_MAX), MemoryAccounting: 'yes', NRestarts: '0' });
    const memory = await memoryControl(limits.ControlGroup ?? '');
    process.stderr.write(`[systemd-test] memory limits: ${memory.what}\n`);
    if (memory.enforced) {
      // systemd reads what the kernel charges the unit: the worker, with its jobs done, is well inside.
      expect(Number(limits.MemoryCurrent)).toBeLessThan(MEMORY_HIGH);
    } else {
      expect(limits.MemoryCurrent).toBe('[not set]');
    }
    // The worker's own peak so far, the jobs above included: under MemoryHigh=, so never slowed by it.
    expect(await peakRss(limits.MainPID ?? '')).toBeLessThan(MEMORY_HIGH);
  });

  it('systemctl reload re-reads the secret without a restart', async () => {
    const before = await show('MainPID', 'NRestarts');
    const since = await containerNow();
    await secrets.send(new PutSecretValueCommand({ SecretId: secretName, SecretString: JSON.stringify({ RETRY_BASE_SECONDS: '3', RETRY_MAX_SECONDS: '4' }) }));
    await box.ok(`systemctl reload ${UNIT}`);
    const reloaded = await until(
      'the reload log line',
      async () => (await journal(since)).find((l) => l.log?.msg === 'reload: secret re-read'),
      20_000,
      INSIDE_POLL,
    );
    expect(reloaded.log).toMatchObject({ secret: secretName });
    expect(JSON.stringify(reloaded.log?.applied)).toMatch(/retry/i);
    await until('active after the reload', async () => (await show('ActiveState')).ActiveState === 'active', 10_000, INSIDE_POLL);
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
      { everyMs: 1000 },
    );
    expect(restarted.MainPID).not.toBe(before.MainPID);
    const lines = await journal();
    expect(lines.some((l) => /Watchdog timeout/.test(l.message))).toBe(true);
  }, 150_000);

  it('an OOM kill of the worker is visible as such in systemctl status and the journal, and it is restarted', async () => {
    const before = await show('MainPID', 'NRestarts', 'ControlGroup');
    const since = await containerNow();
    const memory = await memoryControl(before.ControlGroup ?? '');
    let failed: { status: string; result: string };
    if (memory.oomKillReported) {
      // The kernel's OOM killer, for real: MemoryMax= lowered under what the worker holds, for this
      // run only (a runtime drop-in, reverted before the restart).
      await box.ok(`systemctl set-property --runtime ${UNIT} MemoryMax=32M`);
    } else {
      // What an OOM kill is to systemd where it cannot tell one (cgroup v1: no memory.events; here,
      // no memory controller at all): the kernel's SIGKILL to the main process.
      await box.ok(`systemctl kill --kill-who=main --signal=SIGKILL ${UNIT}`);
    }
    try {
      // Between the kill and the restart (RestartSec=5) the unit shows why it failed. Wait for that
      // state itself: the journal and Result can move before `systemctl status` does, so a status
      // read once after the signal may still say 'active (running)'. The status is taken while the
      // unit is in auto-restart, and kept only if it still says so (the restart may come between).
      failed = await until(
        'the unit to fail and wait for its restart',
        async () => {
          const state = await show('ActiveState', 'SubState', 'Result', 'MainPID');
          if (state.ActiveState !== 'activating' || state.SubState !== 'auto-restart' || state.Result === 'success') return undefined;
          const status = (await box.sh(`systemctl status ${UNIT} --no-pager -l`)).out;
          return /Active: activating \(auto-restart\)/.test(status) ? { status, result: state.Result ?? '' } : undefined;
        },
        30_000,
        { everyMs: 200 },
      );
    } finally {
      if (memory.oomKillReported) await box.ok(`systemctl revert ${UNIT}`);
    }
    const restarted = await until(
      'the restart',
      async () => {
        const p = await show('ActiveState', 'MainPID', 'NRestarts');
        return p.ActiveState === 'active' && p.MainPID !== before.MainPID ? p : undefined;
      },
      (RESTART_SECONDS + 60) * 1000,
    );
    expect(Number(restarted.NRestarts)).toBe(Number(before.NRestarts) + 1);
    expect(await show('MemoryHigh', 'MemoryMax')).toEqual({ MemoryHigh: String(MEMORY_HIGH), MemoryMax: String(MEMORY_MAX) });
    const lines = (await journal(since)).map((l) => l.message);
    if (memory.oomKillReported) {
      expect(failed.result).toBe('oom-kill');
      expect(failed.status).toMatch(/Active: activating \(auto-restart\) \(Result: oom-kill\)/);
      expect(lines).toContain(`${UNIT}: A process of this unit has been killed by the OOM killer.`);
      expect(lines).toContain(`${UNIT}: Failed with result 'oom-kill'.`);
    } else {
      process.stderr.write(`[systemd-test] OOM kill: ${memory.what}; shown as the SIGKILL it is to systemd\n`);
      expect(failed.result).toBe('signal');
      expect(failed.status).toMatch(/Active: activating \(auto-restart\) \(Result: signal\)/);
      expect(lines).toContain(`${UNIT}: Failed with result 'signal'.`);
    }
    expect(lines).toContain(`${UNIT}: Main process exited, code=killed, status=9/KILL`);
    expect(lines.some((l) => l.startsWith(`${UNIT}: Scheduled restart job, restart counter is at `))).toBe(true);
    // Back at work.
    const user = `oom-${randomUUID().slice(0, 8)}@example.com`;
    await sendJob(stack, inlineJob(user, [await jpegImage({ width: 128, height: 128 })]));
    expect((await outcomes(stack, 1, 30_000)).map((o) => o.status)).toEqual(['succeeded']);
  }, 120_000);

  it('install.sh --processes 2 runs two worker processes, each ready with its own limits; jobs spread over both', async () => {
    const single = await show('MainPID');
    // One METRICS_PORT for both (the shared settings file) would stop the second: refused, unchanged.
    const refused = await installSh('/opt/enrollment-worker/install.sh --processes 2');
    expect(refused.code, refused.out).toBe(1);
    expect(refused.out).toContain(`enrollment-worker@1 and @2 would both serve metrics on METRICS_PORT=${String(metricsPort)}`);
    expect(refused.out).toContain(`echo METRICS_PORT=${String(metricsPort + 1)} > /etc/enrollment-worker/enrollment-worker@2.env`);
    expect(await show('MainPID', 'ActiveState')).toEqual({ MainPID: single.MainPID, ActiveState: 'active' });
    expect((await box.ok("systemctl list-units --all --plain --no-legend 'enrollment-worker@*'")).trim()).toBe('');

    // As it says: the second instance's own port, in its own settings file.
    await box.ok(`install -m 0640 /dev/null /etc/enrollment-worker/enrollment-worker@2.env && echo METRICS_PORT=${String(secondMetricsPort)} > /etc/enrollment-worker/enrollment-worker@2.env`);
    const since = await containerNow();
    const { code, out } = await installSh('/opt/enrollment-worker/install.sh --processes 2');
    expect(code, out).toBe(0);
    expect(out).toContain('checking release'); // with both sets of settings
    expect(out).toContain('enrollment-worker.env and /etc/enrollment-worker/enrollment-worker@2.env (enrollment-worker@2):');
    expect(out).toContain('stopping and disabling enrollment-worker.service: now 2 processes');
    expect(out).toContain(`starting (2 processes instead of 1): ${INSTANCES.join(' ')}`);
    expect(out).toMatch(new RegExp(`release ${first.version.replaceAll('.', '\\.')} is running in 2 processes \\(enrollment-worker@1 pid \\d+, enrollment-worker@2 pid \\d+\\)`));
    expect(await show('ActiveState', 'UnitFileState')).toEqual({ ActiveState: 'inactive', UnitFileState: 'disabled' });

    // Each: active only once it sent READY=1, enabled, the shipped limits and watchdog, this release.
    const pids: string[] = [];
    const lines = await journal(since, INSTANCES);
    for (const unit of INSTANCES) {
      const p = await showOf(unit, 'ActiveState', 'UnitFileState', 'Type', 'MemoryHigh', 'MemoryMax', 'WatchdogUSec', 'MainPID');
      expect(p).toMatchObject({ ActiveState: 'active', UnitFileState: 'enabled', Type: 'notify', MemoryHigh: String(MEMORY_HIGH), MemoryMax: String(MEMORY_MAX), WatchdogUSec: '30s' });
      const pid = p.MainPID ?? '';
      pids.push(pid);
      expect((await box.ok(`readlink /proc/${pid}/cwd`)).trim()).toBe(installed(first));
      expect(lines.find((l) => l.pid === pid && l.log?.msg === 'ready: receiving jobs')?.log, unit).toMatchObject({ notify: true });
      expect(lines.find((l) => l.pid === pid)?.identifier).toBe(unit.replace('.service', ''));
    }
    expect(new Set(pids).size).toBe(2);
    // Each serves its own metrics.
    for (const port of [metricsPort, secondMetricsPort]) {
      await until(`/healthz on ${String(port)}`, async () => ((await fetch(`http://127.0.0.1:${String(port)}/healthz`)).status === 200 ? true : undefined), 15_000);
    }

    // Twelve jobs at once, each write held 2 s: more than one process's 4 slots hold, so both work.
    const tag = `spread-${randomUUID().slice(0, 8)}`;
    proxy.setRule((req) => (req.method === 'PUT' && req.path.includes(tag) ? { kind: 'delay', ms: 2000 } : undefined));
    try {
      const jobs = [];
      for (let i = 0; i < 12; i += 1) jobs.push(inlineJob(`${tag}-${String(i)}@example.com`, [await jpegImage({ width: 128, height: 128 })], `${tag}-${String(i)}`));
      await Promise.all(jobs.map((job) => sendJob(stack, job)));
      const results = await outcomes(stack, 12, 90_000);
      expect(results.map((o) => o.status)).toEqual(Array(12).fill('succeeded'));
    } finally {
      proxy.setRule(undefined);
    }
    const done = (await journal(since, INSTANCES)).filter((l) => l.log?.msg === 'job succeeded' && String(l.log.jobId).startsWith(tag));
    expect(done).toHaveLength(12);
    const byPid = new Map(pids.map((pid) => [pid, done.filter((l) => l.pid === pid).length]));
    process.stderr.write(`[systemd-test] 12 jobs over two processes: ${JSON.stringify(Object.fromEntries(byPid))}\n`);
    for (const pid of pids) expect(byPid.get(pid), `jobs done by ${pid}`).toBeGreaterThan(0);

    // And a second run changes nothing.
    const again = await installSh('/opt/enrollment-worker/install.sh');
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain(`nothing changed: release ${first.version} is installed and running in 2 processes (enrollment-worker@1 pid ${pids[0] ?? ''}, enrollment-worker@2 pid ${pids[1] ?? ''})`);
  }, 180_000);

  it('upgrades both processes to the second release with a job in flight: nothing lost, both new processes ready', async () => {
    const old = await Promise.all(INSTANCES.map(async (unit) => (await showOf(unit, 'MainPID')).MainPID ?? ''));
    const tag = `upgrade-${randomUUID().slice(0, 8)}`;
    const jobId = `${tag}-held`;
    let held = false;
    // The job's first write to S3 is held for a while: it is in flight when the restart comes.
    proxy.setRule((req) => {
      if (held || req.method !== 'PUT' || !req.path.includes(tag)) return undefined;
      held = true;
      return { kind: 'delay', ms: HOLD_MS };
    });
    try {
      await sendJob(stack, inlineJob(`${tag}@example.com`, [await jpegImage({ width: 128, height: 128 }), await pngImage({ width: 128, height: 128 })], jobId));
      await until('the job to be in flight', () => held, 30_000);
      const upgrade = installSh(`${unpacked(second)}/install.sh`);
      // More jobs while the upgrade checks, drains and starts: each done by one process or another.
      const others = [];
      for (let i = 0; i < 3; i += 1) {
        const user = `${tag}-${String(i)}@example.com`;
        others.push(user);
        await sendJob(stack, inlineJob(user, [await jpegImage({ width: 128, height: 128 })]));
        await sleep(1000);
      }
      const { code, out } = await upgrade;
      expect(code, out).toBe(0);
      expect(out).toContain(`restarting (switching to ${second.version} from ${first.version}): ${INSTANCES.join(' ')}`);
      expect(out).toContain(`release ${second.version} is running in 2 processes`);
      expect(out).toContain(`previous release: ${first.version}`);

      expect((await box.ok('readlink /opt/enrollment-worker /opt/enrollment-worker.previous')).trim().split('\n')).toEqual([installed(second), installed(first)]);
      const now: string[] = [];
      for (const unit of INSTANCES) {
        const p = await showOf(unit, 'MainPID', 'ActiveState');
        expect(p.ActiveState, unit).toBe('active');
        expect(old).not.toContain(p.MainPID);
        expect((await box.ok(`readlink /proc/${p.MainPID ?? ''}/cwd`)).trim()).toBe(installed(second));
        now.push(p.MainPID ?? '');
      }
      expect(await show('ActiveState')).toEqual({ ActiveState: 'inactive' });

      // Nothing lost: every job succeeded once, with all its references stored.
      const results = await outcomes(stack, 4, 60_000);
      expect(results.map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
      expect(await listKeys(stack.s3, stack.bucket, `users/${tag}@example.com/`)).toHaveLength(2);
      for (const user of others) expect(await listKeys(stack.s3, stack.bucket, `users/${user}/`)).toHaveLength(1);

      // Both old processes were told to stop and drained; the one holding the job finished it.
      const lines = await journal(undefined, INSTANCES);
      const stopping = (pid: string) => lines.find((l) => l.pid === pid && l.log?.msg === 'stopping: no new jobs are received; draining the jobs in flight');
      for (const pid of old) expect(stopping(pid), `old process ${pid} drained`).toBeDefined();
      const done = lines.find((l) => l.log?.msg === 'job succeeded' && l.log.jobId === jobId);
      expect(old).toContain(done?.pid);
      expect(done?.at ?? 0).toBeGreaterThan(stopping(done?.pid ?? '')?.at ?? Infinity);
      expect(lines.filter((l) => old.includes(l.pid) && /drain timeout/.test(l.log?.msg === undefined ? '' : String(l.log.msg)))).toEqual([]);
      // The new processes are the new release, ready and notifying systemd.
      for (const pid of now) expect(lines.find((l) => l.pid === pid && l.log?.msg === 'ready: receiving jobs')?.log).toMatchObject({ notify: true });
    } finally {
      proxy.setRule(undefined);
    }
  }, 240_000);

  it('rolls back both processes to the previous release with one command', async () => {
    const old = await Promise.all(INSTANCES.map(async (unit) => (await showOf(unit, 'MainPID')).MainPID ?? ''));
    const { code, out } = await installSh('/opt/enrollment-worker/install.sh --rollback');
    expect(code, out).toBe(0);
    expect(out).toContain(`rolling back to ${first.version}`);
    expect(out).toContain(`restarting (switching to ${first.version} from ${second.version}): ${INSTANCES.join(' ')}`);
    expect((await box.ok('readlink /opt/enrollment-worker /opt/enrollment-worker.previous')).trim().split('\n')).toEqual([installed(first), installed(second)]);
    for (const unit of INSTANCES) {
      const now = await showOf(unit, 'MainPID', 'ActiveState');
      expect(now).toMatchObject({ ActiveState: 'active' });
      expect(old).not.toContain(now.MainPID);
      expect((await box.ok(`readlink /proc/${now.MainPID ?? ''}/cwd`)).trim()).toBe(installed(first));
    }
    const user = `rollback-${randomUUID().slice(0, 8)}@example.com`;
    await sendJob(stack, inlineJob(user, [await jpegImage({ width: 128, height: 128 })]));
    expect((await outcomes(stack, 1, 30_000)).map((o) => o.status)).toEqual(['succeeded']);
  }, 180_000);

  it('refuses to switch over when check fails, and both processes of the running release keep running', async () => {
    const state = () => Promise.all(INSTANCES.map((unit) => showOf(unit, 'MainPID', 'NRestarts', 'ExecMainStartTimestampMonotonic', 'ActiveState')));
    const before = await state();
    const pids = `enrollment-worker@1 pid ${before[0]?.MainPID ?? ''}, enrollment-worker@2 pid ${before[1]?.MainPID ?? ''}`;
    // Settings that cannot work: a jobs queue that does not exist.
    await writeSettings(envFile({ SQS_QUEUE_URL: `${stack.jobsQueueUrl}-missing` }));
    try {
      const { code, out } = await installSh(`${unpacked(second)}/install.sh`);
      expect(code, out).toBe(1);
      expect(out).toMatch(/✗ jobs queue/);
      expect(out).toContain(`nothing was switched or restarted; release ${first.version} keeps running (${pids})`);
      // The check alone says the same, and changes nothing either.
      const check = await installSh('/opt/enrollment-worker/install.sh --check');
      expect(check.code, check.out).toBe(1);
      expect(check.out).toMatch(/✗ jobs queue/);
    } finally {
      await writeSettings(goodEnv);
    }
    expect((await box.ok('readlink /opt/enrollment-worker')).trim()).toBe(installed(first));
    expect(await state()).toEqual(before);
    for (const unit of before) expect(unit.ActiveState).toBe('active');
    const user = `refused-${randomUUID().slice(0, 8)}@example.com`;
    await sendJob(stack, inlineJob(user, [await jpegImage({ width: 128, height: 128 })]));
    expect((await outcomes(stack, 1, 30_000)).map((o) => o.status)).toEqual(['succeeded']);

    // A damaged release is refused before anything else is looked at.
    const damaged = await installSh(`cp -a ${unpacked(second)} /root/damaged && echo '// changed' >> /root/damaged/dist/cli.js && /root/damaged/install.sh`);
    expect(damaged.code, damaged.out).toBe(1);
    expect(damaged.out).toContain('does not match its MANIFEST.sha256');
    expect(await state()).toEqual(before);

    // The settings were edited since the workers started: install.sh again checks and restarts both.
    const again = await installSh('/opt/enrollment-worker/install.sh');
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain(`restarting (the settings changed since the workers started): ${INSTANCES.join(' ')}`);
    const after = await state();
    for (const [i, unit] of after.entries()) expect(unit.MainPID).not.toBe(before[i]?.MainPID);
  }, 180_000);

  it('install.sh --processes 1 goes back to one process: the instances drain and are disabled, the single unit runs', async () => {
    const since = await containerNow();
    const { code, out } = await installSh('/opt/enrollment-worker/install.sh --processes 1');
    expect(code, out).toBe(0);
    expect(out).toContain(`stopping and disabling ${INSTANCES.join(' ')}: now 1 process`);
    expect(out).toContain('starting (1 process instead of 2)');
    expect(out).toMatch(new RegExp(`release ${first.version.replaceAll('.', '\\.')} is running \\(pid \\d+\\)`));
    for (const unit of INSTANCES) {
      expect(await showOf(unit, 'ActiveState', 'UnitFileState'), unit).toEqual({ ActiveState: 'inactive', UnitFileState: 'disabled' });
    }
    expect(await show('ActiveState', 'UnitFileState')).toEqual({ ActiveState: 'active', UnitFileState: 'enabled' });
    const lines = await journal(since, INSTANCES);
    expect(lines.filter((l) => l.log?.msg === 'stopped')).toHaveLength(2);
    expect(lines.filter((l) => l.message.endsWith(': Deactivated successfully.')).map((l) => l.unit)).toEqual(expect.arrayContaining([...INSTANCES]));
    const user = `single-${randomUUID().slice(0, 8)}@example.com`;
    await sendJob(stack, inlineJob(user, [await jpegImage({ width: 128, height: 128 })]));
    expect((await outcomes(stack, 1, 30_000)).map((o) => o.status)).toEqual(['succeeded']);
    const again = await installSh('/opt/enrollment-worker/install.sh');
    expect(again.out).toContain(`nothing changed: release ${first.version} is installed and running (pid ${(await show('MainPID')).MainPID ?? ''})`);
  }, 120_000);

  it('systemctl stop drains and the unit ends inactive, not failed', async () => {
    const user = `stop-${randomUUID().slice(0, 8)}@example.com`;
    await sendJob(stack, inlineJob(user, [await jpegImage({ width: 128, height: 128 })]));
    const stop = await box.sh(`systemctl stop ${UNIT}`, { timeoutMs: 90_000 });
    expect(stop.code, stop.out).toBe(0);
    // Drained by the worker, not killed at TimeoutStopSec (that would be Result=timeout).
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

  it('--uninstall stops and removes the service, the template and the releases, keeps the settings; --purge removes those', async () => {
    const { code, out } = await installSh('/opt/enrollment-worker/install.sh --uninstall');
    expect(code, out).toBe(0);
    expect(out).toContain(`kept the settings in ${ENV_FILE}`);
    for (const unit of [UNIT, ...INSTANCES]) expect((await box.ok(`systemctl show -P LoadState ${unit}`)).trim(), unit).toBe('not-found');
    expect((await box.sh('ls -d /opt/enrollment-worker* /etc/systemd/system/enrollment-worker*')).out).not.toMatch(/^\//m);
    expect((await box.sh("find /etc/systemd/system -name 'enrollment-worker*'")).out.trim()).toBe('');
    await box.ok(`test -f ${ENV_FILE} && test -f /etc/enrollment-worker/enrollment-worker@2.env`);

    const purge = await installSh(`${unpacked(first)}/install.sh --uninstall --purge`);
    expect(purge.code, purge.out).toBe(0);
    expect((await box.sh('ls -d /etc/enrollment-worker')).code).not.toBe(0);
    const again = await installSh(`${unpacked(first)}/install.sh --uninstall`);
    expect(again.out).toContain('nothing to remove');
  }, 120_000);
});
