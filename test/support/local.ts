// `npm run local`: the worker on this machine against an emulator, with nothing to set up by hand.
// Starts moto (or LocalStack through a container runtime when moto cannot be had), creates the
// jobs queue with its dead-letter queue, the result queue and both buckets, then runs the built
// worker in the foreground. The worker gets no keys: its credentials come from the emulator's
// IMDSv2 endpoint, exactly as on EC2. Ctrl-C drains the worker and stops the emulator. On a
// terminal its pino lines are pretty-printed (pino-pretty, a devDependency); piped anywhere else
// they stay the JSON lines the worker writes in production.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { finished } from 'node:stream/promises';
import pinoPretty from 'pino-pretty';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { startEmulator, type Emulator } from './emulator.ts';
import { jpegImage, pngImage } from './images.ts';
import { startMoto } from './moto.ts';
import { createStack, TEST_REGION } from './resources.ts';

const root = resolve(import.meta.dirname, '..', '..');
const workDir = join(root, '.local');

async function emulator(): Promise<Emulator> {
  if (!process.env.TEST_EMULATOR && !process.env.TEST_AWS_ENDPOINT_URL) {
    try {
      const moto = await startMoto();
      process.stderr.write(`[local] moto_server ${moto.version} at ${moto.endpoint}\n`);
      return { kind: 'moto', endpoint: moto.endpoint, imdsEndpoint: moto.endpoint, description: 'moto', stop: moto.stop };
    } catch (e: unknown) {
      process.stderr.write(`[local] moto is not available (${e instanceof Error ? e.message.split('\n')[0] : e}); trying LocalStack\n`);
      return startEmulator({ ...process.env, TEST_EMULATOR: 'localstack' });
    }
  }
  return startEmulator();
}

const emu = await emulator();
const stack = await createStack(emu.endpoint, 'enrollment-local');
await mkdir(join(workDir, 'samples'), { recursive: true });
const samples = [join(workDir, 'samples', 'face-1.jpg'), join(workDir, 'samples', 'face-2.png')];
await writeFile(samples[0] ?? '', await jpegImage({ width: 480, height: 640 }));
await writeFile(samples[1] ?? '', await pngImage({ width: 320, height: 320 }));

const settings: Record<string, string> = {
  AWS_REGION: TEST_REGION,
  AWS_ENDPOINT_URL: emu.endpoint,
  AWS_EC2_METADATA_SERVICE_ENDPOINT: emu.imdsEndpoint,
  SQS_QUEUE_URL: stack.jobsQueueUrl,
  S3_BUCKET: stack.bucket,
  STAGING_BUCKET: stack.stagingBucket ?? '',
  RESULT_QUEUE_URL: stack.resultQueueUrl ?? '',
  // Jobs must be signed, as in production: a fresh key per run, in the env file that
  // `enqueue:local` reads too (there is no secret locally, so the environment may hold it).
  JOB_SIGNING_KEY: randomBytes(32).toString('hex'),
  CONCURRENCY: '4',
  // A short long poll, so that Ctrl-C (which lets polls in flight finish) is quick.
  POLL_WAIT_SECONDS: '5',
};
const envFile = join(workDir, 'worker.env');
await writeFile(envFile, Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(''));

// No keys in the worker's environment: only the instance-role path through IMDSv2.
const workerEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...settings };
const pretty = process.stdout.isTTY === true;
const worker = spawn(process.execPath, [join(root, 'dist', 'cli.js'), 'run'], { env: workerEnv, stdio: ['ignore', pretty ? 'pipe' : 'inherit', 'inherit'], detached: true });
// The worker itself always writes JSON; only this terminal's copy is made readable.
const prettyOut =
  pretty && worker.stdout
    ? worker.stdout.pipe(pinoPretty({ colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service', sync: true }))
    : undefined;

process.stderr.write(
  [
    '',
    `[local] worker started against ${emu.endpoint}; settings in ${envFile}`,
    '[local] in another terminal, enqueue a sample job and see its outcome:',
    '',
    `  npm run -s enqueue:local -- --user alice@example.com ${samples.map((s) => s.replace(`${root}/`, '')).join(' ')}`,
    '',
    '[local] Ctrl-C stops the worker (graceful drain) and the emulator.',
    '',
  ].join('\n'),
);

let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  worker.kill(signal);
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
worker.on('exit', async (code, signal) => {
  // Its last lines (the drain) are printed before the emulator goes.
  if (prettyOut) await finished(prettyOut).catch(() => undefined);
  await emu.stop();
  process.exit(code ?? (signal ? 1 : 0));
});
