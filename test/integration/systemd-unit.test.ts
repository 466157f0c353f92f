// The shipped systemd unit and its template (one worker process per instance), checked the way
// systemd itself reads them: `systemd-analyze verify` must be clean and `systemd-analyze security
// --offline=true` must not rate them worse than EXPOSURE_LIMIT, so a change that weakens the sandbox
// fails CI. Plus the promises the units and the env file make to the worker's own settings (docs/producers.md
// "Queue semantics", "Configuration", "Memory"), and the template kept the unit's twin. No systemd
// needs to run: systemd-analyze works on a file. The real-systemd run is `npm run test:systemd`.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_IN_FLIGHT_BYTES, SETTING_NAMES } from '../../src/config.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');
const UNIT = join(ROOT, 'systemd', 'enrollment-worker.service');
const TEMPLATE = join(ROOT, 'systemd', 'enrollment-worker@.service');
const ENV_EXAMPLE = join(ROOT, 'systemd', 'enrollment-worker.env.example');

/**
 * The exposure `systemd-analyze security` reports for the unit today (1.1, "OK"; 2.0 is the most
 * the issue allows). What is left is what a network daemon on Node cannot give up: the host network
 * (PrivateNetwork), IPv4/IPv6 and AF_UNIX sockets, W^X memory (V8's JIT), an IP allow list (AWS
 * endpoints have no fixed addresses), the host root, and /dev/rtc read (ProtectClock).
 */
const EXPOSURE_LIMIT = 1.1;

/** The worker's defaults these promises are made against (docs/operations.md "Configuration"). */
const DEFAULTS = { STARTUP_TIMEOUT_SECONDS: 60, DRAIN_TIMEOUT_SECONDS: 30, POLL_WAIT_SECONDS: 20 } as const;

const MiB = 1024 * 1024;
/**
 * What the worker holds besides its image budget (Node, the AWS SDK, libvips, sockets), as the
 * unit's comment states it: MemoryHigh = this + MAX_IN_FLIGHT_BYTES, MemoryMax = MemoryHigh + 128M.
 */
