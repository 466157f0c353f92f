// docker-compose.yml's worker, started the way `docker compose up` starts it, without Docker: its
// exact command and environment, as PID 1 of a minimal Debian bookworm root with what the image,
// node:24-bookworm, has to build native addons (python3, make, a C compiler, libjpeg-turbo's
// headers: the JPEG codec needs them, and the worker does not start without it) and Node 24 and npm
// where that image has them (/usr/local), on a copy of what a clean clone holds. Only the
// emulator's addresses replace LocalStack's. It must install, build, become ready, store a job, and
// drain on SIGTERM. Part of `npm run test:systemd` (root, systemd-nspawn).
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { jpegImage } from '../support/images.ts';
import { buildSignedJob } from '../../src/producer/enqueue.ts';
import { outcomes, sendJob } from '../support/jobs.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { createStack, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { until, within } from '../support/wait.ts';
import { ensureHostTools, ensureRootfs, REPO, resultsFolder, runInRoot, type RootRun } from './container.ts';

const exec = promisify(execFile);

/** npm ci of every dependency (the node binary among them) and tsc, on two busy cores. */
const READY_WITHIN_MS = 12 * 60_000;
const LIFETIME_SECONDS = 20 * 60;
/** The image's PATH (node:24-bookworm). */
const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface ComposeService {
  image: string;
  working_dir: string;
  command: string[];
  environment: Record<string, string>;
  volumes: string[];
}

let moto: Moto;
let stack: Stack;
let secrets: SecretsManagerClient;
let results = '';
let worker: ComposeService;
let run: RootRun | undefined;
let rootfs = '';
let composeSecret: Record<string, string> = {};


