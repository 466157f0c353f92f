/**
 * Configuration: the environment (systemd EnvironmentFile) plus, optionally, one JSON secret in
 * Secrets Manager, parsed once at start into one typed, frozen Config. No IO at import; the secret
 * is fetched by a function passed in, so this module stays pure and testable.
 *
 * Precedence, lowest first: built-in defaults < environment < the secret's keys. The secret wins,
 * as it did in the original Python service (which copied its keys over os.environ), so a rotated
 * value takes effect without editing every instance's env file.
 */
import { z } from 'zod';
import { sameQueue } from './aws/sqs-rules.ts';
import { MAX_JOB_AGE_SECONDS } from './job/contract.ts';
import { SIGNING_KEY_MIN_LENGTH, signingKeysFrom, type SigningKeys } from './job/signature.ts';

export const EXIT_CONFIG = 78; // EX_CONFIG from sysexits.h: systemd is told not to restart on it

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const MiB = 1024 * 1024;

/**
 * The memory budget with the default settings: a third for image bytes held (enough for every slot's
 * inline message and several 10 MiB staged images at once), two thirds for decoding (one 40-megapixel
 * image turned 90°, the most a single decode needs). See docs/images.md "Memory".
 */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 384 * MiB;

// An empty value in an env file (`X=`) means "not set", never "zero" or "empty string".
const unsetIfBlank = (v: unknown): unknown => (typeof v === 'string' && v.trim() === '' ? undefined : v);

const requiredText = z.string({ error: (i) => (i.input === undefined ? 'is required' : 'must be text') }).trim();

const required = <T extends z.ZodType>(schema: T) => z.preprocess(unsetIfBlank, schema);
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(unsetIfBlank, schema.optional());

const wholeNumber = (min: number, max: number) => {
  const message = `must be a whole number from ${min} to ${max}`;
  return z
    .string()
    .trim()
    .regex(/^\d{1,15}$/, { error: message })
    .transform(Number)
    .pipe(z.number().int().min(min, { error: message }).max(max, { error: message }))
    .meta({ type: 'whole number', min, max });
};

const withDefault = (min: number, max: number, fallback: number) =>
  z.preprocess(unsetIfBlank, wholeNumber(min, max).optional()).transform((v) => v ?? fallback);

function parseUrl(v: string): URL | undefined {
  try {
    return new URL(v);
  } catch {
    return undefined;
  }
}

const httpUrl = (what: string) =>
  requiredText.refine((v) => ['https:', 'http:'].includes(parseUrl(v)?.protocol ?? ''), {
    error: `must be an http(s) URL of ${what}`,
    abort: true,
  }).meta({ type: 'http(s) URL' });

const queueUrl = httpUrl('an SQS queue (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)')
  .refine((v) => (parseUrl(v)?.pathname.split('/').filter(Boolean).length ?? 0) >= 2, {
    error: 'must be an SQS queue URL ending in /ACCOUNT/NAME',
  })
  .meta({ type: 'SQS queue URL' });

// S3's bucket naming rules, minus the legacy ones: 3-63 of a-z 0-9 . -, alphanumeric at both ends.
const bucketName = requiredText
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'must be an S3 bucket name (3-63 characters of a-z 0-9 . -)' })
  .meta({ type: 'S3 bucket name' });

// A signing key: its messages never include the value (a ConfigError is logged).
const signingKey = z
  .string({ error: 'must be text' })
  .trim()
  .min(SIGNING_KEY_MIN_LENGTH, { error: `must be at least ${SIGNING_KEY_MIN_LENGTH} characters (e.g. openssl rand -hex 32)` })
  .meta({ type: `text, at least ${SIGNING_KEY_MIN_LENGTH} characters` });

const flag = (fallback: boolean) =>
  z
    .preprocess(
      (v) => (typeof v === 'string' ? unsetIfBlank(v.trim().toLowerCase()) : v),
      z.enum(['true', 'false', '1', '0'], { error: 'must be true or false' }).optional(),
    )
    .meta({ type: 'true/false (or 1/0)' })
    .transform((v) => (v === undefined ? fallback : v === 'true' || v === '1'));

const region = requiredText
  .regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, { error: 'must be an AWS region such as us-east-1' })
  .meta({ type: 'AWS region' });

/** A decimal number from `min` to `max` (e.g. a score), written plainly: `0.5`, `1`, `.75`. */
const decimal = (min: number, max: number, fallback: number) => {
  const message = `must be a number from ${min} to ${max}`;
  return z.preprocess(
    unsetIfBlank,
    z
      .string()
      .trim()
      .regex(/^(\d{1,6}(\.\d{1,6})?|\.\d{1,6})$/, { error: message })
      .transform(Number)
      .pipe(z.number().min(min, { error: message }).max(max, { error: message }))
      .meta({ type: 'number', min, max })
      .optional()
      .transform((v) => v ?? fallback),
  );
};

