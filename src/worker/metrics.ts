/**
 * Prometheus metrics and a health check on an optional loopback port (METRICS_PORT). The job
 * counters are fed from one place — the wrapper around each message's fate — so they agree with
 * the log lines; polling health comes from the consumer pool's own state.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MessageVerdict } from './job-message.ts';

export interface JobMetrics {
  received(): void;
  finished(verdict: MessageVerdict, seconds: number): void;
}

export interface PollingHealth {
  /** Epoch ms of the last receive that answered (with or without messages). */
  readonly lastReceiveAt: number | undefined;
  readonly inFlight: number;
  /** CONCURRENCY: when every slot is busy, no receive is due, and that is healthy. */
  readonly slots: number;
}

export function createJobMetrics(registry: Registry, health: PollingHealth): JobMetrics {
  const received = new Counter({ name: 'enrollment_jobs_received_total', help: 'Job messages received', registers: [registry] });
  const succeeded = new Counter({ name: 'enrollment_jobs_succeeded_total', help: 'Jobs stored', registers: [registry] });
  const failed = new Counter({
    name: 'enrollment_jobs_failed_total',
    help: 'Jobs failed permanently, by error code',
    labelNames: ['code'],
    registers: [registry],
  });
  const retried = new Counter({ name: 'enrollment_jobs_retried_total', help: 'Transient failures left for a retry', registers: [registry] });
  const duration = new Histogram({
    name: 'enrollment_job_duration_seconds',
    help: 'Time from receipt to verdict, by outcome',
    labelNames: ['outcome'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const lastSuccess = new Gauge({
    name: 'enrollment_last_success_timestamp_seconds',
    help: 'When a job last succeeded (Unix time)',
    registers: [registry],
  });
  new Gauge({
    name: 'enrollment_jobs_in_flight',
    help: 'Jobs being processed now',
    registers: [registry],
    collect() {
      this.set(health.inFlight);
    },
  });
  new Gauge({
    name: 'enrollment_last_receive_timestamp_seconds',
    help: 'When a receive from the jobs queue last answered (Unix time)',
    registers: [registry],
    collect() {
      if (health.lastReceiveAt !== undefined) this.set(health.lastReceiveAt / 1000);
    },
  });
  return {
    received: () => received.inc(),
    finished(verdict, seconds) {
      if (verdict.action === 'retry') {
        retried.inc();
        duration.observe({ outcome: 'retry' }, seconds);
      } else if (verdict.status === 'succeeded') {
        succeeded.inc();
        lastSuccess.set(Date.now() / 1000);
        duration.observe({ outcome: 'succeeded' }, seconds);
      } else {
        failed.inc({ code: verdict.code ?? 'UNKNOWN' });
        duration.observe({ outcome: 'failed' }, seconds);
      }
    },
  };
}

/**
 * Healthy while receives answer (a long poll returns at least every POLL_WAIT_SECONDS), or while
 * every slot is busy with a job and no receive is due.
 */
export function isHealthy(health: PollingHealth, staleAfterMs: number, now = Date.now()): boolean {
  if (health.inFlight >= health.slots) return true;
  return health.lastReceiveAt !== undefined && now - health.lastReceiveAt <= staleAfterMs;
}

export function startMetricsServer(
  options: { host: string; port: number; registry: Registry; health: PollingHealth; staleAfterMs: number },
): Promise<Server> {
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
      const healthy = isHealthy(options.health, options.staleAfterMs);
      const body = JSON.stringify({
        status: healthy ? 'ok' : 'unhealthy',
        lastReceiveAt: options.health.lastReceiveAt === undefined ? null : new Date(options.health.lastReceiveAt).toISOString(),
        inFlight: options.health.inFlight,
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
