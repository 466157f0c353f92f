// Picks the AWS API emulator the integration tests run against, and says which on stderr:
//   1. TEST_AWS_ENDPOINT_URL: one already running (CI service, docker-compose LocalStack, …);
//   2. LocalStack in a container, when a container runtime answers;
//   3. moto_server as a local process.
// TEST_EMULATOR=moto|localstack forces 2 or 3 and fails loudly when that one cannot start.
import { existsSync } from 'node:fs';

import { startImds, type Imds } from './imds.ts';
import { MOTO_VERSION, startMoto } from './moto.ts';
import { whyNoAnswer } from './wait.ts';

export const ENDPOINT_ENV = 'TEST_AWS_ENDPOINT_URL';
export const IMDS_ENDPOINT_ENV = 'TEST_IMDS_ENDPOINT';
export const FORCE_ENV = 'TEST_EMULATOR';
export const LOCALSTACK_IMAGE_ENV = 'LOCALSTACK_IMAGE';
/** The last LocalStack image that starts without an auth token. */
export const DEFAULT_LOCALSTACK_IMAGE = 'localstack/localstack:4.14.0';

export interface Emulator {
  kind: 'endpoint' | 'localstack' | 'moto';
  /** Base URL for every SDK client (SQS, S3, Secrets Manager, STS). */
  endpoint: string;
  /** Value for AWS_EC2_METADATA_SERVICE_ENDPOINT. */
  imdsEndpoint: string;
  /** The line announced on stderr, without the `[emulator] ` prefix. */
  description: string;
  /** Set for kind `moto`: a test may SIGSTOP / SIGCONT it to simulate an unresponsive AWS. */
  motoPid?: number;
  /** Stops whatever this call started (never a given endpoint); safe to call twice. */
  stop(): Promise<void>;
}

function announce(description: string): void {
  process.stderr.write(`[emulator] ${description}\n`);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function once(stop: () => Promise<void>): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => (stopping ??= stop());
}

async function useGivenEndpoint(given: string, env: NodeJS.ProcessEnv): Promise<Emulator> {
  let endpoint: string;
  try {
    endpoint = new URL(given).toString().replace(/\/+$/, '');
  } catch {
    throw new Error(`${ENDPOINT_ENV}=${given} is not a URL; expected e.g. http://127.0.0.1:4566`);
  }
  const problem = await whyNoAnswer(endpoint, 5_000);
  if (problem !== undefined) throw new Error(`${ENDPOINT_ENV}=${endpoint} does not answer (${problem}); start the emulator or unset ${ENDPOINT_ENV}`);

  const givenImds = env[IMDS_ENDPOINT_ENV];
  const imds = givenImds !== undefined && givenImds !== '' ? undefined : await startImds();
  const imdsEndpoint = imds?.endpoint ?? givenImds ?? '';
  const description = `endpoint ${endpoint} (from ${ENDPOINT_ENV}); IMDS at ${imdsEndpoint} (${imds === undefined ? `from ${IMDS_ENDPOINT_ENV}` : 'started here'})`;
  announce(description);
  return { kind: 'endpoint', endpoint, imdsEndpoint, description, stop: once(async () => imds?.stop()) };
}

/** undefined when a container runtime answers; otherwise why not. */
async function containerRuntimeProblem(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  try {
    // Loaded only here, so the moto path never pays for dockerode.
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return undefined;
  } catch (e: unknown) {
    // testcontainers' own message names no cause (that goes to its debug log): add where it looked.
    const socket = existsSync('/var/run/docker.sock') ? 'present' : 'absent';
    return `${messageOf(e)} (DOCKER_HOST ${env.DOCKER_HOST ?? 'unset'}, /var/run/docker.sock ${socket}; DEBUG=testcontainers* shows more)`;
  }
}

