// The emulator frozen for longer than the SDK's timeouts (src/aws/clients.ts: SQS requestTimeout 30 s,
// connectionTimeout 5 s), then resumed: the worker stays up, gives up the calls the freeze left
// hanging and retries them with backoff rather than spinning, and finishes everything — what was in
// flight at the freeze and what comes after it.
//
// Two workers live through the same freeze, each on its own stack and behind its own fault proxy
// (which counts its requests):
//   - "idle": its queue is empty when the freeze starts, so every slot has a long poll in flight and
//     nothing else. After the 30 s request timeout those polls must be given up and tried again
//     while the emulator is still frozen: that is what "retries" means, seen from the emulator.
//   - "busy": jobs are in flight when the freeze starts (heartbeats, writes, deletes hang).
//
// On moto the emulator process itself is stopped (SIGSTOP / SIGCONT: the kernel still accepts
// connections, nothing answers). On any other backend the fault proxies hold every request until
// the freeze ends, which is what a stopped process looks like from the worker's side.
//
// A second scenario freezes the endpoint before the worker starts (the fault proxy holds every
// request; credentials from IMDS still come): start-up must give up after STARTUP_TIMEOUT_SECONDS
// with exit 1, as it does for anything else that is not ready, and leave the jobs for the next start.
import { afterAll, expect, inject, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { queueDepth, queueHolds } from '../support/jobs.ts';
import { cpuSeconds } from '../support/proc.ts';
import { createStack, listKeys, uniqueName } from '../support/resources.ts';
import { sleep, within } from '../support/wait.ts';
import { spawnCli, stackEnv, startWorker, workerReaper, type LogLine, type WorkerProcess } from '../support/worker-process.ts';
import { account, createLedger, FAULT_ENV, jobLines, mixed, report, saveLogs, sendCases, settle, untilFinished, type Case, type Ledger } from './ledger.ts';

const emulator = inject('emulator');
const workers = workerReaper();
const motoPid = emulator.motoPid ?? undefined;
const proxies: FaultProxy[] = [];
const started: WorkerProcess[] = [];
let frozen = false;

const FREEZE_MS = 38_000; // past the 30 s request timeout, so calls in flight time out and are retried
const HEARTBEAT_SECONDS = 2;
// No long poll starts this late into the freeze unless one in flight was given up (POLL_WAIT is 2 s).
const LATE_MS = 20_000;

afterAll(async () => {
  saveLogs('freeze', started);
  // Never leave the shared emulator stopped, whatever happened.
  if (frozen && motoPid !== undefined) process.kill(motoPid, 'SIGCONT');
  await workers.killAll();
  await Promise.all(proxies.map((p) => p.close()));
});

/** pino's ISO timestamp of a log line, in epoch ms. */
const timeOf = (line: LogLine): number => Date.parse(String(line.time));

interface Request {
  at: number;
  what: string;
}

let freezeEnd = 0;

interface Side {
  label: string;
  concurrency: number;
  ledger: Ledger;
  before: Case[];
  after: Case[];
  requests: Request[];
  env: NodeJS.ProcessEnv;
}

async function side(label: string, concurrency: number, counts: { good: number; bad: number }, afterCount: number): Promise<Side> {
  const name = uniqueName(`freeze-${label}`);
  const stack = await createStack(emulator.endpoint, name);
  const ledger = await createLedger(stack, name, counts);
  const order = mixed(ledger);
  const proxy = await startFaultProxy(emulator.endpoint);
  proxies.push(proxy);
  const requests: Request[] = [];
  proxy.setRule((req) => {
    requests.push({ at: Date.now(), what: req.target ?? `S3 ${req.method}` });
    // Without a process to stop, hold each request until the freeze ends.
    if (motoPid === undefined && Date.now() < freezeEnd) return { kind: 'delay', ms: freezeEnd - Date.now() };
    return undefined;
  });
  const env = stackEnv(stack, emulator.imdsEndpoint, {
    ...FAULT_ENV,
    AWS_ENDPOINT_URL: proxy.url,
    CONCURRENCY: String(concurrency),
    VISIBILITY_TIMEOUT_SECONDS: '6',
    HEARTBEAT_INTERVAL_SECONDS: String(HEARTBEAT_SECONDS),
  });
  return { label, concurrency, ledger, before: order.slice(0, order.length - afterCount), after: order.slice(order.length - afterCount), requests, env };
}

const finished = (w: WorkerProcess) => jobLines([w]).filter((l) => l.outcome !== 'retry').length;

it('a frozen emulator: the workers stay up, retry what hung, and finish every job once it answers again', async () => {
  const idle = await side('idle', 4, { good: 6, bad: 2 }, 3);
  const busy = await side('busy', 6, { good: 24, bad: 6 }, 10);

  await sendCases(idle.ledger, idle.before);
  const idleWorker = workers.track(await startWorker(idle.env));
  started.push(idleWorker);
  await untilFinished([idleWorker], idle.before.length);

  await sendCases(busy.ledger, busy.before);
  const busyWorker = workers.track(await startWorker(busy.env));
  started.push(busyWorker);
  // More slots than jobs left: some slots are mid-job at the freeze, the others long-polling.
  await untilFinished([busyWorker], busy.before.length - 4);

  // Freeze.
  const pairs = [
    { side: idle, worker: idleWorker },
    { side: busy, worker: busyWorker },
  ];
  const pids = pairs.map((p) => p.worker.child.pid);
  const logsBefore = pairs.map((p) => p.worker.logs.length);
  const textBefore = pairs.map((p) => p.worker.text.length);
  const cpuOf = (pid: number | undefined) => (pid === undefined ? Number.NaN : cpuSeconds(pid));
  const cpuBefore = pids.map(cpuOf);
  const doneAtFreeze = pairs.map((p) => finished(p.worker));
  const freezeStart = Date.now();
  freezeEnd = freezeStart + FREEZE_MS;
  if (motoPid !== undefined) {
    process.kill(motoPid, 'SIGSTOP');
    frozen = true;
  }
  await sleep(FREEZE_MS);
  if (motoPid !== undefined) {
    process.kill(motoPid, 'SIGCONT');
    frozen = false;
  }
  const resumedAt = Date.now();

  const during = pairs.map(({ side: s, worker: w }, i) => {
    const requests = s.requests.filter((r) => r.at >= freezeStart && r.at < resumedAt);
    const receives = requests.filter((r) => r.what === 'AmazonSQS.ReceiveMessage');
    const lines = w.logs.slice(logsBefore[i]).filter((l) => timeOf(l) < resumedAt);
    const cpu = cpuOf(pids[i]) - (cpuBefore[i] ?? Number.NaN);
    return { requests, receives, lines, cpu, alive: w.child.exitCode === null && w.child.signalCode === null };
  });

  // Both processes are still there, and take new jobs.
  expect(during.map((d) => d.alive)).toEqual([true, true]);
  await sendCases(idle.ledger, idle.after);
  await sendCases(busy.ledger, busy.after);
  await settle(idle.ledger, 120_000);
  await settle(busy.ledger, 120_000);
  const firstJobAfter = pairs.map((p) => jobLines([p.worker]).find((l) => timeOf(l) >= resumedAt && l.outcome !== 'retry'));
  expect(pairs.map((p) => p.worker.child.pid)).toEqual(pids);
  const exits = await Promise.all(pairs.map((p) => p.worker.stop('SIGTERM')));
  const accounts = await Promise.all(
    pairs.map((p) => account(p.side.ledger, { workers: [p.worker], atLeastOnceWindow: true, sendsCutOff: true, createdExactly: false })),
  );

  pairs.forEach(({ side: s, worker: w }, i) => {
    const d = during[i];
    const a = accounts[i];
    if (d === undefined || a === undefined) return;
    const count = (what: string) => d.requests.filter((r) => r.what === what).length;
    const byMessage = new Map<string, number>();
    for (const l of d.lines) byMessage.set(String(l.msg), (byMessage.get(String(l.msg)) ?? 0) + 1);
    const otherOutput = w.text.slice(textBefore[i]);
    report(`freeze-${s.label}`, {
      freezeBy: motoPid !== undefined ? 'SIGSTOP of moto' : 'fault proxy holding every request',
      freezeSeconds: FREEZE_MS / 1000,
      concurrency: s.concurrency,
      jobsDoneAtFreeze: doneAtFreeze[i] ?? 0,
      jobsNotDoneAtFreeze: s.before.length - (doneAtFreeze[i] ?? 0),
      receiveAttemptsDuringFreeze: d.receives.length,
      receiveAttemptsAt: d.receives.map((r) => `+${((r.at - freezeStart) / 1000).toFixed(1)}s`).join(',') || 'none',
      lateReceiveAttempts: d.receives.filter((r) => r.at >= freezeStart + LATE_MS).length,
      receiveFailuresLogged: d.lines.filter((l) => String(l.msg).startsWith('receiving from the jobs queue')).length,
      heartbeatsDuringFreeze: count('AmazonSQS.ChangeMessageVisibility'),
      heartbeatFailuresLogged: d.lines.filter((l) => String(l.msg).startsWith('a queue call for a received message failed')).length,
      requestsDuringFreeze: d.requests.length,
      logLinesDuringFreeze: d.lines.length,
      nonJsonOutputLines: otherOutput.length,
      workerCpuSecondsDuringFreeze: Number.isNaN(d.cpu) ? 'n/a' : d.cpu.toFixed(2),
      secondsFromResumeToNextJob: firstJobAfter[i] === undefined ? 'n/a' : ((timeOf(firstJobAfter[i] as LogLine) - resumedAt) / 1000).toFixed(1),
      samePid: w.child.pid === pids[i],
      exitCode: String(exits[i]?.code),
      ...a.figures,
    }, [
      `log lines during the freeze, by message: ${JSON.stringify(Object.fromEntries(byMessage))}`,
      ...[...new Set(otherOutput.map((t) => t.slice(0, 160)))].map((t) => `non-JSON output (${otherOutput.filter((o) => o.startsWith(t)).length}×): ${t}`),
      ...a.notes,
    ]);
  });

  for (const a of accounts) expect(a.problems).toEqual([]);
  expect(exits).toEqual([{ code: 0, signal: null }, { code: 0, signal: null }]);
  for (const [i, d] of during.entries()) {
    const concurrency = pairs[i]?.side.concurrency ?? 1;
    // No busy loop. A receive that hangs is given up after the 30 s request timeout and retried by
    // the SDK; receives that fail are backed off by the slot (1 s doubling to 30 s); a job in flight
    // sends (and, failing, logs) one heartbeat per HEARTBEAT_INTERVAL_SECONDS. Spinning would make
    // thousands of requests and lines; allow a few receives per slot, and per slot one line per
    // heartbeat interval plus a few.
    expect(d.receives.length).toBeLessThanOrEqual(concurrency * 5);
    expect(d.lines.length).toBeLessThanOrEqual(concurrency * (FREEZE_MS / 1000 / HEARTBEAT_SECONDS + 5));
  }
  // Retries: the idle worker's long polls, in flight when the emulator froze, were given up once the
  // request timeout passed and tried again while it was still frozen.
  expect(during[0]?.receives.filter((r) => r.at >= freezeStart + LATE_MS).length ?? 0).toBeGreaterThan(0);
  // And both took new jobs after the freeze.
  expect(firstJobAfter.every((l) => l !== undefined)).toBe(true);
});

it('an endpoint that never answers at start: start-up gives up after STARTUP_TIMEOUT_SECONDS with exit 1; the jobs wait', async () => {
  const name = uniqueName('frozen-start');
  const stack = await createStack(emulator.endpoint, name);
  const ledger = await createLedger(stack, name, { good: 4, bad: 2 });
  await sendCases(ledger, mixed(ledger));
  const proxy = await startFaultProxy(emulator.endpoint);
  proxies.push(proxy);
  let held = 0;
  proxy.setRule(() => {
    held += 1;
    return { kind: 'delay', ms: 10 * 60_000 };
  });
  const startupTimeoutSeconds = 8;
  // Not a timing bound: long enough that only a start that never gives up is still running then
  // (the start-up deadline itself does not wait for the SDK's timeouts).
  const waitSeconds = startupTimeoutSeconds + 110;

  const began = Date.now();
  const worker = workers.track(
    spawnCli(['run'], stackEnv(stack, emulator.imdsEndpoint, { ...FAULT_ENV, AWS_ENDPOINT_URL: proxy.url, STARTUP_TIMEOUT_SECONDS: String(startupTimeoutSeconds) })),
  );
  started.push(worker);
  const exit = await within(worker.exited, waitSeconds * 1000, undefined);
  const seconds = (Date.now() - began) / 1000;
  const fatal = worker.logs.find((l) => l.level === 'fatal');
  if (exit === undefined) await worker.stop('SIGKILL');
  proxy.setRule(undefined);

  // Nothing was touched while it tried (waited for, not read once; asserted after the report).
  const depth = await queueHolds(stack, stack.jobsQueueUrl, { visible: ledger.sends.length, inFlight: 0 }, 10_000).catch(() => queueDepth(stack, stack.jobsQueueUrl));
  const keys = await listKeys(stack.s3, stack.bucket);
  const next = workers.track(await startWorker(stackEnv(stack, emulator.imdsEndpoint, FAULT_ENV)));
  started.push(next);
  await settle(ledger);
  const nextExit = await next.stop('SIGTERM');
  const { problems, notes, figures } = await account(ledger, { workers: [worker, next], atLeastOnceWindow: false, createdExactly: true });

  report('frozen-at-start', {
    startupTimeoutSeconds,
    exit: exit === undefined ? `none: still running after ${waitSeconds} s, killed` : JSON.stringify(exit),
    secondsToExit: exit === undefined ? 'n/a' : seconds.toFixed(1),
    requestsHeld: held,
    logLines: worker.logs.length,
    fatal: JSON.stringify(String(fatal?.msg ?? 'none').slice(0, 120)),
    ...figures,
  }, [`the frozen start logged: ${JSON.stringify(worker.logs.map((l) => `${String(l.level)}: ${String(l.msg)}`))}`, ...notes]);
  expect(depth).toEqual({ visible: ledger.sends.length, inFlight: 0 });
  expect(keys).toEqual([]);
  expect(problems).toEqual([]);
  expect(nextExit).toEqual({ code: 0, signal: null });
  // The contract: what is not ready at start is retried until STARTUP_TIMEOUT_SECONDS, then exit 1.
  expect(exit).toEqual({ code: 1, signal: null });
  expect(String(fatal?.msg)).toMatch(/did not succeed before the start-up timeout/);
});
