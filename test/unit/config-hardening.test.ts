// The settings of the trust model and of image handling: signing keys (fail closed, secret only),
// job expiry, image limits, staged-source deletion.
import { describe, expect, it } from 'vitest';
import { checkEnvironment, ConfigError, parseConfig, parseProducerConfig, settingsFromSecret } from '../../src/config.ts';
import { ENV, KEY, OLD_KEY, problemsOf, REQUIRED, SECRET } from './config-fixtures.ts';
import { thrownBy } from './helpers.ts';

describe('signing keys', () => {
  it('reads both keys from the environment as their UTF-8 bytes, trimmed', () => {
    // Act
    const config = parseConfig({ ...ENV, JOB_SIGNING_KEY: ` ${KEY}\n`, JOB_SIGNING_KEY_PREVIOUS: OLD_KEY });

    // Assess
    expect(config.signingKeys.current?.toString('utf8')).toBe(KEY);
    expect(config.signingKeys.previous?.toString('utf8')).toBe(OLD_KEY);
  });

  it('takes them from the secret when one is named, and lists only their names', () => {
    // Prepare
    const { settings } = settingsFromSecret(JSON.stringify({ JOB_SIGNING_KEY: KEY, JOB_SIGNING_KEY_PREVIOUS: OLD_KEY }), 'worker');

    // Act
    const config = parseConfig({ ...REQUIRED, ...SECRET }, settings);

    // Assess
    expect(config.signingKeys.current?.toString('utf8')).toBe(KEY);
    expect(config.signingKeys.previous?.toString('utf8')).toBe(OLD_KEY);
    expect(config.fromSecret).toEqual(['JOB_SIGNING_KEY', 'JOB_SIGNING_KEY_PREVIOUS']);
  });

  it('fails closed: no JOB_SIGNING_KEY is a configuration error that says how to fix it', () => {
    // Act: ENV's ALLOW_UNSIGNED_JOBS blanked (unset).
    const problems = problemsOf({ ALLOW_UNSIGNED_JOBS: '' });

    // Assess
    expect(problems).toEqual([
      'JOB_SIGNING_KEY is required: jobs must be signed (put the key in the secret; to run without authenticating jobs, set ALLOW_UNSIGNED_JOBS=true)',
    ]);
  });

  it('fails closed when the secret has no key, even if the environment once had one', () => {
    // Act
    const problems = problemsOf({ ...SECRET, ALLOW_UNSIGNED_JOBS: '' }, { MAX_IMAGES_PER_JOB: '5' });

    // Assess
    expect(problems).toEqual([expect.stringMatching(/^JOB_SIGNING_KEY is required/)]);
  });

  it.each([['false'], ['0'], ['FALSE']])('fails closed with ALLOW_UNSIGNED_JOBS=%j', (value) => {
    // Assess
    expect(problemsOf({ ALLOW_UNSIGNED_JOBS: value })).toEqual([expect.stringMatching(/^JOB_SIGNING_KEY is required/)]);
  });

  it('runs without a key only with ALLOW_UNSIGNED_JOBS=true, and says so in the config', () => {
    // Act
    const config = parseConfig(ENV);

    // Assess
    expect(config.signingKeys).toEqual({});
    expect(config.allowUnsignedJobs).toBe(true);
  });

  it.each([['JOB_SIGNING_KEY', { JOB_SIGNING_KEY: KEY }], ['JOB_SIGNING_KEY_PREVIOUS', { JOB_SIGNING_KEY_PREVIOUS: OLD_KEY }]])(
    'refuses %s in the environment when a secret is named, before any network call, without its value',
    (name, keyEnv) => {
      // Act
      const early = thrownBy(() => checkEnvironment({ ...REQUIRED, ...SECRET, ...keyEnv }));
      const late = problemsOf({ ...SECRET, ...keyEnv }, { JOB_SIGNING_KEY: KEY });

      // Assess
      const problem = `${name} must not be set in the environment when SECRETS_MANAGER_SECRET_NAME names a secret: keep signing keys in the secret only`;
      expect(early).toBeInstanceOf(ConfigError);
      expect((early as ConfigError).problems).toEqual([problem]);
      expect(late).toContain(problem);
      expect(JSON.stringify(late)).not.toContain(KEY);
    },
  );

  it('names SECRETS_NAME when that is how the secret was given', () => {
    // Act
    const error = thrownBy(() => checkEnvironment({ ...REQUIRED, SECRETS_NAME: 'worker', JOB_SIGNING_KEY: KEY }));

    // Assess
    expect((error as ConfigError).problems).toEqual([
      'JOB_SIGNING_KEY must not be set in the environment when SECRETS_NAME names a secret: keep signing keys in the secret only',
    ]);
  });

  it('never puts a key in a serialised config: only each key\'s fingerprint', () => {
    // Act
    const text = JSON.stringify(parseConfig({ ...REQUIRED, JOB_SIGNING_KEY: KEY, JOB_SIGNING_KEY_PREVIOUS: OLD_KEY }));

    // Assess
    expect(text).not.toContain(KEY);
    expect(text).not.toContain(OLD_KEY);
    expect(text).toMatch(/"signingKeys":\{"current":"[0-9a-f]{8}","previous":"[0-9a-f]{8}"\}/);
  });

  it.each([
    [{ JOB_SIGNING_KEY: 'short-secret-value' }, 'JOB_SIGNING_KEY must be at least 32 characters (e.g. openssl rand -hex 32)'],
    [{ JOB_SIGNING_KEY: KEY, JOB_SIGNING_KEY_PREVIOUS: 'short-old-secret' }, 'JOB_SIGNING_KEY_PREVIOUS must be at least 32 characters (e.g. openssl rand -hex 32)'],
    [{ JOB_SIGNING_KEY_PREVIOUS: OLD_KEY }, 'JOB_SIGNING_KEY_PREVIOUS needs JOB_SIGNING_KEY (the key now in use)'],
  ])('refuses %j, naming the variable and never its value', (env, problem) => {
    // Act
    const problems = problemsOf(env);

    // Assess
    expect(problems).toEqual([problem]);
    for (const value of Object.values(env)) expect(JSON.stringify(problems)).not.toContain(value);
  });

  it('says a short key came from the secret, without its value', () => {
    // Act
    const problems = problemsOf({}, { JOB_SIGNING_KEY: 'short-secret-value' });

    // Assess
    expect(problems).toEqual(['JOB_SIGNING_KEY (from the secret) must be at least 32 characters (e.g. openssl rand -hex 32)']);
  });

  it('gives enqueue the key from its environment', () => {
    // Act
    const producer = parseProducerConfig({ ...ENV, JOB_SIGNING_KEY: KEY });

    // Assess
    expect(producer.signingKey).toBe(KEY);
  });
});

