// The settings of issue 4: signing keys, image limits, staged-source deletion.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, parseProducerConfig, settingsFromSecret } from '../../src/config.ts';
import { thrownBy } from './helpers.ts';

const ENV = {
  SQS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/enrollment-jobs',
  S3_BUCKET: 'face-references',
  AWS_REGION: 'eu-west-1',
};
const KEY = 'k3y-0123456789abcdef0123456789abcdef';
const OLD_KEY = 'old-0123456789abcdef0123456789abcdef';

const problemsOf = (env: Record<string, string>, secret: Record<string, string> = {}) => {
  const error = thrownBy(() => parseConfig({ ...ENV, ...env }, secret));
  expect(error).toBeInstanceOf(ConfigError);
  return (error as ConfigError).problems;
};

describe('signing keys', () => {
  it('reads both keys from the environment as their UTF-8 bytes, trimmed', () => {
    // Act
    const config = parseConfig({ ...ENV, JOB_SIGNING_KEY: ` ${KEY}\n`, JOB_SIGNING_KEY_PREVIOUS: OLD_KEY });

    // Assess
    expect(config.signingKeys.current?.toString('utf8')).toBe(KEY);
    expect(config.signingKeys.previous?.toString('utf8')).toBe(OLD_KEY);
  });

  it('takes them from the secret, which wins over the environment, and lists only their names', () => {
    // Prepare
    const { settings } = settingsFromSecret(JSON.stringify({ JOB_SIGNING_KEY: KEY, JOB_SIGNING_KEY_PREVIOUS: OLD_KEY }), 'worker');

    // Act
    const config = parseConfig({ ...ENV, JOB_SIGNING_KEY: 'from-the-env-0123456789abcdef0123456789' }, settings);

    // Assess
    expect(config.signingKeys.current?.toString('utf8')).toBe(KEY);
    expect(config.fromSecret).toEqual(['JOB_SIGNING_KEY', 'JOB_SIGNING_KEY_PREVIOUS']);
  });

  it('has no key by default (unsigned mode)', () => {
    // Assess
    expect(parseConfig(ENV).signingKeys).toEqual({});
  });

  it('never puts a key in a serialised config', () => {
    // Act
    const text = JSON.stringify(parseConfig({ ...ENV, JOB_SIGNING_KEY: KEY, JOB_SIGNING_KEY_PREVIOUS: OLD_KEY }));

    // Assess
    expect(text).not.toContain(KEY);
    expect(text).not.toContain(OLD_KEY);
    expect(text).toContain('"signingKeys":{"current":"<set>","previous":"<set>"}');
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
