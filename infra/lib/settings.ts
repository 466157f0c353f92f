// The stack's choices made at synthesis (`cdk synth -c name=value`, or cdk.json's context): the
// ones that change the template's shape. Deployment-time values (subnets, the release, sizes) are
// CloudFormation parameters instead (lib/stack.ts), so one synthesized template serves every
// account and region.

export interface Settings {
  /** `s3`: S3-managed keys (SSE-S3); `kms`: a customer managed key of the stack's own (SSE-KMS). */
  readonly encryption: 's3' | 'kms';
  /** Where producers stage images in the staging bucket (STAGING_PREFIX); ends with `/`. */
  readonly stagingPrefix: string;
  /** Staged uploads are deleted by lifecycle this many days after they were written. */
  readonly stagingExpiryDays: number;
  /** The oldest job's age, in seconds, above which the backlog alarms. */
  readonly oldestJobAlarmSeconds: number;
  /** Minutes without a successful job, while jobs are waiting, after which it alarms. */
  readonly noSuccessAlarmMinutes: number;
  /**
   * `on`: the workers export traces (OTEL_TRACES_EXPORTER=otlp) to the CloudWatch agent on the
   * instance, which sends them to X-Ray with the role's AWSXRayDaemonWriteAccess. A context value,
   * not a parameter: it decides what the role is granted, and the template then says it plainly.
   */
  readonly tracing: 'off' | 'on';
  /**
   * With tracing on, OTEL_TRACES_SAMPLER_ARG of `parentbased_traceidratio`: the share of jobs traced
   * among those that come without a producer's trace (the others follow the producer's decision).
   */
  readonly tracingSampleRatio: number;
}

export const DEFAULT_SETTINGS: Settings = {
  encryption: 's3',
  stagingPrefix: 'uploads/',
  stagingExpiryDays: 7,
  oldestJobAlarmSeconds: 600,
  noSuccessAlarmMinutes: 15,
  tracing: 'off',
  // X-Ray's own default rule samples 5% (beyond one request a second): the same share here.
  tracingSampleRatio: 0.05,
};

/** Reads the settings from context values (strings from `-c`, or JSON values from cdk.json). */
export function settingsFrom(context: (key: string) => unknown): Settings {
  const problems: string[] = [];
  const text = (key: keyof Settings): string | undefined => {
    const v = context(key);
    return v === undefined || v === null || v === '' ? undefined : String(v);
  };
  const whole = (key: keyof Settings, min: number, max: number, fallback: number): number => {
    const v = text(key);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) problems.push(`${key} must be a whole number from ${min} to ${max} (got ${v})`);
    return n;
  };
  const encryption = text('encryption') ?? DEFAULT_SETTINGS.encryption;
  if (encryption !== 's3' && encryption !== 'kms') problems.push(`encryption must be s3 or kms (got ${encryption})`);
  const stagingPrefix = text('stagingPrefix') ?? DEFAULT_SETTINGS.stagingPrefix;
  // The worker's own rule for STAGING_PREFIX (docs/operations.md "Configuration"), and safe in an ARN.
  if (!/^([A-Za-z0-9._-]+\/)+$/.test(stagingPrefix) || stagingPrefix.split('/').some((s) => s === '.' || s === '..')) {
    problems.push(`stagingPrefix must be path segments ending with / (e.g. uploads/), got ${stagingPrefix}`);
  }
  const tracing = text('tracing') ?? DEFAULT_SETTINGS.tracing;
  if (tracing !== 'off' && tracing !== 'on') problems.push(`tracing must be off or on (got ${tracing})`);
  // The worker's own rule for OTEL_TRACES_SAMPLER_ARG (src/config.ts), so a bad ratio fails here,
  // not as an exit 78 on every instance.
  const ratioText = text('tracingSampleRatio');
  const tracingSampleRatio = ratioText === undefined ? DEFAULT_SETTINGS.tracingSampleRatio : Number(ratioText);
  if (ratioText !== undefined && (!/^(\d{1,6}(\.\d{1,6})?|\.\d{1,6})$/.test(ratioText) || tracingSampleRatio > 1)) {
    problems.push(`tracingSampleRatio must be a number from 0 to 1 (got ${ratioText})`);
  }
  const settings: Settings = {
    encryption: encryption as Settings['encryption'],
    stagingPrefix,
    stagingExpiryDays: whole('stagingExpiryDays', 1, 3650, DEFAULT_SETTINGS.stagingExpiryDays),
    oldestJobAlarmSeconds: whole('oldestJobAlarmSeconds', 60, 1209600, DEFAULT_SETTINGS.oldestJobAlarmSeconds),
    noSuccessAlarmMinutes: whole('noSuccessAlarmMinutes', 1, 1440, DEFAULT_SETTINGS.noSuccessAlarmMinutes),
    tracing: tracing as Settings['tracing'],
    tracingSampleRatio,
  };
  if (problems.length > 0) throw new Error(`bad context: ${problems.join('; ')}`);
  return settings;
}
