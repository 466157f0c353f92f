// infra/bootstrap/bootstrap.sh — the launch template's user data — run for real: a Debian container
// booted with systemd as PID 1, the release tarball, SHA256SUMS and a Node.js 24 tarball served from
// the emulator's S3 (moto; credentials from its IMDS, as an instance role's), and the script run as
// root with the environment the launch template sets (infra/lib/stack.ts). First a tampered tarball,
// refused before anything is unpacked or started; then the real one, ending with the unit active,
// `check` green and a signed job stored. The CloudWatch agent cannot be downloaded here: the script
// runs with CLOUDWATCH_AGENT=skip, which renders its configuration (checked) and installs nothing.
// Needs root; `npx vitest run --config test/systemd/vitest.config.ts test/systemd/bootstrap.test.ts`.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand, CreateBucketCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signJob } from '../../src/job/signature.ts';
import { jpegImage } from '../support/images.ts';
import { inlineJob, outcomes, sendJob } from '../support/jobs.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { createStack, listKeys, uniqueName, type Stack } from '../support/resources.ts';
import { freePort, until } from '../support/wait.ts';
import { boot, buildRelease, prepareRun, REPO, type Container, type Release } from './container.ts';

const exec = promisify(execFile);

const RUN_BOUND_SECONDS = 20 * 60;
const BOOTSTRAP = '/srv/infra/bootstrap.sh';
/** apt-get of the AWS CLI (Debian's awscli) on the first run, downloads, install.sh's check. */
const BOOTSTRAP_TIMEOUT_MS = 10 * 60_000;
const GOOD_PREFIX = 'releases/';
const TAMPERED_PREFIX = 'tampered/';
const NODE_VERSION = 'v24.21.0';

let moto: Moto;
let stack: Stack;
let box: Container;
let release: Release;
let secrets: SecretsManagerClient;
let releaseBucket = '';
let secretName = '';
let metricsPort = 0;
let nodeTarball = '';
const signingKey = randomBytes(32).toString('hex');

/**
 * What the launch template exports in front of the script (infra/lib/stack.ts), with the emulator's
 * values, plus the two variables that point the script and the worker at the emulator.
 */
function launchTemplateEnv(prefix: string): Record<string, string> {
  return {
    AWS_REGION: stack.region,
    RELEASE_BUCKET: releaseBucket,
    RELEASE_PREFIX: prefix,
    RELEASE_VERSION: release.version,
    NODE_TARBALL: nodeTarball,
    LOG_GROUP: 'EnrollmentWorker-WorkerLogs',
    METRICS_LOG_GROUP: 'EnrollmentWorker-WorkerMetricsLogs',
    METRICS_NAMESPACE: 'EnrollmentWorker/EnrollmentWorker',
    CLOUDWATCH_AGENT: 'skip',
    WORKER_AWS_REGION: stack.region,
    WORKER_SQS_QUEUE_URL: stack.jobsQueueUrl,
    WORKER_S3_BUCKET: stack.bucket,
    WORKER_STAGING_BUCKET: stack.stagingBucket ?? '',
    WORKER_STAGING_PREFIX: 'uploads/',
    WORKER_RESULT_QUEUE_URL: stack.resultQueueUrl ?? '',
    WORKER_SECRETS_MANAGER_SECRET_NAME: secretName,
    WORKER_DELETE_STAGED_SOURCES: 'true',
    WORKER_VISIBILITY_TIMEOUT_SECONDS: '60',
    WORKER_METRICS_PORT: String(metricsPort),
    // The emulator (on the host's loopback, which the container shares) and its IMDS: tests only.
    AWS_ENDPOINT_URL: moto.endpoint,
    // botocore joins its paths to this without a slash of its own.
    AWS_EC2_METADATA_SERVICE_ENDPOINT: `${moto.endpoint}/`,
    WORKER_AWS_ENDPOINT_URL: moto.endpoint,
    WORKER_AWS_EC2_METADATA_SERVICE_ENDPOINT: moto.endpoint,
  };
}