describe('job expiry', () => {
  it('defaults SIGNED_JOB_MAX_AGE_SECONDS to 14 days, SQS\'s longest retention', () => {
    // Assess
    expect(parseConfig(ENV).signedJobMaxAgeSeconds).toBe(1_209_600);
  });

  it.each([['60', 60], ['86400', 86_400], ['1209600', 1_209_600]])('reads SIGNED_JOB_MAX_AGE_SECONDS=%s', (value, expected) => {
    // Assess
    expect(parseConfig({ ...ENV, SIGNED_JOB_MAX_AGE_SECONDS: value }).signedJobMaxAgeSeconds).toBe(expected);
  });

  it.each([['59'], ['1209601'], ['1.5'], ['two weeks']])('refuses SIGNED_JOB_MAX_AGE_SECONDS=%j', (value) => {
    // Assess
    expect(problemsOf({ SIGNED_JOB_MAX_AGE_SECONDS: value })).toEqual(['SIGNED_JOB_MAX_AGE_SECONDS must be a whole number from 60 to 1209600']);
  });
});

describe('image limits and staged-source deletion', () => {
  it('has documented defaults', () => {
    // Act
    const config = parseConfig(ENV);

    // Assess
    expect(config).toMatchObject({ maxImagePixels: 40_000_000, minImageDimension: 64, maxReferenceDimension: undefined, deleteStagedSources: false });
  });

  it.each([
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['false', false],
    ['0', false],
    ['', false],
  ])('reads DELETE_STAGED_SOURCES=%j as %s', (value, expected) => {
    // Assess
    expect(parseConfig({ ...ENV, DELETE_STAGED_SOURCES: value }).deleteStagedSources).toBe(expected);
  });

  it('reads a boolean from the secret', () => {
    // Prepare
    const { settings } = settingsFromSecret('{"DELETE_STAGED_SOURCES": true}', 'worker');

    // Assess
    expect(parseConfig(ENV, settings).deleteStagedSources).toBe(true);
  });

  it.each([
    [{ DELETE_STAGED_SOURCES: 'yes please' }, 'DELETE_STAGED_SOURCES must be true or false'],
    [{ MAX_IMAGE_PIXELS: '100' }, 'MAX_IMAGE_PIXELS must be a whole number from 4096 to 268402689'],
    [{ MIN_IMAGE_DIMENSION: '0' }, 'MIN_IMAGE_DIMENSION must be a whole number from 1 to 4096'],
    [{ MIN_IMAGE_DIMENSION: '4', MAX_REFERENCE_DIMENSION: '8' }, 'MAX_REFERENCE_DIMENSION must be a whole number from 16 to 16384'],
    [{ MIN_IMAGE_DIMENSION: '200', MAX_REFERENCE_DIMENSION: '100' }, 'MAX_REFERENCE_DIMENSION must not be less than MIN_IMAGE_DIMENSION'],
  ])('refuses %j', (env, problem) => {
    // Assess
    expect(problemsOf(env)).toEqual([problem]);
  });
});