async function startLocalstack(env: NodeJS.ProcessEnv, why: string): Promise<Emulator> {
  const { LocalstackContainer } = await import('@testcontainers/localstack');
  const image = env[LOCALSTACK_IMAGE_ENV] ?? DEFAULT_LOCALSTACK_IMAGE;
  const container = new LocalstackContainer(image);
  const token = env.LOCALSTACK_AUTH_TOKEN;
  if (token !== undefined && token !== '') container.withEnvironment({ LOCALSTACK_AUTH_TOKEN: token });

  let imds: Imds | undefined;
  try {
    // LocalStack serves no IMDS, so the worker's credentials come from a local one.
    imds = await startImds();
    const started = await container.start();
    const endpoint = started.getConnectionUri();
    const imdsEndpoint = imds.endpoint;
    const description = `LocalStack ${image} at ${endpoint} (${why}); IMDS at ${imdsEndpoint}`;
    announce(description);
    const stopImds = imds;
    return {
      kind: 'localstack',
      endpoint,
      imdsEndpoint,
      description,
      stop: once(async () => {
        await stopImds.stop();
        await started.stop();
      }),
    };
  } catch (e: unknown) {
    await imds?.stop();
    const hint = token === undefined || token === '' ? ` (images newer than ${DEFAULT_LOCALSTACK_IMAGE} need LOCALSTACK_AUTH_TOKEN)` : '';
    throw new Error(`LocalStack ${image} did not start: ${messageOf(e)}${hint}`, { cause: e });
  }
}

async function startMotoEmulator(env: NodeJS.ProcessEnv, why: string): Promise<Emulator> {
  const moto = await startMoto(env);
  const versionNote = moto.version === MOTO_VERSION ? '' : ` — expected ${MOTO_VERSION}`;
  // moto serves IMDS at its root, so no separate server is needed.
  const description = `moto_server ${moto.version}${versionNote} at ${moto.endpoint} (${why})`;
  announce(description);
  return {
    kind: 'moto',
    endpoint: moto.endpoint,
    imdsEndpoint: moto.endpoint,
    description,
    motoPid: moto.pid,
    stop: once(moto.stop),
  };
}

/** Starts (or adopts) an emulator, following the order in this file's header. */
export async function startEmulator(env: NodeJS.ProcessEnv = process.env): Promise<Emulator> {
  const forced = env[FORCE_ENV] ?? '';
  if (forced !== '' && forced !== 'moto' && forced !== 'localstack') {
    throw new Error(`${FORCE_ENV}=${forced} is not understood; use moto or localstack, or leave it unset to choose automatically`);
  }
  const given = env[ENDPOINT_ENV] ?? '';
  const ignored = given !== '' ? `; ${ENDPOINT_ENV} ignored` : '';

  if (forced === 'moto') return startMotoEmulator(env, `forced by ${FORCE_ENV}=moto${ignored}`);
  if (forced === 'localstack') {
    const problem = await containerRuntimeProblem(env);
    if (problem !== undefined) throw new Error(`${FORCE_ENV}=localstack but no container runtime answers: ${problem}`);
    return startLocalstack(env, `forced by ${FORCE_ENV}=localstack${ignored}`);
  }

  if (given !== '') return useGivenEndpoint(given, env);

  const problem = await containerRuntimeProblem(env);
  if (problem !== undefined) return startMotoEmulator(env, `no container runtime: ${problem}`);
  try {
    return await startLocalstack(env, 'container runtime found');
  } catch (e: unknown) {
    // A runtime that cannot run LocalStack (offline pull, missing token) still leaves moto usable;
    // the announcement says why it was chosen.
    const localstackProblem = messageOf(e);
    try {
      return await startMotoEmulator(env, `container runtime found but ${localstackProblem}`);
    } catch (motoError: unknown) {
      throw new Error(`no emulator could start.\nLocalStack: ${localstackProblem}\nmoto: ${messageOf(motoError)}`, { cause: motoError });
    }
  }
}
