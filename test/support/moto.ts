// Finds and runs moto_server, the AWS API emulator used when no container runtime is available.
// moto is a Python program: it is looked for on PATH, then in a per-user cache venv, and only then
// installed into that venv. Nothing here skips a test quietly: when moto cannot be had, the error
// says how to get it or how to point the tests at another emulator.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort, until, whyNoAnswer } from './wait.ts';

export const MOTO_VERSION = '5.2.1';

export interface Moto {
  /** `http://127.0.0.1:PORT`; moto also serves IMDS here. */
  endpoint: string;
  /** The moto_server process itself (not a wrapper), so a test can SIGSTOP / SIGCONT it. */
  pid: number;
  /** moto's own `__version__`, or `unknown` when it cannot be read. */
  version: string;
  /** Terminates moto (SIGCONT, SIGTERM, then SIGKILL after a grace) and resolves once it has exited. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 3_000;
const PROBE_TIMEOUT_MS = 30_000;
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const TAIL_BYTES = 8 * 1024;

interface RunResult {
  ok: boolean;
  reason: string;
  output: string;
}

/** Runs a command to completion with a deadline; output is collected (or passed to our stderr). */
function run(
  command: string,
  args: readonly string[],
  opts: { timeoutMs: number; showOutput?: boolean; env?: NodeJS.ProcessEnv },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      env: opts.env ?? process.env,
      stdio: opts.showOutput === true ? ['ignore', 2, 2] : ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
      killSignal: 'SIGKILL',
    });
    let output = '';
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-TAIL_BYTES);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.on('error', (e: Error) => resolve({ ok: false, reason: e.message, output }));
    child.on('close', (code, signal) => {
      if (code === 0) resolve({ ok: true, reason: 'exit 0', output });
      else if (signal !== null) resolve({ ok: false, reason: `killed by ${signal}`, output });
      else resolve({ ok: false, reason: `exit ${String(code)}`, output });
    });
  });
}

/** An absolute path for a bare command name, as the shell would find it. */
async function whichOnPath(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory; keep looking
    }
  }
  return undefined;
}

async function runs(path: string, env: NodeJS.ProcessEnv): Promise<RunResult> {
  // `--help` imports moto's server module, so it fails the way a broken install would.
  return run(path, ['--help'], { timeoutMs: PROBE_TIMEOUT_MS, env });
}

/** `${XDG_CACHE_HOME:-$HOME/.cache}/enrollment-worker/moto-5.2.1`: outside the repo, shared by clones. */
export function motoCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== '' ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'enrollment-worker', `moto-${MOTO_VERSION}`);
}

function say(line: string): void {
  process.stderr.write(`[moto] ${line}\n`);
}

async function installIntoCache(venv: string, env: NodeJS.ProcessEnv): Promise<RunResult> {
  say(`moto_server not found; creating a venv at ${venv}`);
  const created = await run('python3', ['-m', 'venv', venv], { timeoutMs: 120_000, showOutput: true, env });
  if (!created.ok) return { ...created, reason: `python3 -m venv failed (${created.reason})` };
  say(`installing moto[server]==${MOTO_VERSION} into it (pip output follows)`);
  // Few retries and a short timeout: an unreachable index should fail in seconds, not minutes.
  const pip = join(venv, 'bin', 'pip');
  const installed = await run(
    pip,
    ['install', '--disable-pip-version-check', '--retries', '1', '--timeout', '15', `moto[server]==${MOTO_VERSION}`],
    { timeoutMs: INSTALL_TIMEOUT_MS, showOutput: true, env },
  );
  if (!installed.ok) {
    // A half-made venv would be mistaken for a working one next time.
    await rm(venv, { recursive: true, force: true });
    return { ...installed, reason: `pip install failed (${installed.reason})` };
  }
  return installed;
}

/**
 * A runnable moto_server: the one on PATH, else the cache venv's, else one installed into the cache
 * venv now. Throws, saying how to install moto or use another emulator, when none can be had.
 */
