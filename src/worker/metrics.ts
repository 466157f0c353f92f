/**
 * What the worker counts, and how it shows it: one set of counters — a message counted as received
 * where the daemon starts judging it, and its fate only in `settle`, where it is decided (so once) —
 * and gauges read from the consumer and the memory budgets when scraped. Shown by the systemd status
 * line and by Prometheus on an optional loopback port (METRICS_PORT), with a health check beside it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MemoryBudget } from '../enroll/memory.ts';
import type { ConsumerHealth } from './consumer.ts';

/** The figures of the status line, kept by the counters. */
export interface JobStats {
  readonly succeeded: number;
  readonly failed: number;
  readonly retried: number;
  readonly released: number;
  readonly timedOut: number;
  readonly lastSuccessAt: number | undefined;
}

export interface JobCounters {
  readonly stats: JobStats;
  received(): void;
  succeeded(seconds: number): void;
  failed(code: string, seconds: number): void;
  /** `reason`: throttled, server, network, timeout (JOB_TIMEOUT_SECONDS), configuration, … */
  retried(reason: string, seconds: number): void;
  released(): void;
  /** A reference stored, by how: `rebuilt` (written anew, pixels untouched), `turned` (upright in the coefficient domain) or `reencoded`. */
  stored(path: string): void;
  /** One image's face check (FACE_CHECK=one): `ok`, or the code that failed its job. */
  faceChecked(result: string): void;
}

