// IMDS at start: credentials that never come end the start with a clear error and a non-zero exit,
// without a busy loop, and the jobs wait untouched; IMDS that recovers within
// STARTUP_TIMEOUT_SECONDS lets the worker proceed and process them.
// The worker's IMDS is a local IMDSv2 server (startImds) behind the fault proxy, which refuses
// requests while IMDS is "down" and counts them.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { startImds, type Imds } from '../support/imds.ts';
import { outcomes, queueHolds } from '../support/jobs.ts';
import { createStack, listKeys, uniqueName } from '../support/resources.ts';
import { spawnCli, stackEnv, startWorker, workerReaper, type LogLine, type WorkerProcess } from '../support/worker-process.ts';
import { account, createLedger, FAULT_ENV, mixed, report, saveLogs, sendCases, settle } from './ledger.ts';

const emulator = inject('emulator');
const workers = workerReaper();
const started: WorkerProcess[] = [];
let imds: Imds;
let gate: FaultProxy;

beforeAll(async () => {
  imds = await startImds();
  gate = await startFaultProxy(imds.endpoint);
});
afterAll(async () => {
  saveLogs('imds', started);
  await workers.killAll();
  await gate.close();
  await imds.stop();
});

const credentialLines = (w: WorkerProcess): LogLine[] => w.logs.filter((l) => String(l.msg).startsWith('AWS credentials: '));

it('IMDS unreachable at start: a clear error, exit 1, no busy loop; the jobs wait for the next start', async () => {
  const name = uniqueName('imds-down');
  const stack = await createStack(emulator.endpoint, name);
  const ledger = await createLedger(stack, name, { good: 6, bad: 2 });
  await sendCases(ledger, mixed(ledger));
  // Every IMDS connection is dropped: as on a host with no metadata service.
  gate.setRule(() => ({ kind: 'reset' }));
  const hitsBefore = gate.hits;
  const startupTimeoutSeconds = 5;

  const began = Date.now();
  const worker = workers.track(spawnCli(['run'], stackEnv(stack, gate.url, { ...FAULT_ENV, STARTUP_TIMEOUT_SECONDS: String(startupTimeoutSeconds) })));
  started.push(worker);
  const exit = await worker.exited;
  const seconds = (Date.now() - began) / 1000;
  const imdsRequests = gate.hits - hitsBefore;
  const fatal = worker.logs.find((l) => l.level === 'fatal');

  expect(exit).toEqual({ code: 1, signal: null });
  expect(String(fatal?.msg)).toMatch(/^AWS credentials did not succeed before the start-up timeout: /);
  expect(worker.logs.some((l) => l.msg === 'ready: receiving jobs')).toBe(false);
  // Nothing was touched: all jobs still waiting, nothing written, no outcome, no dead letter.
  await queueHolds(stack, stack.jobsQueueUrl, { visible: ledger.sends.length, inFlight: 0 });
  expect(await listKeys(stack.s3, stack.bucket)).toEqual([]);
  expect(await outcomes(stack, 1, 1_000)).toEqual([]);

  // IMDS back: the next start does the jobs.
  gate.setRule(undefined);
  const next = workers.track(await startWorker(stackEnv(stack, gate.url, FAULT_ENV)));
  started.push(next);
  await settle(ledger);
  expect(await next.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  const { problems, notes, figures } = await account(ledger, { workers: [worker, next], atLeastOnceWindow: false, createdExactly: true });

  report('imds-unreachable', {
    startupTimeoutSeconds,
    exitCode: String(exit.code),
    secondsToExit: seconds.toFixed(1),
    imdsRequests,
    // One line per failed try but the last, which is the fatal one.
    credentialTries: credentialLines(worker).length + 1,
    fatal: JSON.stringify(String(fatal?.msg).slice(0, 120)),
    ...figures,
  }, notes);
  expect(problems).toEqual([]);
  // No busy loop: start-up retries back off (1 s, 2 s, 4 s …), each try a few IMDS requests with the
  // SDK's own retries. Spinning for 5 s would make thousands.
  expect(imdsRequests).toBeGreaterThan(0);
  expect(imdsRequests).toBeLessThanOrEqual(60);
});

it('IMDS that recovers within STARTUP_TIMEOUT_SECONDS: the worker proceeds and processes the jobs', async () => {
  const name = uniqueName('imds-back');
  const stack = await createStack(emulator.endpoint, name);
  const ledger = await createLedger(stack, name, { good: 6, bad: 2 });
  await sendCases(ledger, mixed(ledger));
  // IMDS answers 503 to everything (overloaded, or not up yet) …
  gate.setRule(() => ({ kind: 'status', status: 503 }));
  const hitsBefore = gate.hits;

  const worker = workers.track(spawnCli(['run'], stackEnv(stack, gate.url, { ...FAULT_ENV, STARTUP_TIMEOUT_SECONDS: '30' })));
  started.push(worker);
  // Two failed tries (the worker backs off 1 s, then 2 s, then 4 s) …
  await worker.waitForLog((l) => String(l.msg).startsWith('AWS credentials: ') && Number(l.tries) >= 2, 20_000);
  // … and then IMDS comes up.
  const outageRequests = gate.hits - hitsBefore;
  const recovered = Date.now();
  gate.setRule(undefined);
  const ready = await worker.waitForLog((l) => l.msg === 'AWS credentials: ready', 30_000);
  await worker.waitForLog((l) => l.msg === 'ready: receiving jobs', 30_000);
  const readyAfter = (Date.now() - recovered) / 1000;
  await settle(ledger);
  expect(await worker.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  const { problems, notes, figures } = await account(ledger, { workers: [worker], atLeastOnceWindow: false, createdExactly: true });

  report('imds-recovers', {
    imdsRequestsDuringOutage: outageRequests,
    credentialTries: Number(ready.tries),
    secondsFromRecoveryToReady: readyAfter.toFixed(1),
    credentialSource: JSON.stringify(worker.logs.find((l) => l.msg === 'AWS credentials')?.credentialSource),
    ...figures,
  }, notes);
  expect(problems).toEqual([]);
  expect(Number(ready.tries)).toBeGreaterThan(1);
  expect(worker.logs.find((l) => l.msg === 'AWS credentials')).toMatchObject({ credentialSource: 'EC2 instance metadata (IMDSv2, instance role)' });
  expect(outageRequests).toBeLessThanOrEqual(60);
});
