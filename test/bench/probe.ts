// Loaded into the process under test with `node --import test/bench/probe.ts …`: once a second it
// writes one line to stderr with the event loop's utilisation (the share of time the main thread
// was busy) and its delay, so the benchmark can tell "the event loop is full" from "waiting on the
// network". It changes nothing else in the process.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
let last = performance.eventLoopUtilization();
const timer = setInterval(() => {
  const now = performance.eventLoopUtilization();
  const elu = performance.eventLoopUtilization(now, last).utilization;
  last = now;
  process.stderr.write(`probe ${JSON.stringify({ t: Date.now(), elu, delayP50: delay.percentile(50) / 1e6, delayP99: delay.percentile(99) / 1e6, delayMax: delay.max / 1e6 })}\n`);
  delay.reset();
}, 1_000);
timer.unref();
