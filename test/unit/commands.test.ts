// The commands (src/commands.ts `main`): arguments in, an exit code and printed lines out — usage,
// schema, and `check` and `enqueue` with the default credential chain against the in-process
// endpoint (test/support/fast-aws.ts). `run` ends the process and is the integration suites' (the
// built worker, started and stopped from outside).
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/commands.ts';
import { EXIT_CONFIG } from '../../src/config.ts';
import { startFastAws, type FastAws } from '../support/fast-aws.ts';
import { jpegImage } from '../support/images.ts';
import { createStack, drainQueue, uniqueName, type Stack } from '../support/resources.ts';
import { stackEnv } from '../support/worker-process.ts';

let aws: FastAws;
let stack: Stack;
beforeAll(async () => {
  aws = await startFastAws({ delayMs: 0 });
  stack = await createStack(aws.endpoint, uniqueName('commands'));
  // The default credential chain reads these first: the endpoint's dummy values, never real ones.
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await aws.stop();
});

/** What a command printed, by stream. */
let printed: { out: string[]; err: string[] };
beforeEach(() => {
  printed = { out: [], err: [] };
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => printed.out.push(String(chunk)) > 0);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => printed.err.push(String(chunk)) > 0);
});
afterEach(() => {
  vi.restoreAllMocks();
});

const out = () => printed.out.join('');
const err = () => printed.err.join('');

