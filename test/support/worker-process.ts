// The built worker as a separate process, the way systemd runs it: `node dist/cli.js run` with its
// settings in the environment and its JSON log lines on stdout, parsed here for assertions.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Stack } from './resources.ts';

export const CLI = resolve(import.meta.dirname, '..', '..', 'dist', 'cli.js');

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  /** stdout lines that were not JSON, and all of stderr. */
  readonly text: string[];
  readonly exited: Promise<Exit>;
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends the signal and waits for the exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

/**
 * An environment with no AWS keys and no shared config files: the worker must find credentials
 * through the chain (here, the emulator's IMDSv2 endpoint), as it does on EC2.
 */
export function baseEnv(imdsEndpoint: string): NodeJS.ProcessEnv {
  const home = mkdtempSync(join(tmpdir(), 'worker-home-'));
  return {
    PATH: process.env.PATH,
    HOME: home,
    AWS_CONFIG_FILE: join(home, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'no-credentials'),
    AWS_EC2_METADATA_SERVICE_ENDPOINT: imdsEndpoint,
  };
}

/** The usual settings for a worker on a test stack; fast retries so tests do not wait long. */
export function stackEnv(stack: Stack, imdsEndpoint: string, overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...baseEnv(imdsEndpoint),
    AWS_REGION: stack.region,
    AWS_ENDPOINT_URL: stack.endpoint,
    SQS_QUEUE_URL: stack.jobsQueueUrl,
    S3_BUCKET: stack.bucket,
    STAGING_BUCKET: stack.stagingBucket,
    RESULT_QUEUE_URL: stack.resultQueueUrl,
    // Most suites send unsigned jobs; those about signing set JOB_SIGNING_KEY (or clear this).
    ALLOW_UNSIGNED_JOBS: 'true',
    CONCURRENCY: '4',
    RETRY_BASE_SECONDS: '1',
    RETRY_MAX_SECONDS: '2',
    STARTUP_TIMEOUT_SECONDS: '20',
    // Short long polls, so that a graceful stop (which waits for them) is quick in tests.
    POLL_WAIT_SECONDS: '2',
    LOG_LEVEL: 'debug',
  };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  return env;
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv): WorkerProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  const text: string[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of waiters) w();
  };

  const lines = (stream: NodeJS.ReadableStream, json: boolean) => {
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) {
        if (line.trim() === '') continue;
        if (json && line.startsWith('{')) {
          try {
            logs.push(JSON.parse(line) as LogLine);
            continue;
          } catch {
            // fall through: kept as text
          }
        }
        text.push(line);
      }
      notify();
    });
  };
  if (child.stdout) lines(child.stdout, true);
  if (child.stderr) lines(child.stderr, false);

  let exitInfo: Exit | undefined;
  const exited = new Promise<Exit>((resolveExit) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      // Let the last stdout chunks arrive before anyone looks at the logs.
      setTimeout(() => {
        resolveExit({ code, signal });
        notify();
      }, 50);
    });
  });

  const describe = () =>
    `logs so far:\n${logs.map((l) => JSON.stringify(l)).join('\n')}\n${text.join('\n')}`;

  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 30_000) =>
    new Promise<LogLine>((resolveLine, reject) => {
      let checked = 0;
      const check = () => {
        for (; checked < logs.length; checked += 1) {
          const line = logs[checked];
          if (line && match(line)) {
            cleanup();
            resolveLine(line);
            return;
          }
        }
        if (exitInfo) {
          cleanup();
          reject(new Error(`the worker exited (${JSON.stringify(exitInfo)}) before the expected log line; ${describe()}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching log line within ${timeoutMs} ms; ${describe()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<Exit> => {
    if (!exitInfo) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  return { child, logs, text, exited, waitForLog, stop };
}

/** Starts `run` and waits until it says it is receiving jobs. */
export async function startWorker(env: NodeJS.ProcessEnv): Promise<WorkerProcess> {
  const worker = spawnCli(['run'], env);
  await worker.waitForLog((l) => l.msg === 'ready: receiving jobs', 30_000);
  return worker;
}

/** Kills every worker a test started, whatever state the test ended in. */
export function workerReaper(): { track(w: WorkerProcess): WorkerProcess; killAll(): Promise<void> } {
  const all = new Set<WorkerProcess>();
  return {
    track(w) {
      all.add(w);
      return w;
    },
    async killAll() {
      await Promise.all([...all].map((w) => w.stop('SIGKILL', 5_000)));
      all.clear();
    },
  };
}
