// The SDK clients as src/aws/clients.ts builds them, each talking to a real loopback HTTP server
// (test/support/loopback-http.ts): where each sends its requests, with or without an emulator's
// endpoint, signed for the region with the credentials it was given; the request timeouts that end a
// call nobody answers; the socket pools; the MD5 the SQS client does not check; credentials from
// IMDSv2 only, never from a v1-only service; and what whoAmI reports.
import { tmpdir } from 'node:os';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { GetQueueAttributesCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity } from '@aws-sdk/types';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { credentialSource, defaultCredentials, s3Client, secretsClient, sqsClient, stsClient, whoAmI } from '../../src/aws/clients.ts';
import { startImds } from '../support/imds.ts';
import { loopbackCertificate, pinToLoopback, reply, startLoopbackHttp, type LoopbackHttp, type RecordedRequest } from '../support/loopback-http.ts';

const REGION = 'eu-west-3';
const credentials = async (): Promise<AwsCredentialIdentity> => ({ accessKeyId: 'AKIDCLIENTTEST', secretAccessKey: 'not-a-secret' });
/** A queue behind a VPC endpoint: a host other than the region's default SQS endpoint. */
const VPC_QUEUE = 'https://vpce-0a1b2c3d-e4f5.sqs.eu-west-3.vpce.amazonaws.com/123456789012/jobs';

/** A client of src/aws/clients.ts with one call of its service; only the request is looked at. */
interface Caller {
  send(signal?: AbortSignal): Promise<unknown>;
  pin(endpoint: string): void;
  destroy(): void;
}

const CLIENTS: Record<'sqs' | 's3' | 'secretsmanager' | 'sts', (endpoint: string | undefined, sockets?: number) => Caller> = {
  sqs: (endpoint, sockets) => {
    const client = sqsClient({ region: REGION, endpoint }, credentials, sockets);
    return { send: (signal) => client.send(new GetQueueAttributesCommand({ QueueUrl: VPC_QUEUE }), { abortSignal: signal }), pin: (e) => pinToLoopback(client, e), destroy: () => client.destroy() };
  },
  s3: (endpoint, sockets) => {
    const client = s3Client({ region: REGION, endpoint }, credentials, sockets);
    return { send: (signal) => client.send(new GetObjectCommand({ Bucket: 'staging', Key: 'in/1' }), { abortSignal: signal }), pin: (e) => pinToLoopback(client, e), destroy: () => client.destroy() };
  },
  secretsmanager: (endpoint) => {
    const client = secretsClient({ region: REGION, endpoint }, credentials);
    return { send: (signal) => client.send(new GetSecretValueCommand({ SecretId: 'worker' }), { abortSignal: signal }), pin: (e) => pinToLoopback(client, e), destroy: () => client.destroy() };
  },
  sts: (endpoint) => {
    const client = stsClient({ region: REGION, endpoint }, credentials);
    return { send: (signal) => client.send(new GetCallerIdentityCommand({}), { abortSignal: signal }), pin: (e) => pinToLoopback(client, e), destroy: () => client.destroy() };
  },
};
type ClientName = keyof typeof CLIENTS;
const NAMES = Object.keys(CLIENTS) as ClientName[];

/** Sends `name`'s call through its client, pinned to the server, and returns the request the server saw. */
async function requestOf(server: LoopbackHttp, name: ClientName, endpoint: string | undefined): Promise<RecordedRequest> {
  const client = CLIENTS[name](endpoint);
  client.pin(server.endpoint);
  const before = server.requests.length;
  // The answer is a bare 400: the call fails, and only what it sent matters here.
  await client.send().catch(() => undefined);
  client.destroy();
  const request = server.requests[before];
  if (!request) throw new Error(`${name}: no request reached the server`);
  return request;
}

let server: LoopbackHttp;
beforeEach(async () => {
  server = await startLoopbackHttp((_request, res) => reply(res, 400));
  // The SQS client warns on the console when it follows a queue URL to another host.
  vi.spyOn(console, 'warn').mockImplementation(() => undefined);
});
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await server.close();
});

