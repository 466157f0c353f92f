// What tracing adds to a job when it is off (the default), in one process: the per-message work the
// daemon does whatever the setting — read the producer's context, give the job its trace, settle it
// under it, build the outcome's attributes — for a message without a trace and one with a
// traceparent, against the same loop without that work. CPU time per job, median over rounds.
//
//   node test/bench/tracing-off.ts [--rounds 9] [--jobs 200000]
import { parseArgs } from 'node:util';
import type { Message } from '@aws-sdk/client-sqs';
import { parseConfig } from '../../src/config.ts';
import { traceAttributes } from '../../src/job/trace-context.ts';
import { createLogger } from '../../src/log.ts';
import { createTracing } from '../../src/worker/tracing.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '9' }, jobs: { type: 'string', default: '200000' } } });
const ROUNDS = Number(values.rounds);
const JOBS = Number(values.jobs);
const QUEUE = 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs';
const config = parseConfig({ SQS_QUEUE_URL: QUEUE, S3_BUCKET: 'refs', AWS_REGION: 'us-east-1', ALLOW_UNSIGNED_JOBS: 'true' });
const log = createLogger('silent');
const tracing = await createTracing(config.tracing, QUEUE, log);

const message = (attributes: Message['MessageAttributes']): Message => ({
  MessageId: 'm',
  Body: '{}',
  Attributes: { ApproximateReceiveCount: '1', SentTimestamp: '1' },
  ...(attributes ? { MessageAttributes: attributes } : {}),
});
const plain = message(undefined);
const traced = message({ traceparent: { DataType: 'String', StringValue: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } });

/** The daemon's per-message tracing work (src/worker/daemon.ts), tracing off. */
async function withTracing(m: Message, traces: WeakMap<Message, unknown>): Promise<number> {
  const jobTrace = tracing.forMessage(m);
  traces.set(m, jobTrace);
  jobTrace.phase('download');
  const decided = await jobTrace.run(async () => 1);
  traces.delete(m);
  jobTrace.phase('outcome');
  const attributes = traceAttributes(jobTrace.outgoing);
  const fields = Object.keys(jobTrace.logFields).length > 0 ? log.child(jobTrace.logFields) : log;
  await jobTrace.run(async () => decided + Object.keys(attributes).length).finally(() => jobTrace.end({ verdict: 'succeeded' }));
  return fields === log ? decided : decided + 1;
}

/** The same loop without it. */
async function without(): Promise<number> {
  const decided = await (async () => 1)();
  return (async () => decided)();
}

const cpuMicros = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

async function round(variant: () => Promise<number>): Promise<number> {
  const start = cpuMicros();
  for (let i = 0; i < JOBS; i += 1) await variant();
  return (cpuMicros() - start) / JOBS;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const variants: [string, () => Promise<number>][] = [
  ['no tracing work', without],
  ['tracing off, message without a trace', () => withTracing(plain, new WeakMap())],
  ['tracing off, message with a traceparent', () => withTracing(traced, new WeakMap())],
];
const results = new Map<string, number[]>(variants.map(([name]) => [name, []]));
for (let r = 0; r < ROUNDS; r += 1) for (const [name, variant] of variants) results.get(name)?.push(await round(variant));
const base = median(results.get('no tracing work') ?? []);
for (const [name, xs] of results) {
  const m = median(xs);
  process.stdout.write(`${name}: ${m.toFixed(3)} µs CPU/job${name === 'no tracing work' ? '' : ` (+${(m - base).toFixed(3)} µs)`}\n`);
}
