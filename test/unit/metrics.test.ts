// What /metrics shows (src/worker/metrics.ts): each counter and gauge read back from the registry's
// text, by name and labels, with exact values — so a counter that is never incremented, or a
// label that is wrong, fails here.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMemoryBudget } from '../../src/enroll/memory.ts';
import { createJobCounters, registerConsumerGauges, registerMemoryGauges } from '../../src/worker/metrics.ts';
import { parseMetrics } from '../support/metrics.ts';

describe('job counters', () => {
  it('count each fate by its label, and keep the status line figures', async () => {
    // Prepare
    const registry = new Registry();
    const counters = createJobCounters(registry);

    // Act
    for (let i = 0; i < 3; i += 1) counters.received();
    counters.succeeded(0.2);
    counters.succeeded(0.3);
    counters.failed('INVALID_IMAGE', 0.1);
    counters.retried('server', 0.4);
    counters.retried('timeout', 30);
    counters.retried('timeout', 30);
    counters.released();
    counters.stored('lossless');
    counters.stored('reencoded');
    counters.stored('reencoded');
    counters.faceChecked('ok');
    counters.faceChecked('NO_FACE');
    counters.faceChecked('NO_FACE');
    const metrics = parseMetrics(await registry.metrics());

    // Assess
    expect(metrics).toMatchObject({
      enrollment_jobs_received_total: 3,
      enrollment_jobs_succeeded_total: 2,
      'enrollment_jobs_failed_total{code="INVALID_IMAGE"}': 1,
      'enrollment_jobs_retried_total{reason="server"}': 1,
      'enrollment_jobs_retried_total{reason="timeout"}': 2,
      enrollment_jobs_released_total: 1,
      'enrollment_references_stored_total{path="lossless"}': 1,
      'enrollment_references_stored_total{path="reencoded"}': 2,
      'enrollment_face_checks_total{result="ok"}': 1,
      'enrollment_face_checks_total{result="NO_FACE"}': 2,
      'enrollment_job_duration_seconds_count{outcome="succeeded"}': 2,
      'enrollment_job_duration_seconds_sum{outcome="succeeded"}': 0.5,
      'enrollment_job_duration_seconds_count{outcome="failed"}': 1,
      'enrollment_job_duration_seconds_count{outcome="retry"}': 3,
      'enrollment_job_duration_seconds_bucket{le="0.5",outcome="retry"}': 1,
      'enrollment_job_duration_seconds_bucket{le="30",outcome="retry"}': 3,
    });
    expect(metrics.enrollment_last_success_timestamp_seconds).toBeCloseTo((counters.stats.lastSuccessAt ?? 0) / 1000, 3);
    expect(counters.stats).toMatchObject({ succeeded: 2, failed: 1, retried: 3, released: 1, timedOut: 2 });
  });
});

describe('gauges read when scraped', () => {
  it('show the consumer and the memory shares as they are at the scrape', async () => {
    // Prepare
    const registry = new Registry();
    const health = { lastReceiveAt: 1_700_000_000_000, inFlight: 3, slots: 4, stuck: 1, lastTimeoutAt: undefined };
    registerConsumerGauges(registry, () => health);
    const held = createMemoryBudget(1000);
    const decode = createMemoryBudget(2000);
    registerMemoryGauges(registry, { held, decode });
    const grant = await held.acquire(600);

    // Act
    const busy = parseMetrics(await registry.metrics());
    grant.release();
    health.inFlight = 0;
    const idle = parseMetrics(await registry.metrics());

    // Assess
    expect(busy).toMatchObject({
      enrollment_jobs_in_flight: 3,
      enrollment_slots_stuck: 1,
      enrollment_last_receive_timestamp_seconds: 1_700_000_000,
      'enrollment_memory_budget_bytes{share="held"}': 1000,
      'enrollment_memory_budget_bytes{share="decode"}': 2000,
      'enrollment_memory_in_use_bytes{share="held"}': 600,
      'enrollment_memory_in_use_bytes{share="decode"}': 0,
      'enrollment_memory_waiting{share="held"}': 0,
    });
    expect(idle).toMatchObject({ enrollment_jobs_in_flight: 0, 'enrollment_memory_in_use_bytes{share="held"}': 0 });
  });

  it('show no last receive before the first one (0, not NaN)', async () => {
    const registry = new Registry();
    registerConsumerGauges(registry, () => ({ lastReceiveAt: undefined, inFlight: 0, slots: 4, stuck: 0, lastTimeoutAt: undefined }));
    expect(parseMetrics(await registry.metrics()).enrollment_last_receive_timestamp_seconds).toBe(0);
  });
});
