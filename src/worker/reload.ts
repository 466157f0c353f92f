/**
 * What a reload (SIGHUP) may change while jobs run. Settings read per job take effect for the next
 * job; settings the running pool was built from need a restart, and the reload says so.
 */
import { sameQueue } from '../aws/sqs-rules.ts';
import type { Config } from '../config.ts';

const NEEDS_RESTART: ReadonlyArray<keyof Config> = [
  'queueUrl',
  'region',
  'endpoint',
  'concurrency',
  'visibilityTimeoutSeconds',
  'heartbeatIntervalSeconds',
  'pollWaitSeconds',
  'deadLetterQueueUrl',
  'metricsPort',
  'metricsHost',
  // The consumer's budget and deadline are set when it is built.
  'maxInFlightBytes',
  'jobTimeoutSeconds',
  // The face detector's threads are started (or not) at start.
  'faceCheck',
  'faceThreads',
  // The stop's forced-exit guard is set from it when the signal handlers are installed.
  'drainTimeoutSeconds',
  // The tracer and its exporter are built at start (and come from the environment only).
  'tracing',
];

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Names of the settings that differ, split by when they take effect. */
export function reloadPlan(current: Config, next: Config): { live: string[]; restart: string[] } {
  const changed = (Object.keys(next) as (keyof Config)[]).filter(
    (k) => k !== 'fromSecret' && !same(current[k], next[k]),
  );
  return {
    live: changed.filter((k) => !NEEDS_RESTART.includes(k)),
    restart: changed.filter((k) => NEEDS_RESTART.includes(k)),
  };
}

/**
 * Why a reload must be refused, if it must: a secret that lost its signing key would switch job
 * authentication off in a running worker without a word. Turning it off takes a restart, where the
 * start-up warning says so.
 */
export function reloadRefusal(current: Config, next: Config): string | undefined {
  if (current.signingKeys.current !== undefined && next.signingKeys.current === undefined) {
    return 'JOB_SIGNING_KEY is gone from the secret: a reload does not switch job authentication off (restart to do that)';
  }
  // The new settings were checked against their own SQS_QUEUE_URL, which a reload does not apply:
  // the result queue must not be the queue this worker is consuming.
  if (next.resultQueueUrl !== undefined && sameQueue(next.resultQueueUrl, current.queueUrl)) {
    return `RESULT_QUEUE_URL must not be the jobs queue this worker consumes (${current.queueUrl})`;
  }
  return undefined;
}

/** The config to run with after a reload: the new values, except those that need a restart. */
export function applyReload(current: Config, next: Config): Config {
  const kept = Object.fromEntries(NEEDS_RESTART.map((k) => [k, current[k]]));
  return Object.freeze({ ...next, ...kept });
}
