// SIGKILL the worker mid-run, several times, and start it again each time: every job completes,
// no photo is stored twice, nothing is left behind.
import { afterAll, expect, inject, it } from 'vitest';
import { queueDepth } from '../support/jobs.ts';
import { createStack, uniqueName } from '../support/resources.ts';
import { sleep } from '../support/wait.ts';
import { stackEnv, startWorker, workerReaper, type WorkerProcess } from '../support/worker-process.ts';
import { account, createLedger, FAULT_ENV, jobLines, mixed, report, saveLogs, sendCases, settle, untilFinished } from './ledger.ts';

const emulator = inject('emulator');
const workers = workerReaper();
const all: WorkerProcess[] = [];
afterAll(async () => {
  saveLogs('sigkill', all);
  await workers.killAll();
});

const KILLS = 3;
const GOOD = 50;
const BAD = 10;

it(`${KILLS} SIGKILLs at random points while ${GOOD + BAD} jobs flow: every job completes, none stored twice`, async () => {
  const name = uniqueName('kill');
  const stack = await createStack(emulator.endpoint, name);
  const ledger = await createLedger(stack, name, { good: GOOD, bad: BAD });
  // A short visibility timeout (kept up by a 1 s heartbeat while a job runs), so what a killed
  // worker held comes back within seconds.
  const env = stackEnv(stack, emulator.imdsEndpoint, { ...FAULT_ENV, CONCURRENCY: '4', VISIBILITY_TIMEOUT_SECONDS: '4', HEARTBEAT_INTERVAL_SECONDS: '1' });
  const total = GOOD + BAD;
  const done = () => jobLines(all).filter((l) => l.outcome !== 'retry').length;

  await sendCases(ledger, mixed(ledger));
  let worker = workers.track(await startWorker(env));
  all.push(worker);

  // Kill points spread over the run: the k-th kill lands somewhere in the k-th slice of the jobs,
  // plus a random few milliseconds so it falls mid-job rather than between jobs.
  const kills: { after: number; held: number }[] = [];
  for (let k = 0; k < KILLS; k += 1) {
    const slice = total / (KILLS + 1);
    const target = Math.floor(slice * (k + 0.5) + Math.random() * slice);
    await untilFinished(all, target, [worker]);
    await sleep(Math.floor(Math.random() * 150));
    const before = done();
    const exit = await worker.stop('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    // With no worker running, what is in flight was held by a killed worker (this one, or an
    // earlier one whose messages have not come back yet).
    const held = (await queueDepth(stack, stack.jobsQueueUrl)).inFlight;
    kills.push({ after: before, held });
    worker = workers.track(await startWorker(env));
    all.push(worker);
  }

  await settle(ledger);
  expect(await worker.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  const { problems, notes, figures } = await account(ledger, { workers: all, atLeastOnceWindow: true, createdExactly: false });

  report('sigkill', {
    kills: kills.length,
    killedAfterJobs: kills.map((k) => k.after).join('/'),
    inFlightAfterKill: kills.map((k) => k.held).join('/'),
    workerStarts: all.length,
    ...figures,
  }, notes);
  expect(problems).toEqual([]);
  expect(kills).toHaveLength(KILLS);
  // Every kill interrupted work that another start then finished: at least one redelivery overall.
  expect(figures.redeliveries).toBeGreaterThan(0);
});
