// Two and three workers on one queue at once: the jobs are shared out, racing writes of the same
// photo end with one object, and every job has its one fate.
import { afterAll, expect, inject, it } from 'vitest';
import { createStack, uniqueName } from '../support/resources.ts';
import { stackEnv, startWorker, workerReaper, type WorkerProcess } from '../support/worker-process.ts';
import { account, createLedger, FAULT_ENV, jobLines, mixed, report, saveLogs, sendCases, settle } from './ledger.ts';

const emulator = inject('emulator');
const workers = workerReaper();
const started: WorkerProcess[] = [];
afterAll(async () => {
  saveLogs('workers', started);
  await workers.killAll();
});

for (const count of [2, 3]) {
  it(`${count} workers on one queue: each job stored or dead-lettered once, work shared out`, async () => {
    const name = uniqueName(`workers${count}`);
    const stack = await createStack(emulator.endpoint, name);
    const ledger = await createLedger(stack, name, { good: 12 * count, bad: 3 * count });
    const env = stackEnv(stack, emulator.imdsEndpoint, { ...FAULT_ENV, CONCURRENCY: '4', VISIBILITY_TIMEOUT_SECONDS: '10', HEARTBEAT_INTERVAL_SECONDS: '3' });

    const pool = await Promise.all(Array.from({ length: count }, async () => workers.track(await startWorker(env))));
    started.push(...pool);
    // Sent while all of them are polling, so they race for the jobs.
    await sendCases(ledger, mixed(ledger));
    await settle(ledger);
    const exits = await Promise.all(pool.map((w) => w.stop('SIGTERM')));
    const { problems, notes, figures } = await account(ledger, { workers: pool, atLeastOnceWindow: false, createdExactly: true });

    const perWorker = pool.map((w) => jobLines([w]).filter((l) => l.outcome !== 'retry').length);
    report(`workers-${count}`, { workers: count, jobsPerWorker: perWorker.join('/'), ...figures }, notes);
    expect(problems).toEqual([]);
    expect(exits).toEqual(pool.map(() => ({ code: 0, signal: null })));
    for (const n of perWorker) expect(n).toBeGreaterThan(0);
  });
}
