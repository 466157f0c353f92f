// The start-up checks that call AWS (src/worker/startup.ts), with the worker's own clients: where
// results go (inspectOutputs) and the caller's identity against the in-process endpoint
// (test/support/fast-aws.ts); the secret and refused credentials against a loopback server answered
// by hand (test/support/loopback-http.ts), as Secrets Manager and STS answer.
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Client, secretsClient, sqsClient, stsClient } from '../../src/aws/clients.ts';
import { ConfigError } from '../../src/config.ts';
import { fetchSecretText, identityOf, inspectOutputs, secretFetcher, StartupError } from '../../src/worker/startup.ts';
import { startFastAws, type FastAws } from '../support/fast-aws.ts';
import { reply, startLoopbackHttp, type LoopbackHttp } from '../support/loopback-http.ts';
import { memoryLogger, rejectionOf } from './helpers.ts';

const credentials = async () => ({ accessKeyId: 'test', secretAccessKey: 'test' });
const soon = () => Date.now() + 5_000;

describe('inspectOutputs', () => {
  let aws: FastAws;
  let clients: { sqs: SQSClient; s3: S3Client };
  let resultQueueUrl: string;
  beforeAll(async () => {
    aws = await startFastAws({ delayMs: 0 });
    const target = { region: 'us-east-1', endpoint: aws.endpoint };
    clients = { sqs: sqsClient(target, credentials), s3: s3Client(target, credentials) };
    resultQueueUrl = (await clients.sqs.send(new CreateQueueCommand({ QueueName: 'results' }))).QueueUrl ?? '';
    await clients.s3.send(new CreateBucketCommand({ Bucket: 'references' }));
  });
  afterAll(async () => {
    clients.sqs.destroy();
    clients.s3.destroy();
    await aws.stop();
  });

  const missingQueue = () => `${aws.endpoint}/123456789012/no-such-results`;

  it('passes a result queue that answers and a bucket that takes writes, saying nothing', async () => {
    const { log, lines } = memoryLogger();
    await inspectOutputs(clients, { bucket: 'references', resultQueueUrl }, soon(), log);
    await inspectOutputs(clients, { bucket: 'references', resultQueueUrl: undefined }, soon(), log);
    expect(lines()).toEqual([]);
  });

  it('refuses a result queue that does not exist, naming RESULT_QUEUE_URL', async () => {
    const error = await rejectionOf(() => inspectOutputs(clients, { bucket: 'references', resultQueueUrl: missingQueue() }, soon(), memoryLogger().log));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([expect.stringMatching(new RegExp(`^RESULT_QUEUE_URL: the result queue ${missingQueue()} cannot be used: \\S+`))]);
  });

  it('refuses a bucket that does not exist, naming S3_BUCKET and the error', async () => {
    const error = await rejectionOf(() => inspectOutputs(clients, { bucket: 'no-such-bucket', resultQueueUrl }, soon(), memoryLogger().log));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^S3_BUCKET: references cannot be written to s3:\/\/no-such-bucket\/users\/: NoSuchBucket: \S/)]);
  });

  it('probes only what `only` names (a reload probes what it changes)', async () => {
    const { log } = memoryLogger();
    await inspectOutputs(clients, { bucket: 'no-such-bucket', resultQueueUrl }, soon(), log, { bucket: false, resultQueue: true });
    await inspectOutputs(clients, { bucket: 'references', resultQueueUrl: missingQueue() }, soon(), log, { bucket: true, resultQueue: false });
    await expect(inspectOutputs(clients, { bucket: 'no-such-bucket', resultQueueUrl }, soon(), log, { bucket: true, resultQueue: false })).rejects.toBeInstanceOf(ConfigError);
    await expect(inspectOutputs(clients, { bucket: 'references', resultQueueUrl: missingQueue() }, soon(), log, { bucket: false, resultQueue: true })).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('identityOf and the secret, against hand-made answers', () => {
  let server: LoopbackHttp;
  let aws: FastAws;
  beforeAll(async () => {
    server = await startLoopbackHttp((_req, res) => reply(res, 500));
    aws = await startFastAws({ delayMs: 0 });
  });
  afterAll(async () => {
    await server.close();
    await aws.stop();
  });

  const secrets = () => secretsClient({ region: 'us-east-1', endpoint: server.endpoint }, credentials);
  const json = (status: number, body: unknown) => server.answerWith((_req, res) => reply(res, status, { 'content-type': 'application/x-amz-json-1.1' }, JSON.stringify(body)));

  it('asks STS who the caller is', async () => {
    const sts = stsClient({ region: 'us-east-1', endpoint: aws.endpoint }, credentials);
    const identity = await identityOf(credentials, sts, soon(), memoryLogger().log).finally(() => sts.destroy());
    expect(identity.arn).toMatch(/^arn:aws:/);
  });

  it.each(['InvalidClientTokenId', 'SignatureDoesNotMatch', 'UnrecognizedClientException'])('gives up at once, with a StartupError naming the code, on credentials STS refuses (%s)', async (code) => {
    server.answerWith((_req, res) =>
      reply(res, 403, { 'content-type': 'text/xml' }, `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`),
    );
    const sts = stsClient({ region: 'us-east-1', endpoint: server.endpoint }, credentials);
    const before = server.requests.length;
    const error = await rejectionOf(() => identityOf(credentials, sts, soon(), memoryLogger().log)).finally(() => sts.destroy());
    expect(error).toBeInstanceOf(StartupError);
    expect((error as Error).message).toBe(`the credentials from the default chain were refused: ${code}`);
    expect(((error as Error).cause as Error).name).toBe(code);
    expect(server.requests.length - before).toBe(1);
  });

  it('names what did not answer before the start-up timeout: the credentials, the result queue, the reference bucket', async () => {
    // Every call is answered 500; the first retry would already end past the deadline.
    server.answerWith((_req, res) => reply(res, 500, { 'content-type': 'text/xml' }, '<Error><Code>InternalError</Code><Message>down</Message></Error>'));
    const target = { region: 'us-east-1', endpoint: server.endpoint };
    const clients = { sts: stsClient(target, credentials), sqs: sqsClient(target, credentials), s3: s3Client(target, credentials) };
    const { log } = memoryLogger();
    const shortly = () => Date.now() + 300;
    try {
      const failures = [
        await rejectionOf(() => identityOf(credentials, clients.sts, shortly(), log)),
        await rejectionOf(() => inspectOutputs(clients, { bucket: 'references', resultQueueUrl: `${server.endpoint}/123456789012/results` }, shortly(), log)),
        await rejectionOf(() => inspectOutputs(clients, { bucket: 'references', resultQueueUrl: undefined }, shortly(), log)),
      ];
      expect(failures.map((e) => [e instanceof StartupError, (e as Error).message.split(' did not succeed before the start-up timeout')[0]])).toEqual([
        [true, 'AWS credentials'],
        [true, 'the result queue'],
        [true, 'the reference bucket'],
      ]);
    } finally {
      for (const client of Object.values(clients)) client.destroy();
    }
  });

  it("reads a secret's string, through the fetcher named after the variable in use", async () => {
    json(200, { Name: 'worker', SecretString: '{"CONCURRENCY":"4"}' });
    const client = secrets();
    const text = await secretFetcher(client, { SECRETS_NAME: 'worker' })('worker').finally(() => client.destroy());
    expect(text).toBe('{"CONCURRENCY":"4"}');
    expect(JSON.parse(server.requests.at(-1)?.body.toString() ?? '{}')).toEqual({ SecretId: 'worker' });
  });

  it('refuses a binary secret, and a secret that cannot be read, as configuration errors naming the variable', async () => {
    const client = secrets();
    json(200, { Name: 'worker', SecretBinary: Buffer.from('x').toString('base64') });
    const binary = await rejectionOf(() => fetchSecretText(client, 'worker', 'SECRETS_MANAGER_SECRET_NAME'));
    json(400, { __type: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." });
    const missing = await rejectionOf(() => secretFetcher(client, { SECRETS_NAME: 'worker' })('worker'));
    client.destroy();

    expect(binary).toBeInstanceOf(ConfigError);
    expect((binary as ConfigError).problems).toEqual(['SECRETS_MANAGER_SECRET_NAME secret "worker" has no string value (binary secrets are not supported)']);
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as ConfigError).problems).toEqual([`SECRETS_NAME secret "worker" cannot be read: ResourceNotFoundException: Secrets Manager can't find the specified secret.`]);
  });

  it('passes any other failure on as it came (start-up retries what is transient)', async () => {
    json(400, { __type: 'ThrottlingException', message: 'Rate exceeded' });
    const client = secrets();
    const error = await rejectionOf(() => fetchSecretText(client, 'worker', 'SECRETS_MANAGER_SECRET_NAME')).finally(() => client.destroy());
    expect(error).not.toBeInstanceOf(ConfigError);
    expect((error as Error).name).toBe('ThrottlingException');
  });
});
