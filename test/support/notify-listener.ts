// A listening notify socket, standing in for systemd's: collects every datagram a process sends to
// it, in order. Node cannot bind a unix datagram socket, so a few lines of python3 do the listening
// and print each datagram as one JSON string per line.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './wait.ts';

const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("listening"), flush=True)
while True:
    print(json.dumps(s.recv(65536).decode("utf-8", "replace")), flush=True)
`;

const SENDER = `
import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(sys.argv[2].encode("utf-8"), sys.argv[1])
`;

export interface NotifyListener {
  readonly path: string;
  readonly messages: string[];
  /**
   * Sends `text` to the socket from another process and waits until it is read; resolves with its
   * index in `messages`. The socket keeps the order of its datagrams, so everything sent before the
   * mark has been read by then: a fence, where waiting a while would only guess.
   */
  mark(text: string): Promise<number>;
  close(): void;
}

export async function listenForNotifications(): Promise<NotifyListener> {
  const path = join(mkdtempSync(join(tmpdir(), 'notify-')), 'notify.sock');
  const child = spawn('python3', ['-u', '-c', LISTENER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  let pending = '';
  let listening: () => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    listening = resolve;
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the notify listener exited (${code})`)));
  });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const message = JSON.parse(line) as string;
      if (message === 'listening' && messages.length === 0) listening();
      else messages.push(message);
    }
  });
  await ready;
  const mark = async (text: string) => {
    await promisify(execFile)('python3', ['-c', SENDER, path, text]);
    return until(`the mark "${text}" to be read`, () => {
      const at = messages.lastIndexOf(text);
      return at >= 0 ? at : undefined;
    }, 30_000);
  };
  return { path, messages, mark, close: () => child.kill() };
}