const FACE_CHECKS = ['off', 'one'] as const;

const TRACE_EXPORTERS = ['none', 'otlp'] as const;
const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];
// The OpenTelemetry names; SDK 3.x no longer reads them itself, so they are parsed here.
const TRACE_SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
export type TraceSampler = (typeof TRACE_SAMPLERS)[number];

/** A lower-cased choice among `values`, unset when blank. */
const choice = <const T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? unsetIfBlank(v.trim().toLowerCase()) : v),
    z.enum(values, { error: `must be one of ${values.join(', ')}` }).default(fallback),
  );
const optionalChoice = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? unsetIfBlank(v.trim().toLowerCase()) : v),
    z.enum(values, { error: `must be one of ${values.join(', ')}` }).optional(),
  );

const settingsShape = z.object({
    SQS_QUEUE_URL: required(queueUrl),
    S3_BUCKET: required(bucketName),
    AWS_REGION: required(region),
    AWS_ENDPOINT_URL: optional(httpUrl('an AWS API endpoint')),
    STAGING_BUCKET: optional(bucketName),
    STAGING_PREFIX: optional(z.string().max(1024, { error: 'must be at most 1024 characters' })),
    RESULT_QUEUE_URL: optional(queueUrl),
    DEAD_LETTER_QUEUE_URL: optional(queueUrl),
    MAX_IMAGES_PER_JOB: withDefault(1, 100, 10),
    MAX_IMAGE_BYTES: withDefault(1024, 100 * MiB, 10 * MiB),
    MAX_IMAGE_PIXELS: withDefault(4096, 268_402_689, 40_000_000),
    MIN_IMAGE_DIMENSION: withDefault(1, 4096, 64),
    MAX_REFERENCE_DIMENSION: optional(wholeNumber(16, 16_384)),
    DELETE_STAGED_SOURCES: flag(false),
    JOB_SIGNING_KEY: optional(signingKey),
    JOB_SIGNING_KEY_PREVIOUS: optional(signingKey),
    ALLOW_UNSIGNED_JOBS: flag(false),
    SIGNED_JOB_MAX_AGE_SECONDS: withDefault(60, MAX_JOB_AGE_SECONDS, MAX_JOB_AGE_SECONDS),
    CONCURRENCY: withDefault(1, 1024, 16),
    MAX_IN_FLIGHT_BYTES: withDefault(16 * MiB, 64 * 1024 * MiB, DEFAULT_MAX_IN_FLIGHT_BYTES),
    JOB_TIMEOUT_SECONDS: withDefault(1, 43_200, 25),
    FACE_CHECK: z.preprocess(
      (v) => (typeof v === 'string' ? unsetIfBlank(v.trim().toLowerCase()) : v),
      z.enum(FACE_CHECKS, { error: `must be one of ${FACE_CHECKS.join(', ')}` }).default('off'),
    ),
    FACE_MIN_SCORE: decimal(0, 1, 0.5),
    FACE_MIN_SIZE: withDefault(1, 4096, 64),
    FACE_THREADS: optional(wholeNumber(1, 64)),
    DRAIN_TIMEOUT_SECONDS: withDefault(1, 3600, 30),
    VISIBILITY_TIMEOUT_SECONDS: withDefault(2, 43_200, 60),
    HEARTBEAT_INTERVAL_SECONDS: optional(wholeNumber(1, 43_199)),
    POLL_WAIT_SECONDS: withDefault(1, 20, 20),
    RETRY_BASE_SECONDS: withDefault(0, 43_200, 10),
    RETRY_MAX_SECONDS: withDefault(0, 43_200, 900),
    STARTUP_TIMEOUT_SECONDS: withDefault(1, 3600, 60),
    METRICS_PORT: optional(wholeNumber(0, 65_535)),
    METRICS_HOST: z.preprocess(
      unsetIfBlank,
      z.ipv4({ error: 'must be an IPv4 address such as 127.0.0.1' }).or(z.literal('::1')).default('127.0.0.1'),
    ),
    LOG_LEVEL: z.preprocess(
      unsetIfBlank,
      z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    ),
    // Tracing (docs/operations.md "Tracing"): OpenTelemetry's own variables, from the environment only.
    OTEL_TRACES_EXPORTER: choice(TRACE_EXPORTERS, 'none'),
    OTEL_EXPORTER_OTLP_PROTOCOL: choice(OTLP_PROTOCOLS, 'http/protobuf'),
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: optionalChoice(OTLP_PROTOCOLS),
    OTEL_EXPORTER_OTLP_ENDPOINT: optional(httpUrl('an OTLP/HTTP receiver (e.g. http://127.0.0.1:4318)')),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optional(httpUrl('an OTLP/HTTP traces receiver (e.g. http://127.0.0.1:4318/v1/traces)')),
    OTEL_SERVICE_NAME: optional(z.string().trim().max(256, { error: 'must be at most 256 characters' })),
    OTEL_TRACES_SAMPLER: choice(TRACE_SAMPLERS, 'parentbased_always_on'),
    OTEL_TRACES_SAMPLER_ARG: decimal(0, 1, 1),
    OTEL_BSP_MAX_QUEUE_SIZE: withDefault(1, 65_536, 2048),
    OTEL_BSP_SCHEDULE_DELAY: withDefault(0, 600_000, 5000),
  });

