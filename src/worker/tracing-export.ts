/**
 * The OpenTelemetry SDK side of tracing, loaded only when OTEL_TRACES_EXPORTER=otlp: the tracer
 * provider with its sampler and resource, and a batch processor whose bounded queue drops spans
 * rather than wait for a receiver that is down. The SDK's own complaints become rate-limited
 * warning lines.
 */
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { diag, DiagLogLevel, type Tracer } from '@opentelemetry/api';
import { detectResources, resourceAttributesEnvDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import type { Logger } from 'pino';
import type { TracingConfig } from '../config.ts';

export interface Export {
  readonly tracer: Tracer;
  /** Exports what is queued, within `deadline` (epoch ms), then stops the exporter. Never throws. */
  shutdown(deadline: number): Promise<void>;
}

function samplerOf(config: TracingConfig): Sampler {
  const ratio = () => new TraceIdRatioBasedSampler(config.samplerRatio);
  switch (config.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio();
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio() });
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

function exporterOf(config: TracingConfig): SpanExporter {
  // Headers, timeout and certificates come from the exporter's own OTEL_EXPORTER_OTLP_* variables.
  return config.protocol === 'http/json' ? new JsonExporter({ url: config.url }) : new ProtobufExporter({ url: config.url });
}

/**
 * The OpenTelemetry SDK's own complaints (an export that failed, spans dropped) as warning lines: the
 * first at once, then at most one a minute with how many were held back.
 */
function sdkDiagnostics(log: Logger): void {
  let last = 0;
  let suppressed = 0;
  const say = (message: string) => {
    const now = Date.now();
    if (now - last < 60_000) {
      suppressed += 1;
      return;
    }
    log.warn({ tracing: message.slice(0, 500), suppressed }, 'tracing: spans could not be exported (jobs are not affected)');
    last = now;
    suppressed = 0;
  };
  diag.setLogger(
    { error: say, warn: say, info: () => {}, debug: () => {}, verbose: () => {} },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
}

export function startExport(config: TracingConfig, log: Logger): Export {
  sdkDiagnostics(log);
  // service.name: OTEL_SERVICE_NAME, else OTEL_RESOURCE_ATTRIBUTES's, else enrollment-worker.
  const resource = resourceFromAttributes({ 'service.name': 'enrollment-worker' })
    .merge(detectResources({ detectors: [resourceAttributesEnvDetector] }))
    .merge(config.serviceName !== undefined ? resourceFromAttributes({ 'service.name': config.serviceName }) : null);
  const provider = new TracerProvider({
    resource,
    sampler: samplerOf(config),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: exporterOf(config),
        // The queue is bounded: when the receiver is slow or down, spans are dropped, never waited for.
        maxQueueSize: config.maxQueueSize,
        maxExportBatchSize: Math.min(512, config.maxQueueSize),
        scheduledDelayMillis: config.scheduleDelayMs,
      }),
    ],
  });
  return {
    tracer: provider.getTracer('enrollment-worker'),
    async shutdown(deadline) {
      let timer: NodeJS.Timeout | undefined;
      const outOfTime = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), Math.max(0, deadline - Date.now()))));
      const done = provider.shutdown().then(
        () => 'flushed' as const,
        (e: unknown) => {
          log.warn({ err: e instanceof Error ? { name: e.name, message: e.message } : String(e) }, 'tracing: the last spans could not be exported');
          return 'failed' as const;
        },
      );
      const result = await Promise.race([done, outOfTime]).finally(() => clearTimeout(timer));
      if (result === 'late') log.warn('tracing: the last spans were not exported within the drain timeout; they are dropped');
    },
  };
}
