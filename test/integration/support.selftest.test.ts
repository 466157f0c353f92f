// Proves the integration-test support code against the real emulator before any worker test leans
// on it: emulator selection, the stack, the fault proxy (SQS and S3) and IMDS.
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { IMDS_ROLE, startImds } from '../support/imds.ts';
import { createStack, drainQueue, listKeys, testClients, uniqueName, type Stack } from '../support/resources.ts';
import { freePort, listenOnLoopback, sleep, until, within } from '../support/wait.ts';

const HOOK_TIMEOUT_MS = 60_000;

// The run's one emulator, started by the global setup through the selection under test.
const emulator = inject('emulator');
let stack: Stack;
let proxy: FaultProxy;
// Clients that go through the proxy, with SDK retries off so one injected fault is one failure.
let viaProxy: ReturnType<typeof testClients>;

beforeAll(async () => {
  stack = await createStack(emulator.endpoint, uniqueName('selftest'));
  proxy = await startFaultProxy(emulator.endpoint);
  viaProxy = testClients(proxy.url, { maxAttempts: 1 });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  viaProxy?.sqs.destroy();
  viaProxy?.s3.destroy();
  stack?.sqs.destroy();
  stack?.s3.destroy();
  await proxy?.close();
}, HOOK_TIMEOUT_MS);

describe('emulator and stack', () => {
  it('announces what it started', () => {
    expect(emulator.description).toContain(emulator.endpoint);
    expect(emulator.endpoint).toMatch(/^http:\/\//);
  });

  it('creates the queues and buckets, with the jobs queue redriven to the DLQ', async () => {
    expect(stack.deadLetterQueueUrl).toBeDefined();
    expect(stack.resultQueueUrl).toBeDefined();
    expect(stack.stagingBucket).toBe(stack.bucket.replace(/-refs$/, '-staging'));
    const { Attributes } = await stack.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: stack.jobsQueueUrl, AttributeNames: ['RedrivePolicy'] }),
    );
    const policy: unknown = JSON.parse(Attributes?.RedrivePolicy ?? '{}');
    expect(policy).toMatchObject({ maxReceiveCount: 5, deadLetterTargetArn: expect.stringMatching(/-dlq$/) });
    expect(await listKeys(stack.s3, stack.bucket)).toEqual([]);
  });

  it('sends a message and drains it, attributes included', async () => {
    await stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: stack.jobsQueueUrl,
        MessageBody: '{"hello":"world"}',
        MessageAttributes: { contract: { DataType: 'String', StringValue: 'v1' } },
      }),
    );
    const messages = await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 1, timeoutMs: 10_000 });
    expect(messages).toHaveLength(1);
    expect(messages[0]?.Body).toBe('{"hello":"world"}');
    expect(messages[0]?.MessageAttributes?.contract?.StringValue).toBe('v1');
    expect(messages[0]?.Attributes?.ApproximateReceiveCount).toBe('1');
    expect(await drainQueue(stack.sqs, stack.jobsQueueUrl, { timeoutMs: 3_000 })).toEqual([]);
  });
});

describe('fault proxy', () => {
  it('fails an SQS call with an injected 503, then passes once the rule is cleared', async () => {
    proxy.setRule((req) => (req.target === 'AmazonSQS.SendMessage' ? { kind: 'status', status: 503 } : undefined));
    const hitsBefore = proxy.hits;
    const send = new SendMessageCommand({ QueueUrl: stack.jobsQueueUrl, MessageBody: 'through the proxy' });
    await expect(viaProxy.sqs.send(send)).rejects.toMatchObject({
      name: 'ServiceUnavailable',
      $metadata: { httpStatusCode: 503 },
    });
    expect(proxy.hits).toBe(hitsBefore + 1);

    proxy.setRule(undefined);
    await expect(viaProxy.sqs.send(send)).resolves.toMatchObject({ MessageId: expect.any(String) });
    const messages = await drainQueue(viaProxy.sqs, stack.jobsQueueUrl, { expected: 1, timeoutMs: 10_000 });
    expect(messages.map((m) => m.Body)).toEqual(['through the proxy']);
    expect(proxy.hits).toBe(hitsBefore + 1);
  });

  it('delays, and resets connections, on request', async () => {
    const send = new SendMessageCommand({ QueueUrl: stack.jobsQueueUrl, MessageBody: 'slow' });
    proxy.setRule((req) => (req.target === 'AmazonSQS.SendMessage' ? { kind: 'delay', ms: 300 } : undefined));
    const started = Date.now();
    await viaProxy.sqs.send(send);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);

    proxy.setRule((req) => (req.target === 'AmazonSQS.SendMessage' ? { kind: 'reset' } : undefined));
    await expect(viaProxy.sqs.send(send)).rejects.toThrow();
    proxy.setRule(undefined);
    expect(await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 1, timeoutMs: 10_000 })).toHaveLength(1);
  });

  it('holds a request until the test releases it, then passes it on', async () => {
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    proxy.setRule((req) => (req.target === 'AmazonSQS.SendMessage' ? { kind: 'hold', until: released } : undefined));
    let answered = false;
    const sending = viaProxy.sqs.send(new SendMessageCommand({ QueueUrl: stack.jobsQueueUrl, MessageBody: 'held' })).finally(() => (answered = true));
    await until('the send to reach the proxy', () => proxy.open().some((r) => r.target === 'AmazonSQS.SendMessage'), 10_000);
    // Held: nothing reaches the queue while the request stays open.
    const whileHeld = await drainQueue(stack.sqs, stack.jobsQueueUrl, { timeoutMs: 2_000 });
    const answeredWhileHeld = answered;

    release();
    await sending;
    proxy.setRule(undefined);

    expect(whileHeld).toEqual([]);
    expect(answeredWhileHeld).toBe(false);
    expect((await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 1, timeoutMs: 10_000 })).map((m) => m.Body)).toEqual(['held']);
  });

  it('passes S3 PutObject / GetObject through unchanged, large bodies included', async () => {
    // 3 MiB: over the S3 client's 2 MiB threshold for `Expect: 100-continue`, which must pass too.
    const body = Buffer.alloc(3 * 1024 * 1024, 7);
    body.write('enrollment-worker', 0);
    await viaProxy.s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: 'users/u1/ref_0123456789ab.jpg', Body: body }));
    const got = await viaProxy.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: 'users/u1/ref_0123456789ab.jpg' }));
    const bytes = Buffer.from(await (got.Body?.transformToByteArray() ?? Promise.resolve(new Uint8Array())));
    expect(bytes.equals(body)).toBe(true);
    expect(await listKeys(viaProxy.s3, stack.bucket, 'users/u1/')).toEqual(['users/u1/ref_0123456789ab.jpg']);
  });

  it('fails an S3 call with an injected XML 503', async () => {
    proxy.setRule((req) => (req.target === undefined && req.method === 'GET' ? { kind: 'status', status: 503 } : undefined));
    try {
      await expect(viaProxy.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: 'missing' }))).rejects.toMatchObject({
        name: 'ServiceUnavailable',
        $metadata: { httpStatusCode: 503 },
      });
    } finally {
      proxy.setRule(undefined);
    }
  });
});