const settingsSchema = settingsShape.superRefine((s, ctx) => {
    if (s.STAGING_BUCKET !== undefined && s.STAGING_BUCKET === s.S3_BUCKET) {
      ctx.addIssue({
        code: 'custom',
        path: ['STAGING_BUCKET'],
        message: 'must differ from S3_BUCKET (references are never read back as sources)',
      });
    }
    if (s.STAGING_PREFIX !== undefined && s.STAGING_BUCKET === undefined) {
      ctx.addIssue({ code: 'custom', path: ['STAGING_PREFIX'], message: 'needs STAGING_BUCKET' });
    }
    if (s.STAGING_PREFIX !== undefined && !s.STAGING_PREFIX.endsWith('/')) {
      // "uploads" would also admit "uploads-private/…".
      ctx.addIssue({ code: 'custom', path: ['STAGING_PREFIX'], message: 'must end with "/" (e.g. uploads/)' });
    }
    // An outcome or a dead-lettered job sent back to the jobs queue would come back as a job,
    // fail, and be sent back again, forever: compared as queues, not as text.
    for (const name of ['RESULT_QUEUE_URL', 'DEAD_LETTER_QUEUE_URL'] as const) {
      const url = s[name];
      if (url !== undefined && sameQueue(url, s.SQS_QUEUE_URL)) {
        ctx.addIssue({ code: 'custom', path: [name], message: 'must not be the jobs queue (SQS_QUEUE_URL)' });
      }
    }
    // Fail closed: a lost key must stop the worker, not silently switch authentication off.
    if (s.JOB_SIGNING_KEY === undefined && !s.ALLOW_UNSIGNED_JOBS) {
      ctx.addIssue({
        code: 'custom',
        path: ['JOB_SIGNING_KEY'],
        message:
          'is required: jobs must be signed (put the key in the secret; to run without authenticating jobs, set ALLOW_UNSIGNED_JOBS=true)',
      });
    }
    const heartbeat = s.HEARTBEAT_INTERVAL_SECONDS;
    if (heartbeat !== undefined && heartbeat >= s.VISIBILITY_TIMEOUT_SECONDS) {
      ctx.addIssue({
        code: 'custom',
        path: ['HEARTBEAT_INTERVAL_SECONDS'],
        message: 'must be less than VISIBILITY_TIMEOUT_SECONDS',
      });
    }
    if (s.JOB_SIGNING_KEY_PREVIOUS !== undefined && s.JOB_SIGNING_KEY === undefined) {
      ctx.addIssue({ code: 'custom', path: ['JOB_SIGNING_KEY_PREVIOUS'], message: 'needs JOB_SIGNING_KEY (the key now in use)' });
    }
    if (s.MAX_REFERENCE_DIMENSION !== undefined && s.MAX_REFERENCE_DIMENSION < s.MIN_IMAGE_DIMENSION) {
      ctx.addIssue({ code: 'custom', path: ['MAX_REFERENCE_DIMENSION'], message: 'must not be less than MIN_IMAGE_DIMENSION' });
    }
    if (s.RETRY_BASE_SECONDS > s.RETRY_MAX_SECONDS) {
      ctx.addIssue({ code: 'custom', path: ['RETRY_BASE_SECONDS'], message: 'must not exceed RETRY_MAX_SECONDS' });
    }
  });

/** Every setting the worker reads, by its environment name. */
export const SETTING_NAMES = Object.keys(settingsShape.shape) as readonly string[];

/** Each setting's schema, for the settings table `npm run docs` writes (type, default and range come from it). */
export const SETTING_SCHEMAS: Readonly<Record<string, z.ZodType>> = settingsShape.shape;

