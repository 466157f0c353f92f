// A loopback reverse proxy put between the code under test and the emulator, to inject the
// transient faults real AWS produces (5xx, slow answers, dropped connections) on chosen requests.
// Everything a rule does not pick is passed through byte for byte, Host header included, so the
// emulator sees the same requests it would see directly.
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { listenOnLoopback } from './wait.ts';

export type Fault =
  | { kind: 'status'; status: number; body?: string }
  | { kind: 'delay'; ms: number }
  /** Held until `until` settles, then forwarded: a slow answer that ends when the test says so. */
  | { kind: 'hold'; until: Promise<unknown> }
  | { kind: 'reset' };

export interface FaultRequest {
  method: string;
  /** Path with its query string, as sent (S3 operations differ by query, e.g. `?list-type=2`). */
  path: string;
  /** The `x-amz-target` header (SQS: `AmazonSQS.ReceiveMessage`); undefined for S3 and query APIs. */
  target: string | undefined;
}

export type FaultRule = (req: FaultRequest) => Fault | undefined;

export interface FaultProxy {
  /** `http://127.0.0.1:PORT`: use as the SDK client's endpoint. */
  url: string;
  /** Replaces the rule; `undefined` passes everything through. */
  setRule(rule: FaultRule | undefined): void;
  /** Requests that got a fault (of any kind) so far. */
  readonly hits: number;
  /** Requests received and not yet answered or given up by the client, oldest first. */
  open(): FaultRequest[];
  close(): Promise<void>;
}

// Error codes the SDKs know for these statuses, so an injected fault parses like a real one.
const CODE_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'ThrottlingException',
  429: 'ThrottlingException',
  500: 'InternalError',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
  504: 'GatewayTimeout',
};

/** An error response in the wire format of the API being called: JSON for SQS, XML for S3. */
function answerWithStatus(res: ServerResponse, fault: { status: number; body?: string }, target: string | undefined, contentType: string | undefined): void {
  const code = CODE_BY_STATUS[fault.status] ?? 'InjectedFault';
  let type: string;
  let body: string;
  if (target !== undefined) {
    type = contentType?.startsWith('application/x-amz-json') === true ? contentType : 'application/x-amz-json-1.0';
    const namespace = target.startsWith('AmazonSQS.') ? 'com.amazonaws.sqs#' : '';
    body = fault.body ?? JSON.stringify({ __type: `${namespace}${code}`, message: 'injected' });
  } else {
    type = 'application/xml';
    body = fault.body ?? `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>injected</Message><RequestId>injected</RequestId></Error>`;
  }
  res.writeHead(fault.status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'x-amzn-requestid': 'injected',
  });
  res.end(body);
}

/** Starts a proxy to `target` (e.g. the emulator endpoint) on a free loopback port. */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  if (upstream.protocol !== 'http:') throw new Error(`fault proxy only forwards to http:// targets, got ${target}`);
  const agent = new Agent({ keepAlive: true });
  const timers = new Set<NodeJS.Timeout>();
  let rule: FaultRule | undefined;
  let hits = 0;
  const inFlight = new Set<FaultRequest>();
  let closed = false;

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const out = request(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        // Raw pairs keep names, order, duplicates and the client's Host exactly as sent.
        headers: req.rawHeaders,
        agent,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.rawHeaders);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
      },
    );
    out.on('error', (e: Error) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = `fault proxy: upstream ${target} failed: ${e.message}`;
      res.writeHead(502, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    // The client gave up (or was reset): stop the upstream side too.
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  };

  const server = createServer((req, res) => {
    const rawTarget = req.headers['x-amz-target'];
    const faultRequest: FaultRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      target: typeof rawTarget === 'string' ? rawTarget : undefined,
    };
    // Open until answered, or until the client closes its side (a cancelled request).
    inFlight.add(faultRequest);
    res.on('close', () => inFlight.delete(faultRequest));
    let fault: Fault | undefined;
    try {
      fault = rule?.(faultRequest);
    } catch (e: unknown) {
      // A broken rule is a broken test: say so in the response rather than pass the request on.
      const body = `fault proxy: rule threw: ${e instanceof Error ? e.message : String(e)}`;
      res.writeHead(500, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    if (fault === undefined) {
      forward(req, res);
      return;
    }
    hits++;
    switch (fault.kind) {
      case 'status':
        req.resume();
        answerWithStatus(res, fault, faultRequest.target, req.headers['content-type']);
        return;
      case 'delay': {
        // The body stays paused in the socket until forwarded.
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!closed && !req.destroyed) forward(req, res);
        }, fault.ms);
        timers.add(timer);
        return;
      }
      case 'hold': {
        const release = () => {
          if (!closed && !req.destroyed) forward(req, res);
        };
        fault.until.then(release, release);
        return;
      }
      case 'reset':
        req.socket.destroy();
        return;
    }
  });

  let closing: Promise<void> | undefined;
  return {
    url: await listenOnLoopback(server),
    setRule: (next) => {
      rule = next;
    },
    get hits() {
      return hits;
    },
    open: () => [...inFlight],
    close: () => {
      closing ??= new Promise<void>((done) => {
        closed = true;
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close(() => done());
        // Keep-alive connections (both sides) would otherwise hold close() open.
        server.closeAllConnections();
        agent.destroy();
      });
      return closing;
    },
  };
}

/**
 * A fault proxy for the tests of one file, through vitest's hooks: started before them, its rule
 * cleared after each test (then `afterEachTest` runs, e.g. to kill the test's workers), closed after
 * them all. Usable from the first test on.
 */
export function faultProxyPerFile(target: string, afterEachTest?: () => Promise<void>): FaultProxy {
  let started: FaultProxy | undefined;
  const proxy = (): FaultProxy => {
    if (started === undefined) throw new Error('the fault proxy is used before its beforeAll ran');
    return started;
  };
  beforeAll(async () => {
    started = await startFaultProxy(target);
  });
  afterEach(async () => {
    started?.setRule(undefined);
    await afterEachTest?.();
  });
  afterAll(() => started?.close());
  return {
    get url() {
      return proxy().url;
    },
    setRule: (rule) => proxy().setRule(rule),
    get hits() {
      return proxy().hits;
    },
    open: () => proxy().open(),
    close: () => proxy().close(),
  };
}