describe('IMDS', () => {
  async function fetchCredentials(endpoint: string): Promise<unknown> {
    const tokenResponse = await fetch(`${endpoint}/latest/api/token`, {
      method: 'PUT',
      headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' },
    });
    expect(tokenResponse.status).toBe(200);
    const headers = { 'x-aws-ec2-metadata-token': await tokenResponse.text() };
    const role = (await (await fetch(`${endpoint}/latest/meta-data/iam/security-credentials/`, { headers })).text()).trim();
    expect(role).not.toBe('');
    return (await fetch(`${endpoint}/latest/meta-data/iam/security-credentials/${role}`, { headers })).json();
  }

  it("gives credentials at the emulator's IMDS endpoint", async () => {
    const credentials = await fetchCredentials(emulator.imdsEndpoint);
    expect(credentials).toMatchObject({
      AccessKeyId: expect.any(String),
      SecretAccessKey: expect.any(String),
      Token: expect.any(String),
      Expiration: expect.any(String),
    });
  });

  it('serves IMDSv2 only, and counts requests', async () => {
    const imds = await startImds();
    try {
      const noTtl = await fetch(`${imds.endpoint}/latest/api/token`, { method: 'PUT' });
      expect(noTtl.status).toBe(400);
      const noToken = await fetch(`${imds.endpoint}/latest/meta-data/iam/security-credentials/`);
      expect(noToken.status).toBe(401);
      const credentials = await fetchCredentials(imds.endpoint);
      expect(credentials).toMatchObject({ Code: 'Success', Type: 'AWS-HMAC', AccessKeyId: 'test', Token: 'test' });
      const expiration = typeof credentials === 'object' && credentials !== null && 'Expiration' in credentials ? credentials.Expiration : undefined;
      expect(Date.parse(String(expiration)) - Date.now()).toBeGreaterThan(5 * 60 * 60 * 1000);
      expect(imds.requests).toBe(5);
      expect(IMDS_ROLE).not.toBe('');
    } finally {
      await imds.stop();
    }
  });
});

describe('waiting (test/support/wait.ts)', () => {
  it('until returns what the probe gave once it gave something, and names what it waited for when it gives up', async () => {
    let calls = 0;
    const value = await until('the third call', () => (++calls >= 3 ? `call ${calls}` : undefined), 10_000, { everyMs: 1 });
    const gaveUp = await until('a condition that never holds', () => false, 20, { detail: () => 'state: never' }).catch((e: unknown) => e);
    const broken = await until('a probe that throws', () => {
      throw new Error('broken probe');
    }, 10_000).catch((e: unknown) => e);

    expect(value).toBe('call 3');
    expect(String(gaveUp)).toMatch(/timed out after 20 ms waiting for a condition that never holds; state: never/);
    expect(String(broken)).toMatch(/broken probe/);
  });

  it('within gives the promise\'s value, or the fallback when it is late', async () => {
    expect(await within(Promise.resolve('on time'), 10_000, 'late')).toBe('on time');
    expect(await within(sleep(10_000), 10, 'late')).toBe('late');
  });

  it('freePort gives a port a server can bind, and listenOnLoopback a URL that answers', async () => {
    const port = await freePort();
    const bound = createServer();
    await new Promise<void>((resolve, reject) => bound.once('error', reject).listen(port, '127.0.0.1', resolve));
    await new Promise((resolve) => bound.close(resolve));
    const server = createServer((_req, res) => res.end('here'));
    const url = await listenOnLoopback(server);
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(await (await fetch(url)).text()).toBe('here');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