/**
 * What each setting does, for the settings table of docs/operations.md (`npm run docs` fails naming
 * a setting without one). `default` only where the schema's own default does not say it.
 */
export const SETTING_DOCS: Readonly<Record<string, { readonly doc: string; readonly default?: string }>> = {
  SQS_QUEUE_URL: { doc: 'The jobs queue.' },
  S3_BUCKET: { doc: 'The reference bucket. Must exist and take the worker\'s writes under `users/`: probed at start (exit 78) and at a reload that changes it (refused).' },
  AWS_REGION: { doc: 'The region of the clients (not read from IMDS).' },
  AWS_ENDPOINT_URL: {
    doc: "The SDK's standard variable: every client talks to this endpoint (an emulator); S3 then uses path-style addressing and SQS calls go to it whatever host a queue URL names.",
  },
  STAGING_BUCKET: {
    doc: 'The only bucket staged images may come from; unset: staged images are refused. Must differ from `S3_BUCKET`.',
  },
  STAGING_PREFIX: {
    doc: 'Staged keys must start with this; it must end with `/`. Needs `STAGING_BUCKET`. Keys with an empty, `.` or `..` segment are refused too.',
    default: 'empty',
  },
  RESULT_QUEUE_URL: { doc: 'Where outcomes are published; unset: none are. Must not be the jobs queue, and must answer: a queue that does not exist is exit 78 at start and a refused reload.' },
  DEAD_LETTER_QUEUE_URL: { doc: 'Where permanently failed jobs go. Must not be the jobs queue, and must answer at start (exit 78).', default: 'from the redrive policy' },
  MAX_IMAGES_PER_JOB: { doc: 'The most images one job may carry (`TOO_MANY_IMAGES` above it).' },
  MAX_IMAGE_BYTES: { doc: 'The largest image file, in bytes (`IMAGE_TOO_LARGE` above it); a staged object is refused from its size before its body is read.' },
  MAX_IMAGE_PIXELS: {
    doc: 'Width × height above which an image is refused (`IMAGE_TOO_LARGE`) before it is decoded. It bounds memory: a decode holds about 4 bytes per pixel (a 90° turn, twice that).',
  },
  MIN_IMAGE_DIMENSION: { doc: 'The shorter side, in pixels, below which an image is refused (`IMAGE_TOO_SMALL`).' },
  MAX_REFERENCE_DIMENSION: {
    doc: 'The longest side of a stored reference; larger images are scaled down (never up), keeping their aspect ratio. Unset: stored at the size received. Not less than `MIN_IMAGE_DIMENSION`.',
  },
  DELETE_STAGED_SOURCES: {
    doc: "Delete a job's staged objects once it has succeeded (see [What it writes](images.md#what-it-writes)). Needs `s3:DeleteObject` on the staging prefix.",
  },
  JOB_SIGNING_KEY: {
    doc: 'The key jobs must be signed with (see [Signed jobs](producers.md#signed-jobs)). **In the secret** when one is named (in the environment it is then refused); in the environment otherwise. Unset: the worker does not start (exit 78) unless `ALLOW_UNSIGNED_JOBS=true`. Its value is never logged or shown in an error; logs name it by fingerprint.',
    default: '**required**',
  },
  JOB_SIGNING_KEY_PREVIOUS: {
    doc: 'A second accepted key, during a rotation. Needs `JOB_SIGNING_KEY`; in the secret when one is named, like it.',
  },
  ALLOW_UNSIGNED_JOBS: {
    doc: '`true` runs the worker without a signing key: jobs are **not authenticated** (warned at start). For local runs and tests; never in production.',
  },
  SIGNED_JOB_MAX_AGE_SECONDS: {
    doc: "A job whose `issuedAt` is older is `JOB_EXPIRED`. The maximum, 14 days, is SQS's longest retention.",
  },
  CONCURRENCY: { doc: 'Jobs in flight.' },
  MAX_IN_FLIGHT_BYTES: {
    doc: 'Image memory across all jobs in flight: a third for image bytes held, two thirds for decoding (see [Memory](images.md#memory)).',
  },
  JOB_TIMEOUT_SECONDS: {
    doc: "A job's deadline, in seconds of its own working time (from receipt to its outcome sent; time in which it only waits its turn for memory, a decode slot or a detector thread excluded, see [Queue semantics](architecture.md#queue-semantics)); past it the job is cancelled and retried.",
  },
  FACE_CHECK: { doc: '`one`: every image must show exactly one usable face (see [Face check](images.md#face-check)).' },
  FACE_MIN_SCORE: { doc: 'A detection scoring below this is not a face.' },
  FACE_MIN_SIZE: { doc: 'The shorter side of the face box, in stored pixels, below which it is `FACE_TOO_SMALL`.' },
  FACE_THREADS: { doc: 'Detector threads (~75 MB each), with `FACE_CHECK=one`.', default: 'one per core' },
  DRAIN_TIMEOUT_SECONDS: { doc: 'How long a stop waits for jobs in flight.' },
  VISIBILITY_TIMEOUT_SECONDS: { doc: 'Visibility of a received message, renewed by the heartbeat.' },
  HEARTBEAT_INTERVAL_SECONDS: { doc: 'How often the visibility of messages in flight is extended. Must be less than the visibility timeout.', default: 'visibility / 3' },
  POLL_WAIT_SECONDS: { doc: 'Long-poll wait. Shorter makes an idle stop quicker and costs more empty receives.' },
  RETRY_BASE_SECONDS: { doc: 'First retry delay of a transient failure. Not more than `RETRY_MAX_SECONDS`.' },
  RETRY_MAX_SECONDS: { doc: 'Cap of the retry delay.' },
  STARTUP_TIMEOUT_SECONDS: { doc: 'How long start-up retries what is not ready yet (credentials, network).' },
  METRICS_PORT: { doc: 'Serve `/metrics` (Prometheus) and `/healthz` on this port; unset: no endpoint.' },
  METRICS_HOST: { doc: 'The address the metrics endpoint binds to (loopback unless a scraper needs more).' },
  LOG_LEVEL: { doc: 'The lowest level logged.' },
  OTEL_TRACES_EXPORTER: {
    doc: "`otlp` exports a span per job over OTLP/HTTP (see [Tracing](#tracing)); `none`: no spans (the producer's trace id still goes on the job's log lines and on to its outcome). Environment only, like every `OTEL_` setting.",
  },
  OTEL_EXPORTER_OTLP_PROTOCOL: { doc: '`http/protobuf` or `http/json` (gRPC is not built in).' },
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: { doc: 'Overrides the one above for traces.' },
  OTEL_EXPORTER_OTLP_ENDPOINT: { doc: 'The OTLP/HTTP receiver; spans go to `<endpoint>/v1/traces`.', default: 'http://localhost:4318' },
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: { doc: 'The full traces URL, used as it is (wins over the one above).' },
  OTEL_SERVICE_NAME: {
    doc: "The spans' `service.name`; unset: the one in `OTEL_RESOURCE_ATTRIBUTES` (which adds others), else `enrollment-worker`.",
    default: 'enrollment-worker',
  },
  OTEL_TRACES_SAMPLER: { doc: "The sampler: the parent-based ones follow the producer's sampled flag." },
  OTEL_TRACES_SAMPLER_ARG: { doc: 'The ratio of the `traceidratio` samplers.' },
  OTEL_BSP_MAX_QUEUE_SIZE: { doc: 'Ended spans waiting for export; beyond it spans are dropped, never waited for.' },
  OTEL_BSP_SCHEDULE_DELAY: { doc: 'How long ended spans wait to be exported together, in ms.' },
  SECRETS_MANAGER_SECRET_NAME: {
    doc: 'A Secrets Manager secret holding a JSON object of settings (below the table). `SECRETS_NAME` is read when this is unset. Read by the secret lookup before the settings are parsed.',
  },
};