describe('where the clients send their requests', () => {
  it.each(NAMES)('%s: to the endpoint given, signed for the region with the credentials given', async (name) => {
    // Act
    const request = await requestOf(server, name, server.endpoint);

    // Assess
    expect(request.headers.host).toBe(new URL(server.endpoint).host);
    expect(request.headers.authorization).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=AKIDCLIENTTEST/\\d{8}/${REGION}/${name}/aws4_request,`));
  });

  it.each([
    ['sqs', 'the host its queue URL names (a VPC endpoint)', new URL(VPC_QUEUE).host, '/'],
    ['s3', "the bucket's virtual host", `staging.s3.${REGION}.amazonaws.com`, '/in/1?x-id=GetObject'],
    ['secretsmanager', "the region's endpoint", `secretsmanager.${REGION}.amazonaws.com`, '/'],
    ['sts', "the region's endpoint", `sts.${REGION}.amazonaws.com`, '/'],
  ] as const)('%s, without an endpoint: to %s', async (name, _, host, path) => {
    // Act
    const request = await requestOf(server, name, undefined);

    // Assess
    expect({ host: request.headers.host, path: request.url }).toEqual({ host, path });
  });

  it("sqs, with an emulator's endpoint: to the emulator, whatever host the queue URL names", async () => {
    // Act
    const request = await requestOf(server, 'sqs', 'http://localhost:4566');

    // Assess
    expect(request.headers.host).toBe('localhost:4566');
  });

  it("s3, with an emulator's endpoint: the bucket in the path, not in the host name", async () => {
    // Act
    const request = await requestOf(server, 's3', 'http://localhost:4566');

    // Assess
    expect({ host: request.headers.host, path: request.url }).toEqual({ host: 'localhost:4566', path: '/staging/in/1?x-id=GetObject' });
  });
});

describe('the SQS client', () => {
  it("takes a received message's body without checking its MD5 (TLS and the job's signature cover it)", async () => {
    // Prepare
    server.answerWith((_request, res) =>
      reply(res, 200, { 'content-type': 'application/x-amz-json-1.0' }, JSON.stringify({ Messages: [{ MessageId: 'm-1', ReceiptHandle: 'r-1', MD5OfBody: '0'.repeat(32), Body: 'a job' }] })),
    );
    const sqs = sqsClient({ region: REGION, endpoint: server.endpoint }, credentials);

    // Act
    const received = await sqs.send(new ReceiveMessageCommand({ QueueUrl: `${server.endpoint}/123456789012/jobs` }));

    // Assess
    expect(received.Messages?.map((m) => m.Body)).toEqual(['a job']);
    sqs.destroy();
  });
});

describe('request timeouts', () => {
  // Only the SDK's timers are faked: the sockets are real, and the clock moves when the test says.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    server.answerWith(() => undefined);
  });

  it.each([
    ['sqs', 30_000],
    ['s3', 60_000],
    ['secretsmanager', 10_000],
    ['sts', 10_000],
  ] as const)('%s: a request that gets no answer is dropped after %i ms', async (name, timeoutMs) => {
    // Prepare
    const client = CLIENTS[name](server.endpoint);
    const stop = new AbortController();
    const sent = client.send(stop.signal).catch(() => undefined);
    const request = await server.received(1);

    // Act
    await vi.advanceTimersByTimeAsync(timeoutMs);

    // Assess: the client closed the connection (without a timeout it would wait for ever)
    await request.dropped;
    stop.abort();
    await sent;
    client.destroy();
  });

  it('sqs: a 20 s long poll is not cut short: an answer just before 30 s is taken', async () => {
    // Prepare
    let answer: (() => void) | undefined;
    server.answerWith((_request, res) => {
      answer = () => reply(res, 200, { 'content-type': 'application/x-amz-json-1.0' }, '{}');
    });
    const sqs = sqsClient({ region: REGION, endpoint: server.endpoint }, credentials);
    const receiving = sqs.send(new ReceiveMessageCommand({ QueueUrl: `${server.endpoint}/123456789012/jobs`, WaitTimeSeconds: 20 }));
    await server.received(1);

    // Act
    await vi.advanceTimersByTimeAsync(29_999);
    answer?.();

    // Assess
    expect((await receiving).Messages).toBeUndefined();
    expect(server.requests).toHaveLength(1);
    sqs.destroy();
  });
});

describe('socket pools', () => {
  it.each([
    ['sqs', 3],
    ['s3', 2],
    ['secretsmanager', 4],
    ['sts', 4],
  ] as const)('%s: twelve calls at once share %i connections', async (name, sockets) => {
    // Prepare
    const client = CLIENTS[name](server.endpoint, sockets);

    // Act
    await Promise.all(Array.from({ length: 12 }, () => client.send().catch(() => undefined)));

    // Assess
    expect(server.requests).toHaveLength(12);
    expect(server.connections).toBe(sockets);
    client.destroy();
  });

  it.each(NAMES)('%s: calls one after another keep one connection alive', async (name) => {
    // Prepare
    const client = CLIENTS[name](server.endpoint);

    // Act
    for (let i = 0; i < 3; i += 1) await client.send().catch(() => undefined);

    // Assess
    expect(server.requests).toHaveLength(3);
    expect(server.connections).toBe(1);
    client.destroy();
  });
});

describe('socket pools over HTTPS (the agent real AWS is reached through)', () => {
  const certificate = loopbackCertificate();
  let trusted: string[];
  let tlsServer: LoopbackHttp;
  beforeAll(() => {
    // The test's own certificate is trusted by this process for the tests below, then no longer.
    trusted = getCACertificates('default');
    setDefaultCACertificates([...trusted, certificate.cert]);
  });
  afterAll(() => {
    setDefaultCACertificates(trusted);
  });
  beforeEach(async () => {
    tlsServer = await startLoopbackHttp((_request, res) => reply(res, 400), { tls: certificate });
  });
  afterEach(async () => {
    await tlsServer.close();
  });

  it('twelve calls at once share the sockets given', async () => {
    // Prepare
    const client = CLIENTS.sqs(tlsServer.endpoint, 3);

    // Act
    await Promise.all(Array.from({ length: 12 }, () => client.send().catch(() => undefined)));

    // Assess
    expect(tlsServer.requests).toHaveLength(12);
    expect(tlsServer.connections).toBe(3);
    client.destroy();
  });

  it('calls one after another keep one connection alive', async () => {
    // Prepare
    const client = CLIENTS.s3(tlsServer.endpoint);

    // Act
    for (let i = 0; i < 3; i += 1) await client.send().catch(() => undefined);

    // Assess
    expect(tlsServer.requests).toHaveLength(3);
    expect(tlsServer.connections).toBe(1);
    client.destroy();
  });
});

describe('defaultCredentials', () => {
  // Only instance metadata can give credentials here: no keys, profiles, files or container endpoint.
  const NOTHING_ELSE = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_EC2_METADATA_DISABLED', 'AWS_EC2_METADATA_V1_DISABLED'];
  beforeEach(() => {
    for (const name of NOTHING_ELSE) vi.stubEnv(name, undefined);
    const none = join(tmpdir(), 'enrollment-worker-no-such-aws-config');
    vi.stubEnv('AWS_CONFIG_FILE', none);
    vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', none);
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('takes the instance role from IMDSv2', async () => {
    // Prepare
    const imds = await startImds();
    vi.stubEnv('AWS_EC2_METADATA_SERVICE_ENDPOINT', imds.endpoint);

    try {
      // Act
      const resolved = await defaultCredentials()();

      // Assess
      expect(resolved).toMatchObject({ accessKeyId: 'test', secretAccessKey: 'test' });
      expect(credentialSource(resolved, {})).toBe('EC2 instance metadata (IMDSv2, instance role)');
    } finally {
      await imds.stop();
    }
  });

  it('never takes credentials from a service that serves only IMDSv1', async () => {
    // Prepare
    const imds = await startImds({ v1Only: true });
    vi.stubEnv('AWS_EC2_METADATA_SERVICE_ENDPOINT', imds.endpoint);

    try {
      // Act
      const result = await defaultCredentials()().then(
        () => 'resolved',
        (e: unknown) => (e instanceof Error ? e.name : 'not an Error'),
      );

      // Assess: it asked (the token call), and was given nothing without a token
      expect(result).toBe('CredentialsProviderError');
      expect(imds.requests).toBeGreaterThan(0);
      expect(imds.servedWithoutToken).toBe(0);
    } finally {
      await imds.stop();
    }
  });
});

describe('credentialSource', () => {
  const marked = (...marks: string[]): AwsCredentialIdentity =>
    Object.assign({ accessKeyId: 'a', secretAccessKey: 's' }, { $source: Object.fromEntries(marks.map((m) => [m, 'x'])) });

  it.each([
    ['CREDENTIALS_IMDS', 'EC2 instance metadata (IMDSv2, instance role)'],
    ['CREDENTIALS_HTTP', 'container credentials endpoint (ECS task role)'],
    ['CREDENTIALS_ENV_VARS', 'environment variables'],
    ['CREDENTIALS_PROFILE', 'shared config/credentials file profile'],
  ])('names the provider the SDK marked: %s', (mark, description) => {
    expect(credentialSource(marked(mark), {})).toBe(description);
  });

  it('names the first provider of its list when several marked the credentials', () => {
    expect(credentialSource(marked('CREDENTIALS_PROFILE', 'CREDENTIALS_STS_ASSUME_ROLE_WEB_ID'), {})).toBe('web identity token');
  });

  it.each([
    ['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', '/v2/credentials/x', 'container credentials endpoint (ECS task role)'],
    ['AWS_CONTAINER_CREDENTIALS_FULL_URI', 'http://169.254.170.23/v1/credentials', 'container credentials endpoint (ECS task role)'],
  ])('reads unmarked credentials as the container endpoint when %s is set', (name, value, description) => {
    expect(credentialSource({ accessKeyId: 'a', secretAccessKey: 's' }, { [name]: value })).toBe(description);
    expect(credentialSource(marked(), { [name]: value })).toBe(description);
  });

  it('reads unmarked credentials as instance metadata otherwise', () => {
    expect(credentialSource({ accessKeyId: 'a', secretAccessKey: 's' }, {})).toBe('EC2 instance metadata (IMDSv2, instance role)');
  });
});

describe('whoAmI', () => {
  const identityXml = (result: string) =>
    `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>${result}</GetCallerIdentityResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`;

  it('resolves the credentials and reports whose they are, as STS says', async () => {
    // Prepare
    server.answerWith((_request, res) =>
      reply(res, 200, { 'content-type': 'text/xml' }, identityXml('<Arn>arn:aws:sts::123456789012:assumed-role/worker/i-1</Arn><UserId>AROA:i-1</UserId><Account>123456789012</Account>')),
    );
    const sts = stsClient({ region: REGION, endpoint: server.endpoint }, credentials);

    // Act
    const identity = await whoAmI(credentials, sts);

    // Assess
    expect(identity).toEqual({ arn: 'arn:aws:sts::123456789012:assumed-role/worker/i-1', account: '123456789012', credentialSource: 'EC2 instance metadata (IMDSv2, instance role)' });
    sts.destroy();
  });

  it("says 'unknown' for what STS leaves out", async () => {
    // Prepare
    server.answerWith((_request, res) => reply(res, 200, { 'content-type': 'text/xml' }, identityXml('<UserId>AROA:i-1</UserId>')));
    const sts = stsClient({ region: REGION, endpoint: server.endpoint }, credentials);

    // Act
    const identity = await whoAmI(credentials, sts);

    // Assess
    expect(identity).toMatchObject({ arn: 'unknown', account: 'unknown' });
    sts.destroy();
  });
});
