// Loaded into the process under test with `node --import test/bench/probe.ts …` (child processes
// started with the same execArgv load it too). It changes nothing else in the process.
//
// - Once a second, one stderr line `probe {…}`: the last second's event-loop utilisation (the share
//   of time the main thread was busy), for the progress log.
// - On SIGUSR2, one stderr line `probe-mark {…}` with what happened since the previous mark (or
//   since start-up), then a new window starts: event-loop utilisation, and the event-loop delay
//   percentiles from perf_hooks.monitorEventLoopDelay. The benchmark marks at `ready` and at the
//   last job, so these cover exactly the measured window.
//
// The delay histogram samples every RESOLUTION_MS and records the time between samples, so an idle
// loop records RESOLUTION_MS; the delay reported is that minus RESOLUTION_MS.
import { isMainThread, threadId } from 'node:worker_threads';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const RESOLUTION_MS = 10;

if (isMainThread) {
  const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  delay.enable();
  const start = { elu: performance.eventLoopUtilization(), t: Date.now() };
  let last = start.elu;
  let window = { ...start };
  const ms = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);

  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const elu = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    process.stderr.write(`probe ${JSON.stringify({ t: Date.now(), pid: process.pid, threadId, elu })}\n`);
  }, 1_000);
  timer.unref();

  // A signal listener does not keep the process alive, and the worker does not use SIGUSR2.
  process.on('SIGUSR2', () => {
    const now = { elu: performance.eventLoopUtilization(), t: Date.now() };
    const line = {
      t: now.t,
      pid: process.pid,
      since: window.t,
      elu: performance.eventLoopUtilization(now.elu, window.elu).utilization,
      delayP50Ms: ms(delay.percentile(50)),
      delayP99Ms: ms(delay.percentile(99)),
      delayMaxMs: ms(delay.max),
      delaySamples: delay.count,
    };
    process.stderr.write(`probe-mark ${JSON.stringify(line)}\n`);
    delay.reset();
    window = now;
  });
}
