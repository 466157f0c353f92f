// A real systemd (PID 1 of a systemd-nspawn container) for `npm run test:systemd`: the host tools
// and a Debian root file system are installed on first use (idempotently, the root cached outside
// the repo), releases are built with `npm run release` for the tests to install with their
// install.sh, and commands run inside the container with their output collected through a
// bind-mounted folder. The same root also runs one command without systemd (runInRoot), as a
// minimal Debian image would.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants, createWriteStream, readFileSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { commandName, processTree } from '../support/proc.ts';
import { until } from '../support/wait.ts';

const exec = promisify(execFile);

export const REPO = resolve(import.meta.dirname, '..', '..');

const SUITE = 'bookworm';
/** systemd as PID 1, D-Bus for systemctl, procps for /bin/kill (ExecReload=) as on any EC2 image. */
const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'procps'];
/**
 * The roots, by what they stand for. Bump a key when its packages or the suite change: a new key
 * builds a new cached root. `host`: an EC2 host that runs a release (nothing to build with — the
 * release carries its addons and libjpeg). `build`: what docker-compose's `node:24-bookworm` image
 * has to build the native addons with (python3, make, a C compiler, libjpeg-turbo's headers).
 */
const ROOTS = {
  host: { key: 'bookworm-minbase-v1', packages: PACKAGES },
  build: { key: 'bookworm-minbase-build-v1', packages: [...PACKAGES, 'python3', 'make', 'g++', 'libjpeg62-turbo-dev'] },
} as const;

const APT_TIMEOUT_MS = 10 * 60_000;
const DEBOOTSTRAP_TIMEOUT_MS = 10 * 60_000;

function say(line: string): void {
  process.stderr.write(`[systemd-test] ${line}\n`);
}