export async function findMotoServer(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const tried: string[] = [];

  const onPath = await whichOnPath('moto_server', env);
  if (onPath === undefined) {
    tried.push('moto_server on PATH: not found');
  } else {
    const probe = await runs(onPath, env);
    if (probe.ok) return onPath;
    tried.push(`${onPath} --help: ${probe.reason} ${lastLine(probe.output)}`.trimEnd());
  }

  const venv = motoCacheDir(env);
  const cached = join(venv, 'bin', 'moto_server');
  const present = await access(cached, constants.X_OK).then(
    () => true,
    () => false,
  );
  if (present) {
    const probe = await runs(cached, env);
    if (probe.ok) return cached;
    tried.push(`${cached} --help: ${probe.reason} ${lastLine(probe.output)}`.trimEnd());
  }

  const installed = await installIntoCache(venv, env);
  if (installed.ok) {
    const probe = await runs(cached, env);
    if (probe.ok) return cached;
    tried.push(`${cached} after install: ${probe.reason} ${lastLine(probe.output)}`.trimEnd());
  } else {
    tried.push(`install into ${venv}: ${installed.reason} ${lastLine(installed.output)}`.trimEnd());
  }

  throw new Error(
    [
      `moto_server ${MOTO_VERSION} is needed for the integration tests and could not be found or installed.`,
      'Tried:',
      ...tried.map((t) => `  - ${t}`),
      'Fix one of:',
      `  - install it on PATH:  pip install "moto[server]==${MOTO_VERSION}"`,
      `  - or into the cache:   python3 -m venv ${venv} && ${join(venv, 'bin', 'pip')} install "moto[server]==${MOTO_VERSION}"`,
      // ENDPOINT_ENV in emulator.ts (not imported: emulator.ts imports this file).
      '  - or use an emulator that is already running: TEST_AWS_ENDPOINT_URL=http://127.0.0.1:4566',
      '  - or run a container runtime (Docker/Podman) so LocalStack is used instead',
    ].join('\n'),
  );
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}


/**
 * moto's version as the running server sees it. The interpreter is read from /proc/PID/cmdline (the
 * shebang's path, as invoked) rather than /proc/PID/exe, which resolves a venv's python to the base
 * interpreter that does not have moto. Best effort: only used to announce what is running.
 */
async function versionOf(pid: number): Promise<string> {
  try {
    const cmdline = await readFile(`/proc/${String(pid)}/cmdline`, 'utf8');
    const python = cmdline.split('\0')[0];
    if (python === undefined || python === '') return 'unknown';
    const result = await run(python, ['-c', 'import moto; print(moto.__version__)'], { timeoutMs: PROBE_TIMEOUT_MS });
    return result.ok ? result.output.trim() : 'unknown';
  } catch {
    return 'unknown';
  }
}

async function startOnce(path: string, env: NodeJS.ProcessEnv): Promise<Moto | { portTaken: true; error: Error }> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${String(port)}`;
  const child = spawn(path, ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...env, PYTHONUNBUFFERED: '1' },
  });
  // moto logs every request; the pipes must be drained or it blocks once they fill.
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);

  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      exitInfo = signal !== null ? `signal ${signal}` : `exit ${String(code)}`;
      resolve();
    });
    child.on('error', (e: Error) => {
      exitInfo = e.message;
      resolve();
    });
  });
  // If the test process dies without calling stop(), do not leave moto behind.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);

  const answered = await until('moto_server to answer', async () => exitInfo !== undefined || (await whyNoAnswer(`${endpoint}/moto-api/`, 1_000)) === undefined, READY_TIMEOUT_MS, { everyMs: 100 }).then(
    () => true,
    () => false,
  );
  if (!answered) {
    child.kill('SIGKILL');
    await exited;
    process.off('exit', killOnExit);
    throw new Error(`moto_server did not answer at ${endpoint} within ${String(READY_TIMEOUT_MS)} ms; its output ends:\n${tail}`);
  }
  if (exitInfo !== undefined) {
    process.off('exit', killOnExit);
    const error = new Error(`moto_server (${path}) exited before answering (${exitInfo}); its output ends:\n${tail}`);
    if (tail.includes('Address already in use')) return { portTaken: true, error };
    throw error;
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error('moto_server started without a pid');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitInfo === undefined) {
        // A SIGSTOPped process only acts on SIGTERM once continued.
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        const force = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(force);
      }
      process.off('exit', killOnExit);
    })();
    return stopping;
  };
  return { endpoint, pid, version: await versionOf(pid), stop };
}

/** Starts moto_server on a free loopback port and resolves once it answers HTTP. */
export async function startMoto(env: NodeJS.ProcessEnv = process.env): Promise<Moto> {
  const path = await findMotoServer(env);
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const started = await startOnce(path, env);
    if (!('portTaken' in started)) return started;
    lastError = started.error;
  }
  throw lastError ?? new Error('moto_server could not start');
}

