// Memory soak: the built worker under continuous load with the largest inline images (messages of
// nearly 1 MiB), against the fast endpoint (test/support/fast-aws.ts, 15 ms per request) so the
// load is real, for SOAK_SECONDS. Its RSS is read every second from /proc; the median of the first
// fifth of the run is compared with the median of the last fifth (for 300 s: the first and the last
// minute). A leak detector, not a timing test: the only bound is generous (last ≤ first × 1.5 +
// 50 MiB), and the figures are printed.
//
//   SOAK_SECONDS=300 npx vitest run --project faults test/faults/soak.test.ts   # the full soak
//
// The fault suite runs it for 60 s by default, to stay within a few minutes.
import { afterAll, expect, it } from 'vitest';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { photoJpeg } from '../bench/photos.ts';
import { median } from '../bench/stats.ts';
import { cpuSeconds, rssMiB } from '../support/proc.ts';
import { startFastAws, type DeletedMessage, type FastAws } from '../support/fast-aws.ts';
import { createStack, uniqueName } from '../support/resources.ts';
import { sleep } from '../support/wait.ts';
import { stackEnv, startWorker, workerReaper } from '../support/worker-process.ts';

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const CONCURRENCY = 16;
// Base64 of the image plus the JSON around it must stay under SQS's 1 MiB.
const MAX_INLINE_IMAGE = Math.floor((1_048_576 - 1024) / 4) * 3;
const BACKLOG = CONCURRENCY * 2;

const reaper = workerReaper();
let aws: FastAws | undefined;

afterAll(async () => {
  await reaper.killAll();
  await aws?.stop();
});

it(
  `keeps the worker's RSS flat over ${SOAK_SECONDS} s of nearly-1 MiB jobs`,
  async () => {
    expect(Number.isFinite(SOAK_SECONDS) && SOAK_SECONDS >= 10, 'SOAK_SECONDS must be at least 10').toBe(true);
    const images = await Promise.all([1, 2, 3, 4].map((seed) => photoJpeg(760_000, 9000 + seed, { tolerance: 0.03, maxBytes: MAX_INLINE_IMAGE })));
    const base64 = images.map((b) => b.toString('base64'));

    aws = await startFastAws({ delayMs: 15 });
    const fast = aws;
    const name = uniqueName('soak');
    const stack = await createStack(fast.endpoint, name);
    const worker = reaper.track(await startWorker(stackEnv(stack, fast.imdsEndpoint, { LOG_LEVEL: 'info', CONCURRENCY: String(CONCURRENCY), POLL_WAIT_SECONDS: '20' })));
    const pid = worker.child.pid ?? 0;

    let sent = 0;
    let done = 0;
    fast.events.on('deleted', (d: DeletedMessage) => {
      if (d.queue === `${name}-jobs`) done += 1;
    });
    const send = () => {
      const i = sent++;
      const body = `{"version":1,"jobId":"soak-${i}","userId":"soak-${i}@example.com","images":[{"data":"${base64[i % base64.length] ?? ''}"}]}`;
      return stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.jobsQueueUrl, MessageBody: body }));
    };

    const samples: { t: number; rss: number }[] = [];
    const cpuAtStart = cpuSeconds(pid);
    const started = Date.now();
    const end = started + SOAK_SECONDS * 1000;
    let nextSample = started;
    while (Date.now() < end) {
      // Keep a backlog, so the worker is never idle; forget what it wrote, so the endpoint stays small.
      const { visible } = fast.queueDepth(`${name}-jobs`);
      const sends: Promise<unknown>[] = [];
      for (let k = visible; k < BACKLOG; k += 1) sends.push(send());
      await Promise.all(sends);
      if (Date.now() >= nextSample) {
        samples.push({ t: Date.now() - started, rss: rssMiB(pid) });
        nextSample += 1000;
        fast.purge(stack.bucket);
        fast.purge(`${name}-results`);
      }
      await sleep(50);
    }
    const cpu = cpuSeconds(pid) - cpuAtStart;

    const fifth = Math.max(1, Math.floor(samples.length / 5));
    const first = median(samples.slice(0, fifth).map((s) => s.rss));
    const last = median(samples.slice(-fifth).map((s) => s.rss));
    const peak = Math.max(...samples.map((s) => s.rss));
    const report = {
      seconds: SOAK_SECONDS,
      imageBytes: images.map((b) => b.length),
      jobsDone: done,
      jobsPerSecond: Math.round((done / SOAK_SECONDS) * 10) / 10,
      cpuMsPerJob: Math.round(((cpu * 1000) / Math.max(1, done)) * 100) / 100,
      rssFirstFifthMedianMiB: Math.round(first),
      rssLastFifthMedianMiB: Math.round(last),
      rssPeakMiB: Math.round(peak),
      growth: Math.round((last / first) * 100) / 100,
      samples: samples.length,
    };
    process.stdout.write(`[soak] ${JSON.stringify(report)}\n`);
    process.stdout.write(`[soak] RSS MiB every 10 s: ${samples.filter((_, i) => i % 10 === 0).map((s) => Math.round(s.rss)).join(' ')}\n`);

    const failed = worker.logs.filter((l) => l.msg === 'job failed' || l.level === 'error' || l.level === 'fatal');
    expect(failed.slice(0, 3)).toEqual([]);
    expect(done).toBeGreaterThan(SOAK_SECONDS); // the load was real: well over a job a second
    expect(last).toBeLessThanOrEqual(first * 1.5 + 50);

    const stopping = worker.stop('SIGTERM', 60_000);
    fast.releaseWaits();
    expect((await stopping).code).toBe(0);
  },
  SOAK_SECONDS * 1000 + 120_000,
);