async function onPath(name: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    if (dir === '') continue;
    try {
      await access(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Runs a command, its output shown on our stderr (it is slow and the user should see why). */
function loud(command: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    say(`$ ${command} ${args.join(' ')}`);
    const child = spawn(command, args, {
      stdio: ['ignore', 2, 2],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` },
    });
    child.on('error', reject);
    child.on('close', (code, signal) =>
      code === 0 ? resolvePromise() : reject(new Error(`${command} failed (${signal ?? `exit ${String(code)}`})`)),
    );
  });
}

/** systemd-nspawn, debootstrap and nsenter on the host; apt-get installs what is missing. */
export async function ensureHostTools(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error('npm run test:systemd boots a container with systemd-nspawn and must run as root');
  }
  const missing: string[] = [];
  if (!(await onPath('systemd-nspawn'))) missing.push('systemd-container');
  if (!(await onPath('debootstrap'))) missing.push('debootstrap');
  if (!(await onPath('nsenter'))) missing.push('util-linux');
  if (missing.length === 0) return;
  if (!(await onPath('apt-get'))) {
    throw new Error(`install ${missing.join(', ')} (systemd-nspawn, debootstrap, nsenter); this host has no apt-get`);
  }
  await loud('apt-get', ['update', '-q'], APT_TIMEOUT_MS);
  await loud('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], APT_TIMEOUT_MS);
}

function cacheBase(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'enrollment-worker');
}

/**
 * A Debian root with systemd, built once by debootstrap (about a minute) and cached under
 * ~/.cache/enrollment-worker/systemd-rootfs-<key>. It is never written to: containers boot it with
 * a throw-away overlay (--volatile=overlay).
 */
export async function ensureRootfs(kind: keyof typeof ROOTS = 'host'): Promise<string> {
  const { key: ROOTFS_KEY, packages } = ROOTS[kind];
  const dir = join(cacheBase(), `systemd-rootfs-${ROOTFS_KEY}`);
  if (await exists(join(dir, '.complete'))) return dir;
  await mkdir(cacheBase(), { recursive: true });
  const partial = `${dir}.partial-${String(process.pid)}`;
  await rm(partial, { recursive: true, force: true });
  say(`building the container root ${dir} (debootstrap ${SUITE}, about a minute; cached for later runs)`);
  const mirror = process.env.DEBIAN_MIRROR;
  await loud(
    'debootstrap',
    ['--variant=minbase', `--include=${packages.join(',')}`, SUITE, partial, ...(mirror ? [mirror] : [])],
    DEBOOTSTRAP_TIMEOUT_MS,
  ).catch(async (e: unknown) => {
    await rm(partial, { recursive: true, force: true });
    throw e;
  });
  // No login prompt on the console, so the boot is quiet and nothing waits on a terminal.
  await rm(join(partial, 'etc/systemd/system/getty.target.wants'), { recursive: true, force: true });
  await writeFile(join(partial, '.complete'), `${ROOTFS_KEY} ${new Date().toISOString()}\n`);
  try {
    await rename(partial, dir);
  } catch (e: unknown) {
    // Another run finished first: use its root.
    await rm(partial, { recursive: true, force: true });
    if (!(await exists(join(dir, '.complete')))) throw e;
  }
  return dir;
}

export interface Release {
  version: string;
  /** dist-release/enrollment-worker-<version>-linux-<arch>.tar.gz */
  tarball: string;
  /** The folder the tarball unpacks into: enrollment-worker-<version>-linux-<arch> */
  folder: string;
}

const RELEASE_TIMEOUT_MS = 10 * 60_000;

/** `npm run release`, as a person or CI runs it (RELEASE_VERSION: another version of the same code). */
export async function buildRelease(version?: string): Promise<Release> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (version === undefined) delete env.RELEASE_VERSION;
  else env.RELEASE_VERSION = version;
  const started = Date.now();
  say(`$ ${version === undefined ? '' : `RELEASE_VERSION=${version} `}npm run release`);
  const { stderr } = await exec('npm', ['run', '-s', 'release'], { cwd: REPO, env, timeout: RELEASE_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
  const built = /\[release\] (dist-release\/(enrollment-worker-(.+)-linux-[a-z0-9]+)\.tar\.gz): .*/.exec(stderr);
  if (!built?.[1] || !built[2] || !built[3]) throw new Error(`npm run release did not name its tarball:\n${stderr}`);
  say(`${built[0].replace('[release] ', '')} (${String(Math.round((Date.now() - started) / 1000))} s with npm)`);
  return { version: built[3], tarball: join(REPO, built[1]), folder: built[2] };
}

export interface Container {
  /** The host folder bind-mounted at /results inside. */
  readonly results: string;
  /** Runs `sh -c script` inside (as root, in all the container's namespaces). */
  sh(script: string, opts?: { timeoutMs?: number; input?: string }): Promise<{ code: number; out: string }>;
  /** Like sh, but throws unless the exit status is 0. */
  ok(script: string, opts?: { timeoutMs?: number; input?: string }): Promise<string>;
  poweroff(): Promise<void>;
  /** The console output of the boot so far. */
  console(): Promise<string>;
}

export interface BootOptions {
  rootfs: string;
  results: string;
  /** host path → path inside, read-only */
  bindReadOnly: Record<string, string>;
  /** The container's whole life, after which it is killed whatever happens. */
  lifetimeSeconds: number;
}

/** The container's PID 1 as the host sees it: the `systemd` below our systemd-nspawn. */
function findInit(root: number): number | undefined {
  return processTree(root).find((pid) => pid !== root && commandName(pid) === 'systemd');
}

const INSIDE_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
  SYSTEMD_PAGER: '',
  SYSTEMD_COLORS: '0',
  COLUMNS: '250',
  TERM: 'dumb',
};

/**
 * `timeout`'s arguments for an nspawn container of the root that changes nothing in it
 * (--volatile=overlay) and is killed after `lifetimeSeconds` whatever happens.
 */
function throwAwayContainer(rootfs: string, machine: string, lifetimeSeconds: number): string[] {
  return ['-k', '15', String(lifetimeSeconds), 'systemd-nspawn', '--quiet', '--register=no', '--keep-unit', `--machine=${machine}`, '--directory', rootfs, '--volatile=overlay'];
}

/** Boots the root with systemd as PID 1 on the host's network, and waits until it is up. */
export async function boot(opts: BootOptions): Promise<Container> {
  await mkdir(opts.results, { recursive: true });
  const consoleLog = join(opts.results, 'console.log');
  const consoleStream = createWriteStream(consoleLog);
  const args = [
    ...throwAwayContainer(opts.rootfs, `ew-${String(process.pid)}`, opts.lifetimeSeconds),
    '--console=read-only',
    `--bind=${opts.results}:/results`,
    ...Object.entries(opts.bindReadOnly).map(([from, to]) => `--bind-ro=${from}:${to}`),
    '--boot',
  ];
  say(`booting: timeout ${args.join(' ')}`);
  // `timeout` bounds the container's life even if this process dies without cleaning up.
  const child: ChildProcess = spawn('timeout', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdout?.pipe(consoleStream);
  child.stderr?.pipe(consoleStream);
  let exited = false;
  const done = new Promise<void>((r) => child.on('close', () => ((exited = true), r())));
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);

  const consoleText = () => {
    try {
      return readFileSync(consoleLog, 'utf8');
    } catch {
      return '';
    }
  };
  const pid1 = await until(
    'the container to start',
    () => {
      if (exited) throw new Error(`the container exited before it started; its console says:\n${consoleText()}`);
      return child.pid === undefined ? undefined : findInit(child.pid);
    },
    60_000,
    { everyMs: 200, detail: () => `its console says:\n${consoleText()}` },
  );

  let seq = 0;
  const sh: Container['sh'] = async (script, o = {}) => {
    seq += 1;
    const name = `cmd-${String(seq).padStart(3, '0')}`;
    await writeFile(join(opts.results, `${name}.sh`), `${script}\n`);
    if (o.input !== undefined) await writeFile(join(opts.results, `${name}.in`), o.input);
    const stdin = o.input !== undefined ? `< /results/${name}.in` : '< /dev/null';
    // What runs inside writes its output and status into the bind-mounted folder; we read them there.
    const wrapper = `sh /results/${name}.sh ${stdin} > /results/${name}.out 2>&1; echo $? > /results/${name}.rc`;
    await exec('nsenter', ['--target', String(pid1), '--all', '--', '/usr/bin/env', '-i', ...Object.entries(INSIDE_ENV).map(([k, v]) => `${k}=${v}`), '/bin/sh', '-c', wrapper], {
      timeout: o.timeoutMs ?? 60_000,
    });
    const code = Number((await readFile(join(opts.results, `${name}.rc`), 'utf8')).trim());
    const out = await readFile(join(opts.results, `${name}.out`), 'utf8');
    return { code, out };
  };
  const ok: Container['ok'] = async (script, o) => {
    const { code, out } = await sh(script, o);
    if (code !== 0) throw new Error(`inside the container, exit ${String(code)}: ${script}\n${out}`);
    return out;
  };

  // PID 1 exists before its private socket does: until then systemctl cannot connect.
  let state = '';
  await until(
    "the container's systemd to answer",
    async () => {
      state = (await sh('systemctl is-system-running --wait', { timeoutMs: 120_000 })).out.trim();
      return !state.includes('Failed to connect');
    },
    120_000,
    { everyMs: 250 },
  ).catch(() => undefined);
  if (state !== 'running') {
    const failed = (await sh('systemctl --failed --no-legend')).out;
    say(`the container is ${state}; failed units:\n${failed}`);
    if (state !== 'degraded') throw new Error(`the container's systemd did not come up: ${state}`);
  }

  return {
    results: opts.results,
    sh,
    ok,
    console: () => readFile(consoleLog, 'utf8'),
    async poweroff() {
      if (!exited) {
        await sh('systemctl --no-block poweroff').catch(() => undefined);
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await done;
        clearTimeout(timer);
      }
      process.off('exit', killOnExit);
      consoleStream.end();
    },
  };
}

/** A fresh folder for one run's results, kept afterwards for a look at what happened. */
export async function resultsFolder(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'enrollment-worker-systemd-'));
}

/**
 * What a suite booting a container needs first: a hard bound on the whole run (whatever hangs, the
 * process exits after it), the host tools, the cached root and a results folder (named on stderr).
 */
export async function prepareRun(boundSeconds: number): Promise<{ rootfs: string; results: string }> {
  setTimeout(() => {
    say(`the run exceeded ${String(boundSeconds)} s; giving up`);
    process.exit(1);
  }, boundSeconds * 1000).unref();
  await ensureHostTools();
  const rootfs = await ensureRootfs();
  const results = await resultsFolder();
  say(`results, commands and journal: ${results}`);
  return { rootfs, results };
}

export interface RootRun {
  /** stdout and stderr so far, as one text. */
  output(): string;
  /** Resolves with the exit status of the command (that of systemd-nspawn, which passes it on). */
  readonly exited: Promise<number | null>;
  /** SIGTERM to the command (systemd-nspawn passes it on, see --kill-signal). */
  terminate(): void;
}

export interface RunOptions {
  rootfs: string;
  /** host path → path inside, read-only */
  bindReadOnly: Record<string, string>;
  /** host path → path inside, writable */
  bind: Record<string, string>;
  env: Record<string, string>;
  argv: string[];
  /** Killed after this, whatever happens. */
  lifetimeSeconds: number;
}

/**
 * Runs one command as PID 1 of a throw-away container of the root (no systemd, no boot): what a
 * container engine does with an image. The root is not changed (--volatile=overlay); the network is
 * the host's. Its output is collected as it comes.
 */
export function runInRoot(opts: RunOptions): RootRun {
  const args = [
    ...throwAwayContainer(opts.rootfs, `ew-run-${String(process.pid)}`, opts.lifetimeSeconds),
    // Plain pipes, as `docker compose up` gives a service without `tty: true`.
    '--console=pipe',
    // A stop reaches the command as SIGTERM (the default without --boot is SIGKILL).
    '--kill-signal=SIGTERM',
    ...Object.entries(opts.bindReadOnly).map(([from, to]) => `--bind-ro=${from}:${to}`),
    ...Object.entries(opts.bind).map(([from, to]) => `--bind=${from}:${to}`),
    ...Object.entries(opts.env).map(([k, v]) => `--setenv=${k}=${v}`),
    '--',
    ...opts.argv,
  ];
  say(`running: timeout ${args.join(' ')}`);
  const child = spawn('timeout', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const exited = new Promise<number | null>((resolveExit, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      process.off('exit', killOnExit);
      resolveExit(code);
    });
  });
  return {
    output: () => text,
    exited,
    terminate: () => {
      // `timeout` passes SIGTERM on to systemd-nspawn, which passes it on to the command.
      child.kill('SIGTERM');
    },
  };
}