describe('main', () => {
  it('prints the usage: on stdout for help (exit 0), and exit 64 without a command', async () => {
    const help = await main(['help'], {});
    const helpText = out();
    const none = await main([], {});

    expect([help, none]).toEqual([0, 64]);
    expect(helpText).toMatch(/^usage: enrollment-worker <command>\n/);
    expect(out()).toBe(helpText + helpText);
    for (const flag of ['--help', '-h']) expect(await main([flag], {})).toBe(0);
  });

  it('refuses an unknown command on stderr with the usage (exit 64)', async () => {
    expect(await main(['frobnicate'], {})).toBe(64);
    expect(err()).toMatch(/^unknown command: frobnicate\nusage: enrollment-worker/);
    expect(out()).toBe('');
  });

  it('prints the JSON Schema of the job message', async () => {
    expect(await main(['schema'], {})).toBe(0);
    expect(JSON.parse(out())).toMatchObject({ type: 'object', required: expect.arrayContaining(['version', 'jobId', 'userId', 'images']) });
    expect(out()).toMatch(/^\{\n {2}"/);
  });

  it('check: one line per check, exit 0 when all pass; --json gives the same as an object', async () => {
    const env = stackEnv(stack, aws.imdsEndpoint);
    const plain = await main(['check'], env);
    const lines = out().trimEnd().split('\n');
    printed.out.length = 0;
    const json = await main(['check', '--json'], env);
    const report = JSON.parse(out()) as { ok: boolean; checks: { name: string; ok: boolean }[] };

    expect([plain, json]).toEqual([0, 0]);
    expect(lines.every((l) => l.startsWith('✓ '))).toBe(true);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => `✓ ${c.name}`)).toEqual(lines.map((l) => l.slice(0, l.indexOf(':'))));
  });

  it('check: exit 1 when a check fails', async () => {
    const code = await main(['check'], stackEnv({ ...stack, bucket: 'no-such-refs' }, aws.imdsEndpoint));

    expect(code).toBe(1);
    expect(out()).toMatch(/^✗ reference bucket: .*\n {4}fix: /m);
  });

  it('enqueue with a bad environment is a configuration error: exit 78, naming the variable on stderr', async () => {
    expect(await main(['enqueue', '--user', 'alice', 'nothing.jpg'], { AWS_REGION: 'us-east-1' })).toBe(EXIT_CONFIG);
    expect(err()).toMatch(/^enrollment-worker: .*SQS_QUEUE_URL/);
  });

  it('enqueue: usage without a user or a file (exit 64); with --no-wait, the job sent and printed (exit 0)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'enqueue-'));
    const file = join(dir, 'face.jpg');
    writeFileSync(file, await jpegImage({ width: 64, height: 64 }));
    const env = stackEnv(stack, aws.imdsEndpoint);

    const usage = [await main(['enqueue', file], env), await main(['enqueue', '--user', 'alice'], env)];
    const sent = await main(['enqueue', '--user', 'alice', '--job-id', 'job-cli-1', '--message-group-id', 'tenant-1', '--no-wait', file], env);
    const printedJob = JSON.parse(out().slice(out().lastIndexOf('{"enqueued"'))) as { enqueued: { jobId: string } };
    const [message] = await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 1, timeoutMs: 5_000 });

    expect(usage).toEqual([64, 64]);
    expect(err()).toMatch(/^usage: enrollment-worker/);
    expect(sent).toBe(0);
    expect(printedJob.enqueued.jobId).toBe('job-cli-1');
    expect(JSON.parse(message?.Body ?? '{}')).toMatchObject({ jobId: 'job-cli-1', userId: 'alice' });
  });

  it('enqueue: waits for the outcome and says so when none comes in time (exit 1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'enqueue-'));
    const file = join(dir, 'face.jpg');
    writeFileSync(file, await jpegImage({ width: 64, height: 64 }));

    const code = await main(['enqueue', '--user', 'bob', '--job-id', 'job-cli-2', '--timeout', '1', file], stackEnv(stack, aws.imdsEndpoint));
    await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 1, timeoutMs: 5_000 });

    expect(code).toBe(1);
    expect(err()).toBe('no outcome for job job-cli-2 within 1 s (is the worker running?)\n');
  });

  it('enqueue: prints the outcome that comes, exit 0 when it succeeded and 1 when it failed; the traceparent goes with the job', { timeout: 20_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'enqueue-'));
    const file = join(dir, 'face.jpg');
    writeFileSync(file, await jpegImage({ width: 64, height: 64 }));
    const env = stackEnv(stack, aws.imdsEndpoint);
    const outcome = (jobId: string, status: string) =>
      stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.resultQueueUrl, MessageBody: JSON.stringify({ version: 1, jobId, status }), MessageAttributes: { jobId: { DataType: 'String', StringValue: jobId } } }));
    await outcome('job-cli-3', 'succeeded');
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

    const succeeded = await main(['enqueue', '--user', 'carol', '--job-id', 'job-cli-3', '--traceparent', traceparent, '--timeout', '5', file], env);
    const printedOutcome = out().slice(out().indexOf('\n') + 1);
    await outcome('job-cli-4', 'failed'); // after the first wait, which would have hidden it for its visibility timeout
    const failed = await main(['enqueue', '--user', 'carol', '--job-id', 'job-cli-4', '--timeout', '5', file], env);
    const sent = await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 2, timeoutMs: 5_000 });

    expect([succeeded, failed]).toEqual([0, 1]);
    expect(JSON.parse(printedOutcome)).toEqual({ version: 1, jobId: 'job-cli-3', status: 'succeeded' });
    expect(printedOutcome).toMatch(/^\{\n {2}"version": 1,/);
    expect(sent.find((m) => m.Body?.includes('job-cli-3'))?.MessageAttributes?.traceparent?.StringValue).toBe(traceparent);
    expect(sent.find((m) => m.Body?.includes('job-cli-4'))?.MessageAttributes?.traceparent).toBeUndefined();
  });

  it('enqueue: without RESULT_QUEUE_URL, exit 0 once the job is sent (nothing to wait for)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'enqueue-'));
    const file = join(dir, 'face.jpg');
    writeFileSync(file, await jpegImage({ width: 64, height: 64 }));

    const code = await main(['enqueue', '--user', 'dave', '--timeout', '600', file], stackEnv({ ...stack, resultQueueUrl: undefined }, aws.imdsEndpoint));
    await drainQueue(stack.sqs, stack.jobsQueueUrl, { expected: 1, timeoutMs: 5_000 });

    expect(code).toBe(0);
  });

  it('any other failure is exit 1 with its message on stderr (a file that cannot be read)', async () => {
    const code = await main(['enqueue', '--user', 'erin', '/nonexistent/face.jpg'], stackEnv(stack, aws.imdsEndpoint));

    expect(code).toBe(1);
    expect(err()).toMatch(/^enrollment-worker: ENOENT: no such file or directory/);
  });
});
