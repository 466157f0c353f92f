// Pure parts of operating the worker: the systemd status line and watchdog interval, health, and
// what a reload may change live.
import { describe, expect, it } from 'vitest';
import { formatChecks } from '../../src/check.ts';
import { parseConfig } from '../../src/config.ts';
import { isHealthy } from '../../src/worker/metrics.ts';
import { describeStats, statusLine, watchdogIntervalMs } from '../../src/worker/notify.ts';
import { applyReload, reloadPlan, reloadRefusal } from '../../src/worker/reload.ts';

const env = {
  SQS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs',
  S3_BUCKET: 'refs',
  AWS_REGION: 'us-east-1',
  ALLOW_UNSIGNED_JOBS: 'true',
};

describe('watchdogIntervalMs', () => {
  it('pings at half the interval systemd asked for', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42)).toBe(15_000);
  });

  it('is for this process only when WATCHDOG_PID names it', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42)).toBeUndefined();
  });

  it.each([[undefined], [''], ['0'], ['-5'], ['abc']])('is off for WATCHDOG_USEC=%s', (usec) => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: usec }, 42)).toBeUndefined();
  });
});

describe('the status line', () => {
  it('says what is in flight, done, failed and when the last job succeeded', () => {
    const text = describeStats({ inFlight: 3, succeeded: 120, failed: 4, retried: 2, lastSuccessAt: 10_000 }, 22_000);
    expect(text).toBe('in flight 3; succeeded 120, failed 4, retried 2; last success 12s ago');
  });

  it('says "none yet" before the first success', () => {
    expect(describeStats({ inFlight: 0, succeeded: 0, failed: 0, retried: 0, lastSuccessAt: undefined })).toMatch(/last success none yet$/);
  });

  it('is one bounded line', () => {
    expect(statusLine(`a\nb\r\nc${"x".repeat(500)}`)).toMatch(/^a b cx+$/);
    expect(statusLine('x'.repeat(500))).toHaveLength(200);
  });
});

describe('isHealthy', () => {
  const WINDOWS = { staleAfterMs: 60_000, timeoutWindowMs: 25_000 };
  const health = (lastReceiveAt: number | undefined, more: { inFlight?: number; stuck?: number; lastTimeoutAt?: number } = {}) => ({
    lastReceiveAt,
    inFlight: more.inFlight ?? 0,
    slots: 4,
    stuck: more.stuck ?? 0,
    lastTimeoutAt: more.lastTimeoutAt,
  });

  it('is healthy while receives answer', () => {
    expect(isHealthy(health(1_000), WINDOWS, 50_000)).toBe(true);
  });

  it('is unhealthy when no receive answered for too long, or none ever did', () => {
    expect(isHealthy(health(1_000), WINDOWS, 70_000)).toBe(false);
    expect(isHealthy(health(undefined), WINDOWS, 70_000)).toBe(false);
  });

  it('is healthy while every slot is busy, when no receive is due', () => {
    expect(isHealthy(health(1_000, { inFlight: 4 }), WINDOWS, 700_000)).toBe(true);
  });

  it('is unhealthy while a slot is stuck past its deadline, even with every slot busy', () => {
    expect(isHealthy(health(50_000, { inFlight: 4, stuck: 1 }), WINDOWS, 50_000)).toBe(false);
  });

  it('is unhealthy for JOB_TIMEOUT_SECONDS after a job was abandoned at its deadline, then healthy again', () => {
    expect(isHealthy(health(50_000, { lastTimeoutAt: 40_000 }), WINDOWS, 50_000)).toBe(false);
    expect(isHealthy(health(70_000, { lastTimeoutAt: 40_000 }), WINDOWS, 70_000)).toBe(true);
  });

  it('counts both windows to the millisecond: healthy exactly at their ends', () => {
    expect(isHealthy(health(10_000), WINDOWS, 70_000)).toBe(true);
    expect(isHealthy(health(10_001), WINDOWS, 70_002)).toBe(false);
    expect(isHealthy(health(65_000, { lastTimeoutAt: 40_000 }), WINDOWS, 65_000)).toBe(true);
    expect(isHealthy(health(64_999, { lastTimeoutAt: 40_000 }), WINDOWS, 64_999)).toBe(false);
  });
});