const OWN_MEMORY = 384 * MiB;
const MAX_ABOVE_HIGH = 128 * MiB;
/** The bound docs/images.md "Memory" states for the worker's peak with the defaults (issue 9: at most 768 MiB). */
const PEAK_BOUND = 768 * MiB;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function analyze(args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await run('systemd-analyze', args, { timeout: 30_000, env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' } });
    return { code: 0, stdout, stderr };
  } catch (e: unknown) {
    const failed = e as NodeJS.ErrnoException & { code?: number | string; stdout?: string; stderr?: string };
    if (failed.code === 'ENOENT') {
      throw new Error('systemd-analyze is not installed; it comes with systemd (Debian/Ubuntu: apt-get install systemd)');
    }
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/** `Key=value` lines of one section of a unit file, in order (a key may repeat). */
function directives(text: string, section: string): [string, string][] {
  const out: [string, string][] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = header[1] ?? '';
      continue;
    }
    const eq = line.indexOf('=');
    if (current === section && eq > 0) out.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return out;
}

function only(list: [string, string][], key: string): string {
  const values = list.filter(([k]) => k === key).map(([, v]) => v);
  expect(values, `${key}= must be set exactly once`).toHaveLength(1);
  return values[0] ?? '';
}

/** systemd sizes as the unit writes them: `640M`, `1G`, bytes. */
function bytes(size: string): number {
  const m = /^(\d+)([KMG]?)$/.exec(size);
  expect(m, `not a size: ${size}`).not.toBeNull();
  return Number(m?.[1]) * { '': 1, K: 1024, M: MiB, G: 1024 * MiB }[(m?.[2] ?? '') as '' | 'K' | 'M' | 'G'];
}

/** systemd time spans as the unit writes them: `90`, `90s`, `1min 30s`. */
function seconds(span: string): number {
  let total = 0;
  const re = /(\d+)\s*(min|s)?/g;
  for (let m = re.exec(span); m !== null; m = re.exec(span)) total += Number(m[1]) * (m[2] === 'min' ? 60 : 1);
  return total;
}

/** The two files ops install: the unit (one process) and the template (enrollment-worker@N). */
const SHIPPED = [
  { file: UNIT, name: 'enrollment-worker.service', analysed: 'enrollment-worker.service' },
  // systemd-analyze reads a template through one of its instances.
  { file: TEMPLATE, name: 'enrollment-worker@.service', analysed: 'enrollment-worker@1.service' },
] as const;

for (const shipped of SHIPPED) {
  describe(`systemd/${shipped.name}`, () => {
    let unitText = '';
    let service: [string, string][] = [];
    let scratch = '';

    beforeAll(async () => {
      unitText = await readFile(shipped.file, 'utf8');
      service = directives(unitText, 'Service');
      scratch = await mkdtemp(join(tmpdir(), 'systemd-unit-'));
    });
    afterAll(async () => {
      if (scratch !== '') await rm(scratch, { recursive: true, force: true });
    });

    it('is clean under systemd-analyze verify', async () => {
      // verify insists that the Exec binaries exist. They do on a server, not necessarily here: check a
      // copy (same name, so the same unit) whose only change is to point them at this machine's node
      // and kill. The shipped file stays the one ops install.
      const { stdout: kill } = await run('sh', ['-c', 'command -v kill || true']);
      const killPath = kill.trim().startsWith('/') ? kill.trim() : '/bin/kill';
      const copy = unitText.replaceAll('/usr/bin/node ', `${process.execPath} `).replaceAll('/bin/kill ', `${killPath} `);
      expect(copy).not.toBe('');
      await writeFile(join(scratch, shipped.name), copy);
      const result = await analyze(['verify', '--man=no', join(scratch, shipped.analysed)]);
      const output = `${result.stdout}${result.stderr}`.trim();
      expect(output, 'systemd-analyze verify must print nothing').toBe('');
      expect(result.code).toBe(0);
    });

    it(`has an exposure of at most ${EXPOSURE_LIMIT.toFixed(1)} under systemd-analyze security --offline=true`, async () => {
      await writeFile(join(scratch, shipped.name), unitText);
      // --threshold is in tenths; exit status is non-zero when the exposure is above it.
      const threshold = String(Math.round(EXPOSURE_LIMIT * 10));
      const result = await analyze(['security', '--offline=true', `--threshold=${threshold}`, '--no-pager', join(scratch, shipped.analysed)]);
      const overall = new RegExp(`Overall exposure level for ${shipped.analysed.replaceAll('.', '\\.')}: (\\d+(?:\\.\\d+)?)`).exec(result.stdout);
      expect(overall, `no exposure in the output:\n${result.stdout}${result.stderr}`).not.toBeNull();
      const exposure = Number(overall?.[1]);
      const failing = result.stdout
        .split('\n')
        .filter((l) => l.startsWith('✗'))
        .map((l) => l.replace(/\s{2,}/g, '  ').trim());
      expect(exposure, `exposure ${String(exposure)}; what counts against it:\n${failing.join('\n')}`).toBeLessThanOrEqual(EXPOSURE_LIMIT);
      expect(result.code, `systemd-analyze security --threshold=${threshold} failed:\n${result.stderr}`).toBe(0);
    });

    it('keeps the sandbox settings Node can live with', () => {
      // MemoryDenyWriteExecute=yes kills V8 at start; a system-call filter without an errno kills the
      // process on the first denied call instead of failing that call.
      expect(directives(unitText, 'Service').some(([k, v]) => k === 'MemoryDenyWriteExecute' && v === 'yes')).toBe(false);
      expect(only(service, 'SystemCallErrorNumber')).toBe('EPERM');
      expect(only(service, 'DynamicUser')).toBe('yes');
      // The process cannot raise its own limits (~@resources), so the unit sets what CONCURRENCY needs.
      expect(Number(only(service, 'LimitNOFILE'))).toBeGreaterThanOrEqual(2 * 1024 + 64);
      const families = only(service, 'RestrictAddressFamilies').split(/\s+/);
      expect(families).toEqual(expect.arrayContaining(['AF_UNIX', 'AF_INET', 'AF_INET6']));
    });

    it('runs the installed build with node directly, as a notify service', () => {
      expect(only(service, 'Type')).toBe('notify');
      expect(only(service, 'NotifyAccess')).toBe('main');
      expect(only(service, 'ExecStart')).toBe('/usr/bin/node /opt/enrollment-worker/dist/cli.js run');
      expect(only(service, 'WorkingDirectory')).toBe('/opt/enrollment-worker');
      // The template's instances read the same settings, then their own optional file.
      const settings = service.filter(([k]) => k === 'EnvironmentFile').map(([, v]) => v);
      expect(settings).toEqual(
        shipped.file === TEMPLATE
          ? ['/etc/enrollment-worker/enrollment-worker.env', '-/etc/enrollment-worker/enrollment-worker@%i.env']
          : ['/etc/enrollment-worker/enrollment-worker.env'],
      );
      expect(only(service, 'ExecReload')).toBe('/bin/kill -HUP $MAINPID');
      expect(only(service, 'KillSignal')).toBe('SIGTERM');
    });

    it('restarts on failure, but not on bad configuration and not in a loop', () => {
      expect(only(service, 'Restart')).toBe('on-failure');
      expect(only(service, 'RestartPreventExitStatus').split(/\s+/)).toContain('78');
      expect(seconds(only(service, 'RestartSec'))).toBeGreaterThan(0);
      const unit = directives(unitText, 'Unit');
      expect(seconds(only(unit, 'StartLimitIntervalSec'))).toBeGreaterThan(0);
      expect(Number(only(unit, 'StartLimitBurst'))).toBeGreaterThan(0);
    });

    it('gives start-up and the drain the time the worker takes', () => {
      // Start-up gives up by itself after STARTUP_TIMEOUT_SECONDS and must be let say why.
      expect(seconds(only(service, 'TimeoutStartSec'))).toBeGreaterThan(DEFAULTS.STARTUP_TIMEOUT_SECONDS);
      // A stop takes at most max(DRAIN_TIMEOUT_SECONDS, POLL_WAIT_SECONDS + 5) s and the worker forces
      // its own exit 10 s after max(DRAIN_TIMEOUT_SECONDS, POLL_WAIT_SECONDS): systemd must wait longer.
      const drain = Math.max(DEFAULTS.DRAIN_TIMEOUT_SECONDS, DEFAULTS.POLL_WAIT_SECONDS + 5);
      const guard = Math.max(DEFAULTS.DRAIN_TIMEOUT_SECONDS, DEFAULTS.POLL_WAIT_SECONDS) + 10;
      expect(seconds(only(service, 'TimeoutStopSec'))).toBeGreaterThan(Math.max(drain, guard));
      // The worker pings at half the interval; a blocked loop must not be waited on for minutes.
      const watchdog = seconds(only(service, 'WatchdogSec'));
      expect(watchdog).toBeGreaterThanOrEqual(10);
      expect(watchdog).toBeLessThanOrEqual(60);
    });

    it('holds the worker to its memory: MemoryHigh= is the stated bound (its own memory plus the default budget), MemoryMax= above it', () => {
      const max = bytes(only(service, 'MemoryMax'));
      const high = bytes(only(service, 'MemoryHigh'));
      // The rule the unit's comment gives ops for raising them with MAX_IN_FLIGHT_BYTES, at the default.
      expect(high).toBe(OWN_MEMORY + DEFAULT_MAX_IN_FLIGHT_BYTES);
      expect(high).toBe(PEAK_BOUND);
      expect(max).toBe(high + MAX_ABOVE_HIGH);
      expect(unitText).toContain('MemoryHigh = 384M + MAX_IN_FLIGHT_BYTES');
      expect(unitText).toContain('MemoryMax  = MemoryHigh + 128M');
    });
  });
}

describe('systemd/enrollment-worker@.service is systemd/enrollment-worker.service, one process per instance', () => {
  it('differs from the unit only in the instance\'s name, its journal identifier and its own settings file', async () => {
    const [unitText, templateText] = await Promise.all([readFile(UNIT, 'utf8'), readFile(TEMPLATE, 'utf8')]);
    for (const section of ['Unit', 'Service', 'Install']) {
      const unit = directives(unitText, section);
      const template = directives(templateText, section);
      const differing = (a: [string, string][], b: [string, string][]) => a.filter(([k, v]) => !b.some(([k2, v2]) => k === k2 && v === v2)).map(([k, v]) => `${k}=${v}`);
      const expected: Record<string, [string[], string[]]> = {
        Unit: [['Description=enrollment-worker (SQS enrollment jobs to S3 reference images)'], ['Description=enrollment-worker %i (SQS enrollment jobs to S3 reference images)']],
        Service: [['SyslogIdentifier=enrollment-worker'], ['EnvironmentFile=-/etc/enrollment-worker/enrollment-worker@%i.env', 'SyslogIdentifier=enrollment-worker@%i']],
        Install: [[], []],
      };
      expect([differing(unit, template), differing(template, unit)], section).toEqual(expected[section]);
      // The same directives in the same order otherwise (a repeated key's order matters to systemd).
      const same = (list: [string, string][], other: [string, string][]) => list.filter(([k, v]) => other.some(([k2, v2]) => k === k2 && v === v2));
      expect(same(template, unit), section).toEqual(same(unit, template));
    }
  });
});

describe('systemd/enrollment-worker.env.example', () => {
  let lines: string[] = [];
  beforeAll(async () => {
    lines = (await readFile(ENV_EXAMPLE, 'utf8')).split('\n');
  });

  it('names every setting of the worker, each with a comment', () => {
    const names = lines.map((l) => /^#?([A-Z][A-Z0-9_]*)=/.exec(l)?.[1]).filter((n): n is string => n !== undefined);
    for (const setting of [...SETTING_NAMES, 'SECRETS_MANAGER_SECRET_NAME']) {
      expect(names, `${setting} is missing`).toContain(setting);
      const at = lines.findIndex((l) => l.startsWith(`${setting}=`) || l.startsWith(`#${setting}=`));
      expect(lines[at - 1]?.startsWith('#'), `${setting} needs a comment above it`).toBe(true);
    }
  });

  it('sets no credentials', () => {
    const set = lines.filter((l) => !l.startsWith('#')).map((l) => l.split('=')[0]?.trim());
    for (const key of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) {
      expect(set).not.toContain(key);
    }
    expect(lines.some((l) => /no credentials belong here/i.test(l))).toBe(true);
  });
});