/** Read before the settings are parsed, to find the secret: not in SETTING_NAMES (`SECRETS_NAME` is its other name). */
export const SECRET_NAME_SETTING = 'SECRETS_MANAGER_SECRET_NAME';

/**
 * Settings that come from the environment only: those needed before the secret can be fetched, and
 * OpenTelemetry's (the exporter reads its headers and certificates from the same environment).
 */
export const ENVIRONMENT_ONLY_NAMES: ReadonlySet<string> = new Set([
  'AWS_REGION',
  'AWS_ENDPOINT_URL',
  'LOG_LEVEL',
  'STARTUP_TIMEOUT_SECONDS',
  ...SETTING_NAMES.filter((name) => name.startsWith('OTEL_')),
]);

/** Tracing (docs/operations.md "Tracing"): off unless OTEL_TRACES_EXPORTER=otlp. */
export interface TracingConfig {
  readonly exporter: (typeof TRACE_EXPORTERS)[number];
  readonly protocol: OtlpProtocol;
  /** The traces URL spans are posted to. */
  readonly url: string;
  /** OTEL_SERVICE_NAME; unset: OTEL_RESOURCE_ATTRIBUTES's service.name, else enrollment-worker. */
  readonly serviceName: string | undefined;
  readonly sampler: TraceSampler;
  /** The ratio of the `traceidratio` samplers. */
  readonly samplerRatio: number;
  /** Spans waiting for export beyond this are dropped. */
  readonly maxQueueSize: number;
  /** How long ended spans wait for company before they are exported, in ms. */
  readonly scheduleDelayMs: number;
}