describe('reload', () => {
  it('applies settings read per job at once, and keeps those the pool was built from until a restart', () => {
    const current = parseConfig(env);
    const next = parseConfig({ ...env, MAX_IMAGES_PER_JOB: '3', CONCURRENCY: '64', LOG_LEVEL: 'debug' });

    const plan = reloadPlan(current, next);
    const applied = applyReload(current, next);

    expect(plan).toEqual({ live: ['maxImagesPerJob', 'logLevel'], restart: ['concurrency'] });
    expect(applied.maxImagesPerJob).toBe(3);
    expect(applied.logLevel).toBe('debug');
    expect(applied.concurrency).toBe(16);
    expect(Object.isFrozen(applied)).toBe(true);
  });

  it('changes nothing when nothing changed', () => {
    expect(reloadPlan(parseConfig(env), parseConfig(env))).toEqual({ live: [], restart: [] });
  });

  it('says so when a key is swapped (compared by fingerprint, not by the masked form)', () => {
    const current = parseConfig({ ...env, JOB_SIGNING_KEY: 'a'.repeat(40) });
    const swapped = parseConfig({ ...env, JOB_SIGNING_KEY: 'b'.repeat(40) });
    const same = parseConfig({ ...env, JOB_SIGNING_KEY: 'a'.repeat(40) });

    expect(reloadPlan(current, swapped)).toEqual({ live: ['signingKeys'], restart: [] });
    expect(reloadPlan(current, same)).toEqual({ live: [], restart: [] });
  });
});

describe('formatChecks', () => {
  it('prints ✓ lines, and ✗ lines with the fix under them', () => {
    const text = formatChecks([
      { name: 'credentials', ok: true, detail: 'IMDSv2' },
      { name: 'jobs queue', ok: false, detail: 'QueueDoesNotExist', hint: 'check SQS_QUEUE_URL' },
    ]);
    expect(text).toBe('✓ credentials: IMDSv2\n✗ jobs queue: QueueDoesNotExist\n    fix: check SQS_QUEUE_URL');
  });

  it('prints no fix line for a failed check without one', () => {
    expect(formatChecks([{ name: 'face check', ok: false, detail: 'no model' }])).toBe('✗ face check: no model');
  });
});

describe('reloadRefusal', () => {
  const keyed = { ...env, JOB_SIGNING_KEY: 'k'.repeat(40) };

  it('refuses a secret that lost the signing key while signatures are checked', () => {
    expect(reloadRefusal(parseConfig(keyed), parseConfig(env))).toMatch(/^JOB_SIGNING_KEY is gone from the secret/);
  });

  it('allows a rotation, and a worker without a key to get one', () => {
    expect(reloadRefusal(parseConfig(keyed), parseConfig({ ...env, JOB_SIGNING_KEY: 'n'.repeat(40), JOB_SIGNING_KEY_PREVIOUS: 'k'.repeat(40) }))).toBeUndefined();
    expect(reloadRefusal(parseConfig(env), parseConfig(keyed))).toBeUndefined();
  });

  it('refuses a result queue that is the queue the worker consumes, even when the new settings name another jobs queue', () => {
    // Prepare: the reload moves SQS_QUEUE_URL (which needs a restart) and points results at the running one.
    const running = parseConfig(env);
    const next = parseConfig({
      ...env,
      SQS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs-v2',
      RESULT_QUEUE_URL: 'https://queue.amazonaws.com/123456789012/jobs/',
    });

    // Assess
    expect(reloadRefusal(running, next)).toBe(`RESULT_QUEUE_URL must not be the jobs queue this worker consumes (${env.SQS_QUEUE_URL})`);
  });
});