export function createJobCounters(registry: Registry): JobCounters {
  const stats = { succeeded: 0, failed: 0, retried: 0, released: 0, timedOut: 0, lastSuccessAt: undefined as number | undefined };
  const received = new Counter({ name: 'enrollment_jobs_received_total', help: 'Job messages received', registers: [registry] });
  const succeeded = new Counter({ name: 'enrollment_jobs_succeeded_total', help: 'Jobs stored', registers: [registry] });
  const failed = new Counter({ name: 'enrollment_jobs_failed_total', help: 'Jobs failed permanently, by error code', labelNames: ['code'], registers: [registry] });
  const retried = new Counter({ name: 'enrollment_jobs_retried_total', help: 'Transient failures left for a retry, by reason: throttled, server, network, timeout (a call\'s or the job\'s deadline), credentials, configuration, changed (a staged object replaced while the job read it), other', labelNames: ['reason'], registers: [registry] });
  const released = new Counter({ name: 'enrollment_jobs_released_total', help: 'Messages handed back to the queue at shutdown (a stop that drains)', registers: [registry] });
  const references = new Counter({ name: 'enrollment_references_stored_total', help: 'References stored, by path (rebuilt, turned or reencoded)', labelNames: ['path'], registers: [registry] });
  const faceChecks = new Counter({ name: 'enrollment_face_checks_total', help: 'Face checks (FACE_CHECK=one), by result: ok, NO_FACE, MULTIPLE_FACES, FACE_TOO_SMALL', labelNames: ['result'], registers: [registry] });
  const duration = new Histogram({
    name: 'enrollment_job_duration_seconds',
    help: 'Time from receipt to verdict, by outcome: succeeded, failed, retry',
    labelNames: ['outcome'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const lastSuccess = new Gauge({ name: 'enrollment_last_success_timestamp_seconds', help: 'When a job last succeeded (Unix time)', registers: [registry] });
  return {
    stats,
    received: () => received.inc(),
    succeeded(seconds) {
      stats.succeeded += 1;
      stats.lastSuccessAt = Date.now();
      succeeded.inc();
      lastSuccess.set(stats.lastSuccessAt / 1000);
      duration.observe({ outcome: 'succeeded' }, seconds);
    },
    failed(code, seconds) {
      stats.failed += 1;
      failed.inc({ code });
      duration.observe({ outcome: 'failed' }, seconds);
    },
    retried(reason, seconds) {
      stats.retried += 1;
      if (reason === 'timeout') stats.timedOut += 1;
      retried.inc({ reason });
      duration.observe({ outcome: 'retry' }, seconds);
    },
    released() {
      stats.released += 1;
      released.inc();
    },
    stored: (path) => references.inc({ path }),
    faceChecked: (result) => faceChecks.inc({ result }),
  };
}

/** The gauges read from the consumer when Prometheus scrapes. */
export function registerConsumerGauges(registry: Registry, health: () => ConsumerHealth): void {
  new Gauge({
    name: 'enrollment_jobs_in_flight',
    help: 'Jobs being processed now',
    registers: [registry],
    collect() {
      this.set(health().inFlight);
    },
  });
  new Gauge({
    name: 'enrollment_slots_stuck',
    help: 'Slots whose job outlived JOB_TIMEOUT_SECONDS and has not stopped',
    registers: [registry],
    collect() {
      this.set(health().stuck);
    },
  });
  new Gauge({
    name: 'enrollment_last_receive_timestamp_seconds',
    help: 'When a receive from the jobs queue last answered (Unix time)',
    registers: [registry],
    collect() {
      const at = health().lastReceiveAt;
      if (at !== undefined) this.set(at / 1000);
    },
  });
}

/** The two shares of MAX_IN_FLIGHT_BYTES (docs/images.md "Memory"), read when Prometheus scrapes. */
export function registerMemoryGauges(registry: Registry, shares: { readonly held: MemoryBudget; readonly decode: MemoryBudget }): void {
  const gauge = (name: string, help: string, read: (budget: MemoryBudget) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['share'],
      registers: [registry],
      collect() {
        for (const [share, budget] of Object.entries(shares)) this.set({ share }, read(budget));
      },
    });
  gauge('enrollment_memory_budget_bytes', 'The share of MAX_IN_FLIGHT_BYTES: held (image bytes) or decode', (b) => b.limit);
  gauge('enrollment_memory_in_use_bytes', 'Bytes admitted against the share (held or decode) now; the held share includes the room the long poll in flight holds for what it may bring (an idle worker shows min(10, CONCURRENCY) MiB)', (b) => b.held);
  gauge('enrollment_memory_waiting', 'Jobs or decodes waiting for room in the share (held or decode) now', (b) => b.waiting);
}

/**
 * Healthy while receives answer (a long poll returns at least every POLL_WAIT_SECONDS), or while
 * every slot is busy with a job and no receive is due — but not while a slot is stuck past its
 * deadline, nor for `timeoutWindowMs` after a job was abandoned at its deadline (a stall that times
 * jobs out is an outage, and a scrape every few seconds must see it).
 */
export function isHealthy(health: ConsumerHealth, options: { staleAfterMs: number; timeoutWindowMs: number }, now = Date.now()): boolean {
  if (health.stuck > 0) return false;
  if (health.lastTimeoutAt !== undefined && now - health.lastTimeoutAt < options.timeoutWindowMs) return false;
  if (health.inFlight >= health.slots) return true;
  return health.lastReceiveAt !== undefined && now - health.lastReceiveAt <= options.staleAfterMs;
}

export function startMetricsServer(options: {
  host: string;
  port: number;
  registry: Registry;
  health: () => ConsumerHealth;
  staleAfterMs: number;
  timeoutWindowMs: number;
}): Promise<Server> {
  collectDefaultMetrics({ register: options.registry });
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
    } else if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (path === '/healthz') {
      const health = options.health();
      const healthy = isHealthy(health, options);
      const body = JSON.stringify({
        status: healthy ? 'ok' : 'unhealthy',
        lastReceiveAt: health.lastReceiveAt === undefined ? null : new Date(health.lastReceiveAt).toISOString(),
        inFlight: health.inFlight,
        stuck: health.stuck,
        lastTimeoutAt: health.lastTimeoutAt === undefined ? null : new Date(health.lastTimeoutAt).toISOString(),
      });
      res.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' }).end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