/** Runs the script as cloud-init runs user data: as root, its environment exported in front. */
function runBootstrap(prefix: string): Promise<{ code: number; out: string }> {
  const exports = Object.entries(launchTemplateEnv(prefix)).map(([k, v]) => `export ${k}='${v}'`);
  return box.sh([...exports, `bash ${BOOTSTRAP}`].join('\n'), { timeoutMs: BOOTSTRAP_TIMEOUT_MS });
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function put(key: string, body: Buffer | string): Promise<void> {
  await stack.s3.send(new PutObjectCommand({ Bucket: releaseBucket, Key: key, Body: body }));
}

/**
 * An "official" Node.js tarball as nodejs.org lays it out (node-vX-linux-ARCH/bin/node), made from
 * the Node 24 binary the repo's `node` devDependency carries, and its SHASUMS256.txt line.
 */
async function nodeTarballAndSums(): Promise<{ name: string; bytes: Buffer; sums: string }> {
  const name = `node-${NODE_VERSION}-linux-${process.arch}`;
  const work = await mkdtemp(join(tmpdir(), 'bootstrap-node-'));
  try {
    await exec('mkdir', ['-p', join(work, name, 'bin')]);
    await exec('cp', [await realpath(join(REPO, 'node_modules', 'node', 'bin', 'node')), join(work, name, 'bin', 'node')]);
    await exec('tar', ['-czf', join(work, `${name}.tar.gz`), '-C', work, name]);
    const bytes = await readFile(join(work, `${name}.tar.gz`));
    return { name: `${name}.tar.gz`, bytes, sums: `${sha256(Buffer.from('other'))}  node-${NODE_VERSION}.tar.gz\n${sha256(bytes)}  ${name}.tar.gz\n` };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The release `npm run release` already built from this commit (CI builds it just before; builds are
 * reproducible, so it is the same bytes), or a new build when there is none or the tree has changed.
 */
async function releaseOfThisCommit(): Promise<Release> {
  const git = async (...args: string[]) => (await exec('git', args, { cwd: REPO })).stdout.trim();
  const commit = await git('rev-parse', 'HEAD').catch(() => '');
  const modified = await git('status', '--porcelain', '--untracked-files=no').catch(() => 'unknown');
  const version = (JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
  const folder = `enrollment-worker-${version}-linux-${process.arch}`;
  const tarball = join(REPO, 'dist-release', `${folder}.tar.gz`);
  if (commit !== '' && modified === '') {
    const built = await exec('tar', ['-xzOf', tarball, `${folder}/RELEASE`]).then((r) => r.stdout, () => '');
    if (built.includes(`\ncommit=${commit}\n`)) {
      process.stderr.write(`[systemd-test] using ${tarball}, built from ${commit}\n`);
      return { version, tarball, folder };
    }
  }
  return buildRelease();
}

beforeAll(async () => {
  const { rootfs, results } = await prepareRun(RUN_BOUND_SECONDS);
  release = await releaseOfThisCommit();

  moto = await startMoto();
  stack = await createStack(moto.endpoint, uniqueName('bootstrap'));
  secrets = new SecretsManagerClient({ region: stack.region, endpoint: moto.endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  // As the stack makes it: a JSON settings secret holding a generated JOB_SIGNING_KEY.
  secretName = `${uniqueName('bootstrap')}/settings`;
  await secrets.send(new CreateSecretCommand({ Name: secretName, SecretString: JSON.stringify({ JOB_SIGNING_KEY: signingKey }) }));
  metricsPort = await freePort();

  // The release location: the release as `npm run release` made it, and Node.js beside it.
  releaseBucket = `${uniqueName('bootstrap')}-releases`;
  await stack.s3.send(new CreateBucketCommand({ Bucket: releaseBucket }));
  const tarball = await readFile(release.tarball);
  const sums = await readFile(join(release.tarball, '..', 'SHA256SUMS'), 'utf8');
  expect(sums).toContain(`${sha256(tarball)}  ${basename(release.tarball)}`);
  const node = await nodeTarballAndSums();
  nodeTarball = node.name;
  // The same files twice, except that under TAMPERED_PREFIX one byte of the release differs.
  const tampered = Buffer.from(tarball);
  const at = Math.floor(tampered.length / 2);
  tampered[at] = (tampered[at] ?? 0) ^ 0xff;
  for (const [prefix, bytes] of [[GOOD_PREFIX, tarball], [TAMPERED_PREFIX, tampered]] as const) {
    await put(`${prefix}${basename(release.tarball)}`, bytes);
    await put(`${prefix}SHA256SUMS`, sums);
    await put(`${prefix}${node.name}`, node.bytes);
    await put(`${prefix}SHASUMS256.txt`, node.sums);
  }

  box = await boot({ rootfs, results, lifetimeSeconds: RUN_BOUND_SECONDS, bindReadOnly: { [join(REPO, 'infra', 'bootstrap')]: '/srv/infra' } });
  // debootstrap leaves no /etc/hosts; every real instance has one.
  await box.ok("[ -e /etc/hosts ] || printf '127.0.0.1 localhost\\n::1 localhost ip6-localhost ip6-loopback\\n' > /etc/hosts");
}, RUN_BOUND_SECONDS * 1000);

afterAll(async () => {
  if (box) {
    await box.sh('journalctl -b --no-pager > /results/journal-all.txt; cp /var/log/enrollment-worker-bootstrap.log /results/ 2>/dev/null').catch(() => undefined);
    await box.poweroff();
    process.stderr.write(`[systemd-test] kept: ${box.results}\n`);
  }
  secrets?.destroy();
  stack?.sqs.destroy();
  stack?.s3.destroy();
  await moto?.stop();
}, 120_000);

describe('infra/bootstrap/bootstrap.sh, the launch template\'s user data, under a real systemd', { sequential: true }, () => {
  it('refuses a release tarball that does not match SHA256SUMS, and installs and starts nothing', async () => {
    const { code, out } = await runBootstrap(TAMPERED_PREFIX);
    expect(code, out).toBe(1);
    expect(out).toContain(`bootstrap: FAILED: ${basename(release.tarball)} does not match its checksum in SHA256SUMS: refused, nothing installed`);
    // Node.js came first (its own checksum matched); nothing of the worker is anywhere.
    expect(out).toContain(`bootstrap: ${nodeTarball}: checksum OK`);
    const left = await box.sh('ls -d /opt/enrollment-worker* /etc/enrollment-worker/enrollment-worker.env /etc/systemd/system/enrollment-worker* 2>/dev/null; systemctl list-units --all --no-legend "enrollment-worker*"');
    expect(left.out.trim()).toBe('');
    expect((await box.sh(`ls /var/lib/enrollment-worker-bootstrap/release-${release.version}`)).out.trim()).toBe(`SHA256SUMS\n${basename(release.tarball)}`);
  }, BOOTSTRAP_TIMEOUT_MS);

  it('installs Node.js 24 and the release from S3, verified, and starts the worker: active, check green', async () => {
    const { code, out } = await runBootstrap(GOOD_PREFIX);
    expect(code, out).toBe(0);
    expect(out).toContain(`bootstrap: ${basename(release.tarball)}: checksum OK`);
    expect(out).toContain('bootstrap: CloudWatch agent: skipped (CLOUDWATCH_AGENT=skip)');
    expect(out).toContain(`bootstrap: done: enrollment-worker ${release.version} is running`);
    expect((await box.ok('readlink -f /usr/bin/node; /usr/bin/node --version')).trim()).toBe(`/usr/local/bin/node\n${NODE_VERSION}`);

    expect((await box.sh('systemctl is-active enrollment-worker.service')).out.trim()).toBe('active');
    expect((await box.sh('systemctl is-enabled enrollment-worker.service')).out.trim()).toBe('enabled');
    const check = await box.sh('/opt/enrollment-worker/install.sh --check', { timeoutMs: 120_000 });
    expect(check.code, check.out).toBe(0);
    expect(check.out).not.toContain('✗');
    expect(check.out).toContain('✓');

    // The settings file: the launch template's WORKER_ values, root's only, no signing key in it.
    const settings = await box.ok('stat -c %a /etc/enrollment-worker/enrollment-worker.env; cat /etc/enrollment-worker/enrollment-worker.env');
    expect(settings).toMatch(/^640\n/);
    expect(settings).toContain(`SQS_QUEUE_URL=${stack.jobsQueueUrl}\n`);
    expect(settings).toContain(`SECRETS_MANAGER_SECRET_NAME=${secretName}\n`);
    expect(settings).not.toContain('JOB_SIGNING_KEY');
    expect(settings).not.toContain(signingKey);
  }, BOOTSTRAP_TIMEOUT_MS);

  it('the worker takes a signed job and stores it', async () => {
    const body = JSON.stringify(inlineJob('bootstrap-user', [await jpegImage()], 'bootstrapped'));
    await sendJob(stack, body, { Signature: { DataType: 'String', StringValue: signJob(body, signingKey) } });
    const results = await outcomes(stack, 1, 60_000);
    expect(results.map((o) => [o.jobId, o.status])).toEqual([['bootstrapped', 'succeeded']]);
    expect(await listKeys(stack.s3, stack.bucket, 'users/bootstrap-user/')).toHaveLength(1);
  });

  it("the journal reaches the file the CloudWatch agent reads, and the agent's configuration is rendered", async () => {
    // The forwarder follows the journal: the job's line arrives a moment after the job.
    const journal = await until(
      'the job\'s line in the forwarded journal',
      async () => {
        const text = await box.ok('cat /var/log/enrollment-worker/journal.log');
        return text.includes('"jobId":"bootstrapped"') ? text : undefined;
      },
      30_000,
      { everyMs: 500 },
    );
    expect(journal).toContain('"msg":"ready: receiving jobs"');
    const agent = JSON.parse(await box.ok('cat /opt/aws/amazon-cloudwatch-agent/etc/enrollment-worker.json')) as { logs: { logs_collected: { files: { collect_list: { log_group_name: string; file_path: string }[] } }; metrics_collected: { prometheus: { emf_processor: { metric_namespace: string } } } } };
    expect(agent.logs.logs_collected.files.collect_list).toEqual([expect.objectContaining({ file_path: '/var/log/enrollment-worker/journal.log', log_group_name: 'EnrollmentWorker-WorkerLogs' })]);
    expect(agent.logs.metrics_collected.prometheus.emf_processor.metric_namespace).toBe('EnrollmentWorker/EnrollmentWorker');
    const scrape = await box.ok('cat /opt/aws/amazon-cloudwatch-agent/etc/enrollment-worker-prometheus.yaml');
    expect(scrape).toContain(`targets: ["127.0.0.1:${String(metricsPort)}"]`);
    expect(scrape).not.toContain('@');
    // What the scrape would get: the worker's /metrics holds every metric of the allow-list.
    const metrics = await box.ok(`node -e 'fetch("http://127.0.0.1:${String(metricsPort)}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))'`);
    const allowList = /regex: "([^"]+)"/.exec(scrape)?.[1]?.split('|') ?? [];
    expect(allowList.length).toBeGreaterThan(3);
    for (const name of allowList) expect(metrics).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
  });
});
