// `npm run local` (test/support/local.ts) for a person at a terminal and for anything else: on a
// terminal (a real pseudo-terminal, from util-linux `script`) the worker's lines are pretty-printed;
// piped, they are the JSON lines the worker writes in production. Ctrl-C stops both cleanly.
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, inject, it } from 'vitest';

const emulator = inject('emulator');
const root = resolve(import.meta.dirname, '..', '..');
const LOCAL = join(root, 'test', 'support', 'local.ts');
const READY = 'ready: receiving jobs';

interface Run {
  stdout: string;
  code: number | null;
}

/**
 * Starts `command`, waits until its stdout shows the worker ready, then stops it with `stop` (a
 * signal, or Ctrl-C typed on the terminal) and waits for the exit.
 */
function runUntilReady(command: string, args: string[], stop: 'SIGINT' | 'ctrl-c'): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, {
      cwd: root,
      // The test's emulator (local.ts uses a given endpoint as it is), no terminal settings from here.
      env: { ...process.env, TEST_AWS_ENDPOINT_URL: emulator.endpoint, TEST_IMDS_ENDPOINT: emulator.imdsEndpoint, TERM: 'xterm', SHELL: '/bin/sh' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let stopped = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no "${READY}" and exit within 60 s:\n${stdout}\n${stderr}`));
    }, 60_000);
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!stopped && stdout.includes(READY)) {
        stopped = true;
        if (stop === 'SIGINT') child.kill('SIGINT');
        else child.stdin.write('\x03');
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ stdout, code });
    });
  });
}

const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '');

describe('npm run local', { sequential: true }, () => {
  it('writes the JSON lines of production when its output is not a terminal', async () => {
    const { stdout, code } = await runUntilReady(process.execPath, [LOCAL], 'SIGINT');
    expect(code).toBe(0);
    const lines = stdout.split('\n').filter((l) => l !== '');
    const logs = lines.map((l) => JSON.parse(l) as { msg?: string; level?: unknown });
    expect(logs.map((l) => l.msg)).toContain(READY);
    expect(logs.map((l) => l.msg)).toContain('stopped');
  });

  it('pretty-prints them on a terminal, and Ctrl-C drains and stops', async () => {
    // `exec`: script(1) runs the command through $SHELL -c, and a shell that forks (dash, the
    // default when SHELL is unset, as under CI) would itself die of the Ctrl-C, exiting 130.
    const command = `exec '${process.execPath}' '${LOCAL}'`;
    const { stdout, code } = await runUntilReady('script', ['-q', '-f', '-e', '-c', command, '/dev/null'], 'ctrl-c');
    expect(code, plain(stdout)).toBe(0);
    // Coloured level names and messages, one line per record, no JSON.
    expect(stdout).toMatch(/\x1b\[32mINFO\x1b\[39m/);
    const lines = plain(stdout).split('\n');
    expect(lines.find((l) => l.includes(READY))).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ready: receiving jobs \{.*"concurrency":4/);
    expect(lines.some((l) => /^\[[\d:.]+\] INFO: stopped /.test(l))).toBe(true);
    expect(lines.filter((l) => l.startsWith('{'))).toEqual([]);
  });
});
