// A minimal EC2 instance metadata service (IMDSv2 only) for backends that do not serve one
// (LocalStack, a given endpoint). It hands out the emulator's dummy credentials, so a worker that
// uses only the default provider chain can be run as it would run on EC2. Started with `v1Only`, it
// is the service an instance must never trust: no token API (404), credentials to anyone who asks.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './wait.ts';

export interface Imds {
  /** `http://127.0.0.1:PORT`: the value for AWS_EC2_METADATA_SERVICE_ENDPOINT. */
  endpoint: string;
  /** Requests received so far, of any kind: proof that credentials really came from here. */
  readonly requests: number;
  /** Credential documents served without a token (only ever with `v1Only`). */
  readonly servedWithoutToken: number;
  stop(): Promise<void>;
}

export const IMDS_ROLE = 'enrollment-worker-test-role';
const CREDENTIALS_PATH = '/latest/meta-data/iam/security-credentials/';
const MAX_TTL_SECONDS = 21_600;
const CREDENTIALS_LIFETIME_MS = 6 * 60 * 60 * 1000;

function send(res: ServerResponse, status: number, body: string, type = 'text/plain'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Starts the service on a free loopback port. */
/** The instance role's credentials as IMDS serves them: the emulators' dummy values. */
export function roleCredentialsDocument(lifetimeMs: number, now = Date.now()): string {
  return JSON.stringify({
    Code: 'Success',
    LastUpdated: new Date(now).toISOString(),
    Type: 'AWS-HMAC',
    AccessKeyId: 'test',
    SecretAccessKey: 'test',
    Token: 'test',
    Expiration: new Date(now + lifetimeMs).toISOString(),
  });
}

export async function startImds(options: { v1Only?: boolean } = {}): Promise<Imds> {
  const tokens = new Map<string, number>(); // token → expiry (epoch ms)
  let requests = 0;
  let servedWithoutToken = 0;

  const validToken = (req: IncomingMessage): boolean => {
    const token = req.headers['x-aws-ec2-metadata-token'];
    if (typeof token !== 'string') return false;
    const expiry = tokens.get(token);
    return expiry !== undefined && expiry > Date.now();
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    requests++;
    const path = new URL(req.url ?? '/', 'http://imds').pathname;

    if (path === '/latest/api/token') {
      // An IMDSv1-only service has no token API: the SDK takes a 403/404/405 here as the cue to fall back to v1.
      if (options.v1Only) return send(res, 404, 'not found');
      if (req.method !== 'PUT') return send(res, 405, 'method not allowed');
      // As on EC2: the TTL header is required and must be 1..21600 seconds.
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) return send(res, 400, 'bad ttl');
      const token = randomBytes(24).toString('base64url');
      tokens.set(token, Date.now() + ttl * 1000);
      res.setHeader('x-aws-ec2-metadata-token-ttl-seconds', String(ttl));
      return send(res, 200, token);
    }

    if (req.method !== 'GET') return send(res, 405, 'method not allowed');
    // IMDSv2 only: a GET without a live token is refused, as with HttpTokens=required.
    if (!options.v1Only && !validToken(req)) return send(res, 401, 'unauthorized');

    if (path === CREDENTIALS_PATH) return send(res, 200, IMDS_ROLE);
    if (path === `${CREDENTIALS_PATH}${IMDS_ROLE}`) {
      if (!validToken(req)) servedWithoutToken += 1;
      return send(res, 200, roleCredentialsDocument(CREDENTIALS_LIFETIME_MS), 'application/json');
    }
    return send(res, 404, 'not found');
  };

  const server = createServer((req, res) => {
    // The body is never needed; read it so keep-alive connections stay usable.
    req.resume();
    handle(req, res);
  });

  let stopping: Promise<void> | undefined;
  return {
    endpoint: await listenOnLoopback(server),
    get requests() {
      return requests;
    },
    get servedWithoutToken() {
      return servedWithoutToken;
    },
    stop: () => {
      stopping ??= new Promise<void>((done) => {
        server.close(() => done());
        // Idle keep-alive sockets would otherwise hold close() open.
        server.closeAllConnections();
      });
      return stopping;
    },
  };
}
