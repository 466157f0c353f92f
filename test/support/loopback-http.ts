// A loopback HTTP server that a test answers by hand, for the wire answers no emulator gives on
// demand (a request left hanging, an odd header, a listing entry without a key): every request is
// recorded — method, path, headers, body, which connection it came on — and `answer` writes the
// response, or holds it. With `pinToLoopback`, a real SDK client that would go to AWS sends its
// request here instead, as it built it (the Host header names where it was going), so which address
// a client chose can be read without a packet leaving the machine.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MiddlewareStack } from '@aws-sdk/types';
import { listenOnLoopback } from './wait.ts';

export interface RecordedRequest {
  readonly method: string;
  /** Path and query string, as sent. */
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
  /** 1 for the server's first connection, 2 for the next, …: which requests shared a socket. */
  readonly connection: number;
  /** Resolves when the client drops the connection before the answer was complete. */
  readonly dropped: Promise<void>;
}

/** Writes the answer to `request` (or keeps `res` open: a request that never gets one). */
export type Answer = (request: RecordedRequest, res: ServerResponse) => void | Promise<void>;

export interface LoopbackHttp {
  /** `http://127.0.0.1:PORT` (`https://` when started with a certificate). */
  readonly endpoint: string;
  readonly requests: readonly RecordedRequest[];
  /** Connections the server has accepted so far. */
  readonly connections: number;
  /** Resolves with the `n`th request (1-based) once it has arrived. */
  received(n: number): Promise<RecordedRequest>;
  /** Replaces the answer for the requests still to come. */
  answerWith(answer: Answer): void;
  close(): Promise<void>;
}

/** Answers every request with `status`, `headers` and `body`. */
export function reply(res: ServerResponse, status: number, headers: Record<string, string> = {}, body: string | Buffer = ''): void {
  res.writeHead(status, { 'content-length': String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

/** A key and a self-signed certificate for 127.0.0.1, valid for a day (made by the openssl CLI). */
export interface LoopbackCertificate {
  readonly key: string;
  readonly cert: string;
}

export function loopbackCertificate(): LoopbackCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'loopback-tls-'));
  try {
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts the server on a free loopback port: plain HTTP, or HTTPS with `tls`. */
export async function startLoopbackHttp(answer: Answer, options: { tls?: LoopbackCertificate } = {}): Promise<LoopbackHttp> {
  let current = answer;
  const requests: RecordedRequest[] = [];
  const waiters: { n: number; resolve: (r: RecordedRequest) => void }[] = [];
  const sockets = new Map<Socket, number>();

  const handle: RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const dropped = new Promise<void>((resolve) => res.on('close', () => (res.writableFinished ? undefined : resolve())));
      const request: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
        connection: sockets.get(req.socket) ?? 0,
        dropped,
      };
      requests.push(request);
      for (const waiter of waiters.filter((w) => w.n === requests.length)) waiter.resolve(request);
      void Promise.resolve(current(request, res)).catch((e: unknown) => {
        if (!res.headersSent) reply(res, 500, { 'content-type': 'text/plain' }, `the test's answer failed: ${String(e)}`);
      });
    });
  };
  const server = options.tls ? createTlsServer(options.tls, handle) : createServer(handle);
  // A TLS server's requests come on the TLS socket, which 'secureConnection' hands over.
  server.on(options.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.set(socket, sockets.size + 1);
  });
  const address = await listenOnLoopback(server);
  const endpoint = options.tls ? address.replace(/^http:/, 'https:') : address;

  return {
    endpoint,
    requests,
    get connections() {
      return sockets.size;
    },
    received(n) {
      const arrived = requests[n - 1];
      if (arrived) return Promise.resolve(arrived);
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    answerWith(next) {
      current = next;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets.keys()) socket.destroy();
      });
    },
  };
}

/**
 * Sends every request of `client` to `endpoint` (a loopback server), whatever address the client
 * resolved: only the connection is redirected — the Host header, the path and the signature stay
 * as the client made them, so the server reads where the client meant to go.
 */
export function pinToLoopback<I extends object, O extends object>(client: { readonly middlewareStack: MiddlewareStack<I, O> }, endpoint: string): void {
  const target = new URL(endpoint);
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { protocol?: string; hostname?: string; port?: number };
      request.protocol = 'http:';
      request.hostname = target.hostname;
      request.port = Number(target.port);
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'pinToLoopback' },
  );
}
