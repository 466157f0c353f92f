// SIGTERM under heavy load: the worker stops receiving, lets the jobs in flight finish within
// DRAIN_TIMEOUT_SECONDS, exits 0; the next start processes the rest; nothing is lost or doubled.
// Writes to the reference bucket are slowed (the fault proxy holds each PutObject a second, as a
// busy S3 might), so every slot is mid-job when the signal comes and the drain has work to wait for.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { createStack, uniqueName } from '../support/resources.ts';
import { stackEnv, startWorker, workerReaper, type LogLine, type WorkerProcess } from '../support/worker-process.ts';
import { account, createLedger, FAULT_ENV, jobLines, mixed, report, saveLogs, sendCases, settle, untilFinished } from './ledger.ts';

const emulator = inject('emulator');
const workers = workerReaper();
const started: WorkerProcess[] = [];
let proxy: FaultProxy;
beforeAll(async () => {
  proxy = await startFaultProxy(emulator.endpoint);
});
afterAll(async () => {
  saveLogs('sigterm', started);
  await workers.killAll();
  await proxy.close();
});

// Ample for eight one-second writes on a busy machine: the test is about what the drain does, not how fast.
const DRAIN_TIMEOUT_SECONDS = 20;
const PUT_DELAY_MS = 1_000;

it('SIGTERM during heavy load: drains within the timeout, exits 0, the next start does the rest', async () => {
  const name = uniqueName('sigterm');
  const stack = await createStack(emulator.endpoint, name);
  const ledger = await createLedger(stack, name, { good: 64, bad: 16 });
  proxy.setRule((req) => (req.method === 'PUT' && req.path.startsWith(`/${stack.bucket}/`) ? { kind: 'delay', ms: PUT_DELAY_MS } : undefined));
  const env = stackEnv(stack, emulator.imdsEndpoint, {
    ...FAULT_ENV,
    AWS_ENDPOINT_URL: proxy.url,
    CONCURRENCY: '8',
    DRAIN_TIMEOUT_SECONDS: String(DRAIN_TIMEOUT_SECONDS),
    VISIBILITY_TIMEOUT_SECONDS: '10',
    HEARTBEAT_INTERVAL_SECONDS: '3',
  });
  const total = ledger.cases.length;

  await sendCases(ledger, mixed(ledger));
  const first = workers.track(await startWorker(env));
  started.push(first);
  const done = () => jobLines([first]).filter((l) => l.outcome !== 'retry').length;
  await untilFinished([first], 15);

  const doneAtSignal = done();
  const signalled = Date.now();
  const exit = await first.stop('SIGTERM', 60_000);
  const stopSeconds = (Date.now() - signalled) / 1000;
  const doneByFirst = done();
  const stopping = first.logs.findIndex((l) => String(l.msg).startsWith('stopping:'));
  const stopped: LogLine | undefined = first.logs.find((l) => l.msg === 'stopped');

  const second = workers.track(await startWorker(env));
  started.push(second);
  await settle(ledger);
  expect(await second.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  const { problems, notes, figures } = await account(ledger, { workers: [first, second], atLeastOnceWindow: false, createdExactly: true });

  report('sigterm', {
    jobs: total,
    concurrency: 8,
    drainTimeoutSeconds: DRAIN_TIMEOUT_SECONDS,
    putDelayMs: PUT_DELAY_MS,
    jobsDoneAtSignal: doneAtSignal,
    jobsFinishedDuringDrain: first.logs.slice(stopping + 1).filter((l) => l.outcome === 'succeeded' || l.outcome === 'failed').length,
    releasedAtShutdown: Number(stopped?.released ?? 0),
    exitCode: String(exit.code),
    stopSeconds: stopSeconds.toFixed(1),
    doneByFirst,
    doneBySecond: jobLines([second]).filter((l) => l.outcome !== 'retry').length,
    ...figures,
  }, notes);
  expect(problems).toEqual([]);
  // Drained in time: exit 0 (not the guard's 130), no job left unfinished by the deadline.
  expect(exit).toEqual({ code: 0, signal: null });
  expect(stopping).toBeGreaterThanOrEqual(0);
  expect(stopped).toMatchObject({ inFlight: 0 });
  expect(first.logs.filter((l) => String(l.msg).startsWith('drain timeout') || l.msg === 'the drain did not finish in time; exiting')).toEqual([]);
  // The stop came under load: the first worker did not get to everything, the second did the rest.
  expect(doneByFirst).toBeLessThan(total);
  expect(doneByFirst + jobLines([second]).filter((l) => l.outcome !== 'retry').length).toBe(total);
});
