// Every message delivered twice: each job is sent twice, back to back, so the two copies are often
// processed at the same time by two slots. One object per photo; each copy gets its own outcome and
// (for a bad job) its own dead-letter entry.
import { afterAll, expect, inject, it } from 'vitest';
import { createStack, uniqueName } from '../support/resources.ts';
import { stackEnv, startWorker, workerReaper, type WorkerProcess } from '../support/worker-process.ts';
import { account, BAD_CODES, createLedger, FAULT_ENV, mixed, report, saveLogs, sendCases, settle } from './ledger.ts';

const emulator = inject('emulator');
const workers = workerReaper();
const started: WorkerProcess[] = [];
afterAll(async () => {
  saveLogs('duplicates', started);
  await workers.killAll();
});

it('every job sent twice: one object per photo, every copy has its outcome, nothing stored twice', async () => {
  const name = uniqueName('dup');
  const stack = await createStack(emulator.endpoint, name);
  const ledger = await createLedger(stack, name, { good: 16, bad: BAD_CODES.length });
  const env = stackEnv(stack, emulator.imdsEndpoint, { ...FAULT_ENV, CONCURRENCY: '4', VISIBILITY_TIMEOUT_SECONDS: '10', HEARTBEAT_INTERVAL_SECONDS: '3' });

  const worker = workers.track(await startWorker(env));
  started.push(worker);
  await sendCases(ledger, mixed(ledger), 2);
  await settle(ledger);
  expect(await worker.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  const { problems, notes, figures } = await account(ledger, { workers: [worker], atLeastOnceWindow: false, createdExactly: true });

  report('duplicates', { jobs: ledger.cases.length, copiesEach: 2, ...figures }, notes);
  expect(problems).toEqual([]);
  expect(ledger.sends).toHaveLength(2 * ledger.cases.length);
  // Each second copy found its photos already stored (or raced the first and lost): the write was
  // refused, not repeated.
  expect(figures.alreadyStored).toBeGreaterThanOrEqual(Number(figures.referencesReported) / 2);
});
