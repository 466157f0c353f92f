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
}

export const DEFAULT_SETTINGS: Settings = {
  encryption: 's3',
  stagingPrefix: 'uploads/',
  stagingExpiryDays: 7,
  oldestJobAlarmSeconds: 600,
  noSuccessAlarmMinutes: 15,
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
  // The worker's own rule for STAGING_PREFIX (README "Configuration"), and safe in an ARN.
  if (!/^([A-Za-z0-9._-]+\/)+$/.test(stagingPrefix) || stagingPrefix.split('/').some((s) => s === '.' || s === '..')) {
    problems.push(`stagingPrefix must be path segments ending with / (e.g. uploads/), got ${stagingPrefix}`);
  }
  const settings: Settings = {
    encryption: encryption as Settings['encryption'],
    stagingPrefix,
    stagingExpiryDays: whole('stagingExpiryDays', 1, 3650, DEFAULT_SETTINGS.stagingExpiryDays),
    oldestJobAlarmSeconds: whole('oldestJobAlarmSeconds', 60, 1209600, DEFAULT_SETTINGS.oldestJobAlarmSeconds),
    noSuccessAlarmMinutes: whole('noSuccessAlarmMinutes', 1, 1440, DEFAULT_SETTINGS.noSuccessAlarmMinutes),
  };
  if (problems.length > 0) throw new Error(`bad context: ${problems.join('; ')}`);
  return settings;
}