/** The worker's pino lines in the output so far. */
function logLines(): Record<string, unknown>[] {
  return (run?.output() ?? '')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

/** What a clean clone of this tree holds: the tracked files (as edited) and new, unignored ones. */
async function cleanCopy(into: string): Promise<void> {
  const { stdout } = await exec('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO, maxBuffer: 16 * 1024 * 1024 });
  for (const file of stdout.split('\0').filter((f) => f !== '')) {
    const from = join(REPO, file);
    // A tracked file deleted in this tree is not in the clone either.
    if (!(await access(from).then(() => true, () => false))) continue;
    await mkdir(dirname(join(into, file)), { recursive: true });
    await copyFile(from, join(into, file));
  }
}

beforeAll(async () => {
  const compose = parse(await readFile(join(REPO, 'docker-compose.yml'), 'utf8')) as { services: { worker: ComposeService } };
  worker = compose.services.worker;

  await ensureHostTools();
  rootfs = await ensureRootfs('build');
  results = await resultsFolder();
  process.stderr.write(`[compose-test] results: ${results}\n`);
  await cleanCopy(join(results, 'app'));

  moto = await startMoto();
  stack = await createStack(moto.endpoint, uniqueName('compose'));
  secrets = new SecretsManagerClient({ region: stack.region, endpoint: moto.endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const secretName = `${uniqueName('compose')}/settings`;
  // The secret the LocalStack init hook creates (it holds the signing key), plus a short retry.
  const init = await readFile(join(REPO, 'test', 'support', 'localstack-init.sh'), 'utf8');
  composeSecret = JSON.parse(/--secret-string '([^']*)'/.exec(init)?.[1] ?? '{}') as Record<string, string>;
  await secrets.send(new CreateSecretCommand({ Name: secretName, SecretString: JSON.stringify({ ...composeSecret, RETRY_BASE_SECONDS: '1' }) }));

  // The service's environment as written, with this test's emulator in place of LocalStack.
  const env: Record<string, string> = {
    ...Object.fromEntries(Object.entries(worker.environment).map(([k, v]) => [k, String(v)])),
    AWS_ENDPOINT_URL: moto.endpoint,
    SQS_QUEUE_URL: stack.jobsQueueUrl,
    RESULT_QUEUE_URL: stack.resultQueueUrl ?? '',
    S3_BUCKET: stack.bucket,
    STAGING_BUCKET: stack.stagingBucket ?? '',
    SECRETS_MANAGER_SECRET_NAME: secretName,
    // The host's network: not on every interface, and not on a port in use.
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '0',
    PATH: IMAGE_PATH,
    HOME: '/root',
  };
  // Not the service's: this machine's network. Where the host reaches the registry through a TLS
  // proxy with its own CA (NODE_EXTRA_CA_CERTS), npm inside must trust it too.
  const hostCa = process.env.NODE_EXTRA_CA_CERTS;
  const caBind: Record<string, string> = {};
  if (hostCa !== undefined && hostCa !== '') {
    caBind[hostCa] = '/etc/host-extra-ca.crt';
    env.NODE_EXTRA_CA_CERTS = '/etc/host-extra-ca.crt';
  }
  // Node's headers for node-gyp: the image ships them in /usr/local/include/node (a Node.js release's
  // layout), where the test's node binary (from the `node` package) comes without them, and node-gyp
  // would download them, which the test's machine cannot. The host's (Debian's nodejs-dev) serve:
  // the addons use Node-API only, the same across Node versions.
  const headers = '/usr/include/node';
  env.npm_config_nodedir = '/usr/local';
  // The image's layout: node and npm in /usr/local (npm linked as its package does), no
  // NOTIFY_SOCKET (systemd-nspawn sets one; Docker does not), then the service's command as written.
  await writeFile(
    join(results, 'entrypoint.sh'),
    [
      'set -e',
      'ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm',
      'ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx',
      'unset NOTIFY_SOCKET',
      `cd '${worker.working_dir}'`,
      'exec "$@"',
      '',
    ].join('\n'),
  );
  const { stdout: npmRoot } = await exec('npm', ['root', '-g']);
  run = runInRoot({
    rootfs,
    lifetimeSeconds: LIFETIME_SECONDS,
    bindReadOnly: {
      [join(REPO, 'node_modules', 'node', 'bin', 'node')]: '/usr/local/bin/node',
      [join(npmRoot.trim(), 'npm')]: '/usr/local/lib/node_modules/npm',
      [join(results, 'entrypoint.sh')]: '/entrypoint.sh',
      [headers]: '/usr/local/include/node',
      ...caBind,
    },
    bind: {
      // The bind mount `.:/app`; node_modules starts empty, as the named volume does.
      [join(results, 'app')]: worker.working_dir,
      // npm's cache, so that the packages come from the registry once per machine, not per run.
      [join(homedir(), '.npm')]: '/root/.npm',
    },
    env,
    argv: ['/bin/sh', '/entrypoint.sh', ...worker.command],
  });
}, 10 * 60_000);

afterAll(async () => {
  if (run) {
    run.terminate();
    await within(run.exited, 60_000, undefined);
    await writeFile(join(results, 'output.log'), run.output());
  }
  // The clone with its node_modules is large; the output says what happened.
  if (results) await rm(join(results, 'app'), { recursive: true, force: true });
  secrets?.destroy();
  stack?.sqs.destroy();
  stack?.s3.destroy();
  await moto?.stop();
  if (results) process.stderr.write(`[compose-test] kept: ${results}\n`);
}, 120_000);

describe('docker-compose worker in a minimal Debian root', { sequential: true }, () => {
  it('runs in what the image stands for: bookworm, with python3, make, a C compiler and libjpeg-turbo\u2019s headers', async () => {
    expect(worker.image).toBe('node:24-bookworm');
    expect(await readFile(join(rootfs, 'etc', 'os-release'), 'utf8')).toMatch(/VERSION_CODENAME=bookworm/);
    for (const file of ['usr/bin/python3', 'usr/bin/make', 'usr/bin/cc', 'usr/include/jpeglib.h']) {
      expect(await access(join(rootfs, file)).then(() => file, () => 'absent')).toBe(file);
    }
    expect(worker.command[0]).toBe('sh');
    expect(worker.command.join(' ')).toMatch(/npm ci/);
  });

  it('installs, builds and becomes ready from a clean clone', async () => {
    let exitCode: number | null | undefined;
    void run?.exited.then((code) => (exitCode = code));
    const output = () => run?.output().slice(-6000) ?? '';
    await until(
      'the worker to be ready',
      () => {
        if (exitCode !== undefined) throw new Error(`the compose command exited (${String(exitCode)}) before it was ready:\n${output()}`);
        return logLines().some((l) => l.msg === 'ready: receiving jobs');
      },
      READY_WITHIN_MS,
      { everyMs: 2000, detail: output },
    );
    // The codec was built (the worker would not start without it); outside systemd sd_notify is not wanted, and not missed.
    expect(await access(join(results, 'app', 'build', 'Release', 'jpeg.node')).then(() => true, () => false)).toBe(true);
    expect(logLines().filter((l) => typeof l.msg === 'string' && l.msg.includes('sd_notify'))).toEqual([]);
  }, READY_WITHIN_MS + 60_000);

  it('stores a job, and drains and exits 0 on SIGTERM (docker compose stop)', async () => {
    const user = `compose-${randomUUID().slice(0, 8)}@example.com`;
    const signed = buildSignedJob({ userId: user, images: [await jpegImage({ width: 128, height: 128 })] }, composeSecret.JOB_SIGNING_KEY);
    await sendJob(stack, signed.body, signed.messageAttributes);
    expect((await outcomes(stack, 1, 60_000)).map((o) => o.status)).toEqual(['succeeded']);
    expect(await listKeys(stack.s3, stack.bucket, `users/${user}/`)).toHaveLength(1);

    run?.terminate();
    const code = run === undefined ? 'not started' : await within(run.exited, 60_000, 'still running');
    expect(code).toBe(0);
    expect(logLines().some((l) => l.msg === 'stopped')).toBe(true);
  }, 120_000);
});