export interface Config {
  readonly queueUrl: string;
  readonly bucket: string;
  readonly region: string;
  readonly endpoint: string | undefined;
  readonly stagingBucket: string | undefined;
  readonly stagingPrefix: string;
  readonly resultQueueUrl: string | undefined;
  readonly deadLetterQueueUrl: string | undefined;
  readonly maxImagesPerJob: number;
  readonly maxImageBytes: number;
  /** Width × height above which an image is refused undecoded. */
  readonly maxImagePixels: number;
  /** The shorter side an image needs to hold a face. */
  readonly minImageDimension: number;
  /** The longest side of a stored reference; undefined: as received. */
  readonly maxReferenceDimension: number | undefined;
  /** Delete staged sources once their job has succeeded. */
  readonly deleteStagedSources: boolean;
  /** JOB_SIGNING_KEY (current) and JOB_SIGNING_KEY_PREVIOUS; serialises as fingerprints only. */
  readonly signingKeys: SigningKeys;
  /** ALLOW_UNSIGNED_JOBS: run without a signing key (jobs unauthenticated). */
  readonly allowUnsignedJobs: boolean;
  /** A job whose `issuedAt` is older than this is JOB_EXPIRED. */
  readonly signedJobMaxAgeSeconds: number;
  readonly concurrency: number;
  /** MAX_IN_FLIGHT_BYTES: image memory across all jobs in flight (bytes held and decoding). */
  readonly maxInFlightBytes: number;
  /** JOB_TIMEOUT_SECONDS: a job's working time (waits for memory or a decode slot excluded). */
  readonly jobTimeoutSeconds: number;
  /** FACE_CHECK: `one` — every image must show exactly one usable face; `off` (default). */
  readonly faceCheck: (typeof FACE_CHECKS)[number];
  /** FACE_MIN_SCORE: a detection below this score is not a face. */
  readonly faceMinScore: number;
  /** FACE_MIN_SIZE: the shorter side of the face box, in stored pixels, below which it is too small. */
  readonly faceMinSize: number;
  /** FACE_THREADS: detector threads; undefined: one per core. */
  readonly faceThreads: number | undefined;
  readonly drainTimeoutSeconds: number;
  readonly visibilityTimeoutSeconds: number;
  readonly heartbeatIntervalSeconds: number;
  readonly pollWaitSeconds: number;
  readonly retryBaseSeconds: number;
  readonly retryMaxSeconds: number;
  readonly startupTimeoutSeconds: number;
  /** Undefined: no metrics endpoint. 0 picks a free port (for tests). */
  readonly metricsPort: number | undefined;
  readonly metricsHost: string;
  readonly logLevel: LogLevel;
  readonly tracing: TracingConfig;
  readonly secretName: string | undefined;
  /** Names (never values) of the settings the secret supplied, for the start-up log. */
  readonly fromSecret: readonly string[];
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Turns zod issues into one line per variable: `NAME message`. */
function problemsOf(error: z.ZodError, fromSecret: ReadonlySet<string>): string[] {
  return error.issues.map((issue) => {
    const name = String(issue.path[0] ?? 'configuration');
    const origin = fromSecret.has(name) ? ' (from the secret)' : '';
    return `${name}${origin} ${issue.message}`;
  });
}

/** Which of the two names the secret was given by, for messages. */
export function secretVariable(env: Env): 'SECRETS_MANAGER_SECRET_NAME' | 'SECRETS_NAME' {
  return unsetIfBlank(env.SECRETS_MANAGER_SECRET_NAME) !== undefined ? 'SECRETS_MANAGER_SECRET_NAME' : 'SECRETS_NAME';
}

export function secretNameOf(env: Env): string | undefined {
  const name = unsetIfBlank(env.SECRETS_MANAGER_SECRET_NAME) ?? unsetIfBlank(env.SECRETS_NAME);
  return typeof name === 'string' ? name.trim() : undefined;
}

/**
 * Reads the settings a secret may supply from its JSON text. Keys that are not worker settings are
 * ignored (the secret may be shared with other services); bootstrap settings cannot come from it.
 */
export function settingsFromSecret(
  secretText: string,
  secretName: string,
  variable = 'SECRETS_MANAGER_SECRET_NAME',
): { settings: Record<string, string>; ignored: string[] } {
  let data: unknown;
  try {
    data = JSON.parse(secretText);
  } catch {
    throw new ConfigError([`${variable} secret "${secretName}" is not valid JSON`]);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError([`${variable} secret "${secretName}" must be a JSON object`]);
  }
  const settings: Record<string, string> = {};
  const ignored: string[] = [];
  const problems: string[] = [];
  for (const [key, value] of Object.entries(data)) {
    if (!SETTING_NAMES.includes(key) || ENVIRONMENT_ONLY_NAMES.has(key)) {
      ignored.push(key);
    } else if (typeof value === 'string' && value.trim() === '') {
      // Blank means unset, as in the environment: it does not hide the environment's value.
    } else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      settings[key] = String(value);
    } else {
      problems.push(`${key} (from the secret) must be a string or a number`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { settings, ignored };
}

/** Settings that belong in the secret alone when one is named. */
const SECRET_ONLY_NAMES = ['JOB_SIGNING_KEY', 'JOB_SIGNING_KEY_PREVIOUS'] as const;

/**
 * With a secret, signing keys in the environment are refused: a key left in an env file would
 * outlive its removal from the secret (and a restart would quietly bring it back).
 */
function secretOnlyProblems(env: Env): string[] {
  if (secretNameOf(env) === undefined) return [];
  return SECRET_ONLY_NAMES.filter((name) => unsetIfBlank(env[name]) !== undefined).map(
    (name) => `${name} must not be set in the environment when ${secretVariable(env)} names a secret: keep signing keys in the secret only`,
  );
}

/**
 * What can be checked of the environment before any network call: the bootstrap settings, signing
 * keys that belong in the secret, and, with no secret, everything. Throws ConfigError (exit 78).
 */
export function checkEnvironment(env: Env): Bootstrap {
  const problems = secretOnlyProblems(env);
  if (problems.length > 0) throw new ConfigError(problems);
  const boot = parseBootstrap(env);
  if (secretNameOf(env) === undefined) parseConfig(env);
  return boot;
}

/** Parses the merged settings into a Config, or throws ConfigError naming each bad variable. */
export function parseConfig(env: Env, secretSettings: Readonly<Record<string, string>> = {}): Config {
  // A blank value in the secret means unset, as in the environment: it hides nothing.
  const supplied = Object.fromEntries(Object.entries(secretSettings).filter(([, v]) => v.trim() !== ''));
  const fromSecret = new Set(Object.keys(supplied));
  const merged = { ...env, ...supplied };
  const result = settingsSchema.safeParse(merged);
  const problems = [...secretOnlyProblems(env), ...(result.success ? [] : problemsOf(result.error, fromSecret))];
  if (!result.success || problems.length > 0) throw new ConfigError(problems);
  const s = result.data;
  return Object.freeze({
    queueUrl: s.SQS_QUEUE_URL,
    bucket: s.S3_BUCKET,
    region: s.AWS_REGION,
    endpoint: s.AWS_ENDPOINT_URL,
    stagingBucket: s.STAGING_BUCKET,
    stagingPrefix: s.STAGING_PREFIX ?? '',
    resultQueueUrl: s.RESULT_QUEUE_URL,
    deadLetterQueueUrl: s.DEAD_LETTER_QUEUE_URL,
    maxImagesPerJob: s.MAX_IMAGES_PER_JOB,
    maxImageBytes: s.MAX_IMAGE_BYTES,
    maxImagePixels: s.MAX_IMAGE_PIXELS,
    minImageDimension: s.MIN_IMAGE_DIMENSION,
    maxReferenceDimension: s.MAX_REFERENCE_DIMENSION,
    deleteStagedSources: s.DELETE_STAGED_SOURCES,
    signingKeys: signingKeysFrom(s.JOB_SIGNING_KEY, s.JOB_SIGNING_KEY_PREVIOUS),
    allowUnsignedJobs: s.ALLOW_UNSIGNED_JOBS,
    signedJobMaxAgeSeconds: s.SIGNED_JOB_MAX_AGE_SECONDS,
    concurrency: s.CONCURRENCY,
    maxInFlightBytes: s.MAX_IN_FLIGHT_BYTES,
    jobTimeoutSeconds: s.JOB_TIMEOUT_SECONDS,
    faceCheck: s.FACE_CHECK,
    faceMinScore: s.FACE_MIN_SCORE,
    faceMinSize: s.FACE_MIN_SIZE,
    faceThreads: s.FACE_THREADS,
    drainTimeoutSeconds: s.DRAIN_TIMEOUT_SECONDS,
    visibilityTimeoutSeconds: s.VISIBILITY_TIMEOUT_SECONDS,
    // A third of the visibility timeout leaves two chances for a heartbeat to land before expiry.
    heartbeatIntervalSeconds: s.HEARTBEAT_INTERVAL_SECONDS ?? Math.max(1, Math.floor(s.VISIBILITY_TIMEOUT_SECONDS / 3)),
    pollWaitSeconds: s.POLL_WAIT_SECONDS,
    retryBaseSeconds: s.RETRY_BASE_SECONDS,
    retryMaxSeconds: s.RETRY_MAX_SECONDS,
    startupTimeoutSeconds: s.STARTUP_TIMEOUT_SECONDS,
    metricsPort: s.METRICS_PORT,
    metricsHost: s.METRICS_HOST,
    logLevel: s.LOG_LEVEL,
    tracing: Object.freeze({
      exporter: s.OTEL_TRACES_EXPORTER,
      protocol: s.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? s.OTEL_EXPORTER_OTLP_PROTOCOL,
      // The signal's own endpoint is used as it is; the general one gets the signal's path.
      url: s.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? `${(s.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318').replace(/\/+$/, '')}/v1/traces`,
      serviceName: s.OTEL_SERVICE_NAME || undefined,
      sampler: s.OTEL_TRACES_SAMPLER,
      samplerRatio: s.OTEL_TRACES_SAMPLER_ARG,
      maxQueueSize: s.OTEL_BSP_MAX_QUEUE_SIZE,
      scheduleDelayMs: s.OTEL_BSP_SCHEDULE_DELAY,
    }),
    secretName: secretNameOf(env),
    fromSecret: [...fromSecret].sort(),
  });
}

/** What the secret fetcher needs: only the bootstrap settings, checked before any IO. */
export interface Bootstrap {
  readonly region: string;
  readonly endpoint: string | undefined;
  readonly logLevel: LogLevel;
  readonly startupTimeoutSeconds: number;
}

export function parseBootstrap(env: Env): Bootstrap {
  const schema = settingsShape.pick({ AWS_REGION: true, AWS_ENDPOINT_URL: true, LOG_LEVEL: true, STARTUP_TIMEOUT_SECONDS: true });
  const result = schema.safeParse(env);
  if (!result.success) throw new ConfigError(problemsOf(result.error, new Set()));
  const s = result.data;
  return { region: s.AWS_REGION, endpoint: s.AWS_ENDPOINT_URL, logLevel: s.LOG_LEVEL, startupTimeoutSeconds: s.STARTUP_TIMEOUT_SECONDS };
}

/** What `enqueue` needs: a producer's view (no reference bucket, no worker tuning). */
export interface ProducerConfig {
  readonly queueUrl: string;
  readonly region: string;
  readonly endpoint: string | undefined;
  readonly stagingBucket: string | undefined;
  readonly stagingPrefix: string;
  readonly resultQueueUrl: string | undefined;
  /** JOB_SIGNING_KEY: when set, `enqueue` signs the jobs it sends. */
  readonly signingKey: string | undefined;
}

export function parseProducerConfig(env: Env): ProducerConfig {
  const schema = settingsShape.pick({
    SQS_QUEUE_URL: true,
    AWS_REGION: true,
    AWS_ENDPOINT_URL: true,
    STAGING_BUCKET: true,
    STAGING_PREFIX: true,
    RESULT_QUEUE_URL: true,
    JOB_SIGNING_KEY: true,
  });
  const result = schema.safeParse(env);
  if (!result.success) throw new ConfigError(problemsOf(result.error, new Set()));
  const s = result.data;
  return {
    queueUrl: s.SQS_QUEUE_URL,
    region: s.AWS_REGION,
    endpoint: s.AWS_ENDPOINT_URL,
    stagingBucket: s.STAGING_BUCKET,
    stagingPrefix: s.STAGING_PREFIX ?? '',
    resultQueueUrl: s.RESULT_QUEUE_URL,
    signingKey: s.JOB_SIGNING_KEY,
  };
}

export type SecretFetcher = (secretName: string) => Promise<string>;

/**
 * The whole start-up configuration step: environment, then the secret if one is named. A secret
 * that is configured but cannot be read is a start-up failure (the fetcher throws).
 */
export async function loadConfig(
  env: Env,
  fetchSecret: SecretFetcher,
): Promise<{ config: Config; ignoredSecretKeys: string[] }> {
  const secretName = secretNameOf(env);
  if (secretName === undefined) return { config: parseConfig(env), ignoredSecretKeys: [] };
  parseBootstrap(env);
  const { settings, ignored } = settingsFromSecret(await fetchSecret(secretName), secretName, secretVariable(env));
  return { config: parseConfig(env, settings), ignoredSecretKeys: ignored };
}
