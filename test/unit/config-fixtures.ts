// The environments and helpers the configuration tests share (config.test.ts for parsing and the
// secret, config-hardening.test.ts for the trust model and image limits), written once.
import { ConfigError, parseConfig, type Env } from '../../src/config.ts';
import { thrownBy } from './helpers.ts';

export const QUEUE = 'https://sqs.us-east-1.amazonaws.com/123456789012/enrollment-jobs';
export const RESULTS = 'https://sqs.us-east-1.amazonaws.com/123456789012/enrollment-results';

/** The three required settings, valid, and no signing key: refused unless ALLOW_UNSIGNED_JOBS=true is added. */
export const REQUIRED: Env = { SQS_QUEUE_URL: QUEUE, S3_BUCKET: 'face-references', AWS_REGION: 'us-east-1' };

/** The required settings and no signing key, explicitly allowed: the smallest environment that starts. */
export const ENV: Env = { ...REQUIRED, ALLOW_UNSIGNED_JOBS: 'true' };

/** ENV with some settings changed (`undefined` leaves one out). */
export const env = (overrides: Record<string, string | undefined> = {}): Env => ({ ...ENV, ...overrides });

/** A secret is named: keys must then come from it, not from the environment. */
export const SECRET = { SECRETS_MANAGER_SECRET_NAME: 'enrollment-worker/settings' } as const;

export const KEY = 'k3y-0123456789abcdef0123456789abcdef';
export const OLD_KEY = 'old-0123456789abcdef0123456789abcdef';

/** The problems of the ConfigError an action throws (the test fails on any other outcome). */
export function problemsFrom(act: () => unknown): readonly string[] {
  const error = thrownBy(act);
  if (!(error instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(error)}`, { cause: error });
  return error.problems;
}

/** The problems parseConfig finds in ENV with `overrides`, and the secret's settings. */
export function problemsOf(overrides: Record<string, string | undefined>, secret: Record<string, string> = {}): readonly string[] {
  return problemsFrom(() => parseConfig(env(overrides), secret));
}

/** A fake secret fetcher that records the names it was asked for. */
export function fakeFetcher(secret: string | Error) {
  const asked: string[] = [];
  return {
    asked,
    fetch: async (name: string) => {
      asked.push(name);
      if (secret instanceof Error) throw secret;
      return secret;
    },
  };
}
