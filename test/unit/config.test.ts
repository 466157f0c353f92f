import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  EXIT_CONFIG,
  loadConfig,
  parseBootstrap,
  parseConfig,
  parseProducerConfig,
  settingsFromSecret,
  type Config,
  type Env,
} from '../../src/config.ts';
import { ENV, env, fakeFetcher, problemsFrom, problemsOf, QUEUE, RESULTS } from './config-fixtures.ts';
import { rejectionOf, thrownBy } from './helpers.ts';

describe('EXIT_CONFIG', () => {
  it('is 78 (EX_CONFIG)', () => {
    // Assess
    expect(EXIT_CONFIG).toBe(78);
  });
});

describe('parseConfig: defaults', () => {
  it('fills every optional setting with its default', () => {
    // Act
    const config = parseConfig(ENV);

    // Assess
    expect(config).toEqual({
      queueUrl: QUEUE,
      bucket: 'face-references',
      region: 'us-east-1',
      endpoint: undefined,
      stagingBucket: undefined,
      stagingPrefix: '',
      resultQueueUrl: undefined,
      deadLetterQueueUrl: undefined,
      maxImagesPerJob: 10,
      maxImageBytes: 10 * 1024 * 1024,
      maxImagePixels: 40_000_000,
      minImageDimension: 64,
      maxReferenceDimension: undefined,
      deleteStagedSources: false,
      signingKeys: {},
      allowUnsignedJobs: true,
      signedJobMaxAgeSeconds: 1_209_600,
      concurrency: 16,
      maxInFlightBytes: 384 * 1024 * 1024,
      jobTimeoutSeconds: 25,
      faceCheck: 'off',
      faceMinScore: 0.5,
      faceMinSize: 64,
      faceThreads: undefined,
      drainTimeoutSeconds: 30,
      visibilityTimeoutSeconds: 60,
      heartbeatIntervalSeconds: 20,
      pollWaitSeconds: 20,
      retryBaseSeconds: 10,
      retryMaxSeconds: 900,
      startupTimeoutSeconds: 60,
      metricsPort: undefined,
      metricsHost: '127.0.0.1',
      logLevel: 'info',
      tracing: {
        exporter: 'none',
        protocol: 'http/protobuf',
        url: 'http://localhost:4318/v1/traces',
        serviceName: undefined,
        sampler: 'parentbased_always_on',
        samplerRatio: 1,
        maxQueueSize: 2048,
        scheduleDelayMs: 5000,
      },
      secretName: undefined,
      fromSecret: [],
    } satisfies Config);
  });

  it('is frozen', () => {
    // Prepare
    const config = parseConfig(ENV);

    // Act
    const act = () => {
      (config as { concurrency: number }).concurrency = 1;
    };

    // Assess
    expect(Object.isFrozen(config)).toBe(true);
    expect(act).toThrow(TypeError);
    expect(config.concurrency).toBe(16);
  });

  it.each([
    ['90', 30],
    ['100', 33],
    ['2', 1],
    ['3', 1],
    ['43200', 14_400],
  ])('defaults the heartbeat to a third of a %s s visibility timeout (%i s)', (visibility, heartbeat) => {
    // Act
    const config = parseConfig(env({ VISIBILITY_TIMEOUT_SECONDS: visibility }));

    // Assess
    expect(config.heartbeatIntervalSeconds).toBe(heartbeat);
    expect(config.heartbeatIntervalSeconds).toBeLessThan(config.visibilityTimeoutSeconds);
  });

  it.each([['CONCURRENCY'], ['MAX_IMAGES_PER_JOB'], ['MAX_IMAGE_BYTES'], ['VISIBILITY_TIMEOUT_SECONDS'], ['LOG_LEVEL'], ['STAGING_BUCKET']])(
    'treats a blank %s as unset',
    (name) => {
      // Act
      const blank = parseConfig(env({ [name]: '' }));
      const spaces = parseConfig(env({ [name]: '   ' }));

      // Assess
      expect(blank).toEqual(parseConfig(ENV));
      expect(spaces).toEqual(parseConfig(ENV));
    },
  );

  it('ignores environment variables that are not settings', () => {
    // Act
    const config = parseConfig(env({ PATH: '/usr/bin', HOME: '/root', CONCURRENCY_TYPO: 'x' }));

    // Assess
    expect(config).toEqual(parseConfig(ENV));
  });
});

describe('parseConfig: values', () => {
  it('reads every setting', () => {
    // Act
    const config = parseConfig(
      env({
        AWS_ENDPOINT_URL: 'http://127.0.0.1:4566',
        STAGING_BUCKET: 'enrollment-staging',
        STAGING_PREFIX: 'incoming/',
        RESULT_QUEUE_URL: RESULTS,
        DEAD_LETTER_QUEUE_URL: 'http://127.0.0.1:4566/000000000000/jobs-dlq',
        MAX_IMAGES_PER_JOB: '5',
        MAX_IMAGE_BYTES: '2048',
        CONCURRENCY: '64',
        DRAIN_TIMEOUT_SECONDS: '45',
        VISIBILITY_TIMEOUT_SECONDS: '120',
        HEARTBEAT_INTERVAL_SECONDS: '30',
        POLL_WAIT_SECONDS: '5',
        RETRY_BASE_SECONDS: '2',
        RETRY_MAX_SECONDS: '600',
        STARTUP_TIMEOUT_SECONDS: '15',
        LOG_LEVEL: 'debug',
      }),
    );

    // Assess
    expect(config).toMatchObject({
      endpoint: 'http://127.0.0.1:4566',
      stagingBucket: 'enrollment-staging',
      stagingPrefix: 'incoming/',
      resultQueueUrl: RESULTS,
      deadLetterQueueUrl: 'http://127.0.0.1:4566/000000000000/jobs-dlq',
      maxImagesPerJob: 5,
      maxImageBytes: 2048,
      concurrency: 64,
      drainTimeoutSeconds: 45,
      visibilityTimeoutSeconds: 120,
      heartbeatIntervalSeconds: 30,
      pollWaitSeconds: 5,
      retryBaseSeconds: 2,
      retryMaxSeconds: 600,
      startupTimeoutSeconds: 15,
      logLevel: 'debug',
    });
  });

  it('trims surrounding spaces from values', () => {
    // Act
    const config = parseConfig(env({ S3_BUCKET: '  face-references ', CONCURRENCY: ' 32 ' }));

    // Assess
    expect(config.bucket).toBe('face-references');
    expect(config.concurrency).toBe(32);
  });
});

describe('parseConfig: required settings', () => {
  it('names every missing required setting, all at once', () => {
    // Act
    const problems = problemsFrom(() => parseConfig({}));

    // Assess
    expect([...problems].sort()).toEqual(['AWS_REGION is required', 'S3_BUCKET is required', 'SQS_QUEUE_URL is required']);
  });

  it.each([['SQS_QUEUE_URL'], ['S3_BUCKET'], ['AWS_REGION']])('treats a blank %s as missing', (name) => {
    // Act
    const empty = problemsOf({ [name]: '' });
    const spaces = problemsOf({ [name]: ' \t ' });

    // Assess
    expect(empty).toEqual([`${name} is required`]);
    expect(spaces).toEqual([`${name} is required`]);
  });

  it('throws a ConfigError whose message lists the problems', () => {
    // Act
    const error = thrownBy(() => parseConfig(env({ S3_BUCKET: undefined, CONCURRENCY: 'abc' })));

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ name: 'ConfigError' });
    expect((error as ConfigError).message).toContain('S3_BUCKET is required');
    expect((error as ConfigError).message).toContain('CONCURRENCY must be a whole number from 1 to 1024');
  });

  it('reports missing and malformed settings together', () => {
    // Act
    const problems = problemsFrom(() => parseConfig({ CONCURRENCY: '-1', LOG_LEVEL: 'loud' }));

    // Assess
    expect(problems).toEqual(
      expect.arrayContaining([
        'SQS_QUEUE_URL is required',
        'S3_BUCKET is required',
        'AWS_REGION is required',
        'CONCURRENCY must be a whole number from 1 to 1024',
        'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent',
      ]),
    );
    expect(problems).toHaveLength(5);
  });
});

describe('parseConfig: numbers', () => {
  it.each([['abc'], ['-1'], ['1.5'], ['0'], ['1025'], ['1e3'], ['+5'], ['0x10'], ['16 workers'], ['9999999999999999']])(
    'refuses CONCURRENCY=%j',
    (value) => {
      // Act
      const problems = problemsOf({ CONCURRENCY: value });

      // Assess
      expect(problems).toEqual(['CONCURRENCY must be a whole number from 1 to 1024']);
    },
  );

  const RANGES = [
    ['MAX_IMAGES_PER_JOB', 'maxImagesPerJob', 1, 100, {}],
    ['MAX_IMAGE_BYTES', 'maxImageBytes', 1024, 100 * 1024 * 1024, {}],
    ['CONCURRENCY', 'concurrency', 1, 1024, {}],
    ['DRAIN_TIMEOUT_SECONDS', 'drainTimeoutSeconds', 1, 3600, {}],
    ['VISIBILITY_TIMEOUT_SECONDS', 'visibilityTimeoutSeconds', 2, 43_200, {}],
    ['HEARTBEAT_INTERVAL_SECONDS', 'heartbeatIntervalSeconds', 1, 43_199, { VISIBILITY_TIMEOUT_SECONDS: '43200' }],
    ['POLL_WAIT_SECONDS', 'pollWaitSeconds', 1, 20, {}],
    ['RETRY_BASE_SECONDS', 'retryBaseSeconds', 0, 43_200, { RETRY_MAX_SECONDS: '43200' }],
    ['RETRY_MAX_SECONDS', 'retryMaxSeconds', 0, 43_200, { RETRY_BASE_SECONDS: '0' }],
    ['STARTUP_TIMEOUT_SECONDS', 'startupTimeoutSeconds', 1, 3600, {}],
  ] as const;

  it.each(RANGES)('accepts %s at both ends of its range', (name, key, min, max, context) => {
    // Act
    const low = parseConfig(env({ ...context, [name]: String(min) }));
    const high = parseConfig(env({ ...context, [name]: String(max) }));

    // Assess
    expect(low[key]).toBe(min);
    expect(high[key]).toBe(max);
  });

  it.each(RANGES)('refuses %s just outside its range', (name, _key, min, max, context) => {
    // Act
    const low = problemsOf({ ...context, [name]: String(min - 1) });
    const high = problemsOf({ ...context, [name]: String(max + 1) });

    // Assess
    const message = `${name} must be a whole number from ${min} to ${max}`;
    expect(low).toContain(message);
    expect(high).toContain(message);
  });
});

describe('parseConfig: other formats', () => {
  it.each([
    ['not a URL', 'not a url'],
    ['an FTP URL', 'ftp://sqs.us-east-1.amazonaws.com/123456789012/q'],
    ['a bare host', 'sqs.us-east-1.amazonaws.com/123456789012/q'],
  ])('refuses an SQS_QUEUE_URL that is %s with a ConfigError', (_name, value) => {
    // Act
    const problems = problemsOf({ SQS_QUEUE_URL: value });

    // Assess
    expect(problems).toEqual([
      'SQS_QUEUE_URL must be an http(s) URL of an SQS queue (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)',
    ]);
  });

  it.each([['RESULT_QUEUE_URL'], ['DEAD_LETTER_QUEUE_URL']])('refuses a %s that is not a URL with a ConfigError', (name) => {
    // Act
    const problems = problemsOf({ [name]: 'results' });

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name} must be an http\\(s\\) URL`));
  });

  it('refuses a queue URL without /ACCOUNT/NAME', () => {
    // Act
    const problems = problemsOf({ SQS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/enrollment-jobs' });

    // Assess
    expect(problems).toEqual(['SQS_QUEUE_URL must be an SQS queue URL ending in /ACCOUNT/NAME']);
  });

  it('refuses an AWS_ENDPOINT_URL that is not an http(s) URL', () => {
    // Act
    const problems = problemsOf({ AWS_ENDPOINT_URL: 'localhost:4566' });

    // Assess
    expect(problems).toEqual(['AWS_ENDPOINT_URL must be an http(s) URL of an AWS API endpoint']);
  });

  it.each([['Face_References'], ['ab'], ['-refs'], ['refs-'], ['a'.repeat(64)], ['s3://refs']])('refuses S3_BUCKET=%j', (value) => {
    // Act
    const problems = problemsOf({ S3_BUCKET: value });

    // Assess
    expect(problems).toEqual(['S3_BUCKET must be an S3 bucket name (3-63 characters of a-z 0-9 . -)']);
  });

  it.each([['useast1'], ['US-EAST-1'], ['us-east'], ['eu-central-1a']])('refuses AWS_REGION=%j', (value) => {
    // Act
    const problems = problemsOf({ AWS_REGION: value });

    // Assess
    expect(problems).toEqual(['AWS_REGION must be an AWS region such as us-east-1']);
  });

  it.each([['us-gov-west-1'], ['ap-southeast-2'], ['eu-central-1']])('accepts AWS_REGION=%j', (value) => {
    // Act
    const config = parseConfig(env({ AWS_REGION: value }));

    // Assess
    expect(config.region).toBe(value);
  });

  it.each([['verbose'], ['INFO'], ['warning']])('refuses LOG_LEVEL=%j', (value) => {
    // Act
    const problems = problemsOf({ LOG_LEVEL: value });

    // Assess
    expect(problems).toEqual(['LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent']);
  });

  it('refuses a STAGING_PREFIX over 1024 characters', () => {
    // Act
    const problems = problemsOf({ STAGING_BUCKET: 'enrollment-staging', STAGING_PREFIX: `${'p'.repeat(1024)}/` });

    // Assess
    expect(problems).toEqual(['STAGING_PREFIX must be at most 1024 characters']);
  });
});

describe('parseConfig: settings that depend on each other', () => {
  it('refuses a STAGING_PREFIX that does not end with "/" (it would admit "uploads-private/…")', () => {
    const problems = problemsOf({ STAGING_BUCKET: 'enrollment-staging', STAGING_PREFIX: 'uploads' });
    expect(problems).toEqual(['STAGING_PREFIX must end with "/" (e.g. uploads/)']);
  });

  it.each([['RESULT_QUEUE_URL'], ['DEAD_LETTER_QUEUE_URL']])('refuses a %s that is the jobs queue (an endless loop)', (name) => {
    const jobs = 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs';
    const problems = problemsOf({ SQS_QUEUE_URL: jobs, [name]: jobs });
    expect(problems).toEqual([`${name} must not be the jobs queue (SQS_QUEUE_URL)`]);
  });

  // Every spelling SQS answers to for one queue: the loop guard compares queues, not text.
  it.each([
    ['a trailing slash', 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs/'],
    ['the host in capitals', 'https://SQS.US-EAST-1.AMAZONAWS.COM/123456789012/jobs'],
    ['the legacy global host', 'https://queue.amazonaws.com/123456789012/jobs'],
    ['the legacy regional host', 'https://us-east-1.queue.amazonaws.com/123456789012/jobs'],
    ['the FIPS host', 'https://sqs-fips.us-east-1.amazonaws.com/123456789012/jobs'],
    ['http and a port', 'http://sqs.us-east-1.amazonaws.com:443/123456789012/jobs'],
    ['a VPC endpoint', 'https://vpce-0a1b2c3d-4e5f6a7b.sqs.us-east-1.vpce.amazonaws.com/123456789012/jobs'],
  ])('refuses RESULT_QUEUE_URL naming the jobs queue with %s', (_, spelling) => {
    const jobs = 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs';
    const problems = problemsOf({ SQS_QUEUE_URL: jobs, RESULT_QUEUE_URL: spelling, DEAD_LETTER_QUEUE_URL: spelling });
    expect(problems).toEqual(['RESULT_QUEUE_URL must not be the jobs queue (SQS_QUEUE_URL)', 'DEAD_LETTER_QUEUE_URL must not be the jobs queue (SQS_QUEUE_URL)']);
  });

  it.each([
    ['another name', 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs-results'],
    ['a name differing in case (SQS names are case-sensitive)', 'https://sqs.us-east-1.amazonaws.com/123456789012/Jobs'],
    ['another account', 'https://sqs.us-east-1.amazonaws.com/210987654321/jobs'],
    ['another region', 'https://sqs.eu-west-1.amazonaws.com/123456789012/jobs'],
  ])('accepts a result queue with %s', (_, url) => {
    const config = parseConfig(env({ SQS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs', RESULT_QUEUE_URL: url }));
    expect(config.resultQueueUrl).toBe(url);
  });

  it('compares emulator queue URLs by account and name, whatever host names the emulator', () => {
    const problems = problemsFrom(() =>
      parseConfig(
        env({
          AWS_ENDPOINT_URL: 'http://localhost:4566',
          SQS_QUEUE_URL: 'http://localhost:4566/000000000000/jobs',
          RESULT_QUEUE_URL: 'http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/jobs',
        }),
      ),
    );
    expect(problems).toEqual(['RESULT_QUEUE_URL must not be the jobs queue (SQS_QUEUE_URL)']);
  });

  it('refuses a STAGING_BUCKET equal to S3_BUCKET', () => {
    // Act
    const problems = problemsOf({ STAGING_BUCKET: 'face-references' });

    // Assess
    expect(problems).toEqual(['STAGING_BUCKET must differ from S3_BUCKET (references are never read back as sources)']);
  });

  it('refuses a STAGING_PREFIX without a STAGING_BUCKET', () => {
    // Act
    const problems = problemsOf({ STAGING_PREFIX: 'incoming/' });

    // Assess
    expect(problems).toEqual(['STAGING_PREFIX needs STAGING_BUCKET']);
  });

  it.each([
    ['equal to', '60', '60'],
    ['longer than', '61', '60'],
    ['longer than the default', '61', undefined],
  ])('refuses a heartbeat %s the visibility timeout', (_name, heartbeat, visibility) => {
    // Act
    const problems = problemsFrom(() =>
      parseConfig(env({ HEARTBEAT_INTERVAL_SECONDS: heartbeat, VISIBILITY_TIMEOUT_SECONDS: visibility })),
    );

    // Assess
    expect(problems).toEqual(['HEARTBEAT_INTERVAL_SECONDS must be less than VISIBILITY_TIMEOUT_SECONDS']);
  });

  it('accepts a heartbeat one second under the visibility timeout', () => {
    // Act
    const config = parseConfig(env({ HEARTBEAT_INTERVAL_SECONDS: '59', VISIBILITY_TIMEOUT_SECONDS: '60' }));

    // Assess
    expect(config.heartbeatIntervalSeconds).toBe(59);
  });

  it('refuses a retry base above the retry maximum', () => {
    // Act
    const problems = problemsOf({ RETRY_BASE_SECONDS: '60', RETRY_MAX_SECONDS: '30' });

    // Assess
    expect(problems).toEqual(['RETRY_BASE_SECONDS must not exceed RETRY_MAX_SECONDS']);
  });
});

describe('parseConfig: settings from the secret', () => {
  it('lets the secret win over the environment and lists the names it supplied', () => {
    // Act
    const config = parseConfig(env({ S3_BUCKET: 'env-bucket', CONCURRENCY: '4' }), { S3_BUCKET: 'secret-bucket', CONCURRENCY: '8', RESULT_QUEUE_URL: RESULTS });

    // Assess
    expect(config.bucket).toBe('secret-bucket');
    expect(config.concurrency).toBe(8);
    expect(config.resultQueueUrl).toBe(RESULTS);
    expect(config.fromSecret).toEqual(['CONCURRENCY', 'RESULT_QUEUE_URL', 'S3_BUCKET']);
  });

  it('lets the secret supply a required setting the environment lacks', () => {
    // Act
    const config = parseConfig(env({ SQS_QUEUE_URL: undefined }), { SQS_QUEUE_URL: QUEUE });

    // Assess
    expect(config.queueUrl).toBe(QUEUE);
  });

  it('says "(from the secret)" for a problem caused by a secret value', () => {
    // Act
    const problems = problemsOf({ CONCURRENCY: '4' }, { CONCURRENCY: 'lots' });

    // Assess
    expect(problems).toEqual(['CONCURRENCY (from the secret) must be a whole number from 1 to 1024']);
  });

  it('does not blame the secret for a problem in the environment', () => {
    // Act
    const problems = problemsOf({ CONCURRENCY: 'lots' }, { S3_BUCKET: 'secret-bucket' });

    // Assess
    expect(problems).toEqual(['CONCURRENCY must be a whole number from 1 to 1024']);
  });

  it('treats a blank secret value as unset, so it does not hide the environment value', () => {
    // Act
    const config = parseConfig(env({ S3_BUCKET: 'env-bucket' }), { S3_BUCKET: '' });

    // Assess
    expect(config.bucket).toBe('env-bucket');
  });

  it('records the secret name from the environment', () => {
    // Act
    const config = parseConfig(env({ SECRETS_MANAGER_SECRET_NAME: ' prod/enrollment ' }));

    // Assess
    expect(config.secretName).toBe('prod/enrollment');
  });
});

describe('settingsFromSecret', () => {
  it('reads string and number values as settings', () => {
    // Act
    const result = settingsFromSecret('{"S3_BUCKET":"secret-bucket","CONCURRENCY":8}', 'prod/enrollment');

    // Assess
    expect(result).toEqual({ settings: { S3_BUCKET: 'secret-bucket', CONCURRENCY: '8' }, ignored: [] });
  });

  it('ignores and lists unknown keys and bootstrap keys', () => {
    // Prepare
    const secret = JSON.stringify({
      S3_BUCKET: 'secret-bucket',
      DATABASE_PASSWORD: 'hunter2',
      AWS_REGION: 'eu-west-1',
      AWS_ENDPOINT_URL: 'http://evil',
      LOG_LEVEL: 'trace',
      STARTUP_TIMEOUT_SECONDS: '1',
      s3_bucket: 'lower-case',
    });

    // Act
    const result = settingsFromSecret(secret, 'shared');

    // Assess
    expect(result.settings).toEqual({ S3_BUCKET: 'secret-bucket' });
    expect([...result.ignored].sort()).toEqual(['AWS_ENDPOINT_URL', 'AWS_REGION', 'DATABASE_PASSWORD', 'LOG_LEVEL', 'STARTUP_TIMEOUT_SECONDS', 's3_bucket']);
  });

  it('refuses a secret that is not JSON, naming the secret', () => {
    // Act
    const problems = problemsFrom(() => settingsFromSecret('S3_BUCKET=secret-bucket', 'prod/enrollment'));

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('"prod/enrollment"');
    expect(problems[0]).toContain('is not valid JSON');
  });

  it.each([['an array', '["S3_BUCKET"]'], ['a string', '"S3_BUCKET"'], ['null', 'null'], ['a number', '42']])(
    'refuses a secret that is %s',
    (_name, text) => {
      // Act
      const problems = problemsFrom(() => settingsFromSecret(text, 'prod/enrollment'));

      // Assess
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain('"prod/enrollment" must be a JSON object');
    },
  );

  it('refuses nested values, naming each key', () => {
    // Act
    const problems = problemsFrom(() =>
      settingsFromSecret('{"S3_BUCKET":{"name":"b"},"CONCURRENCY":[8],"STAGING_BUCKET":null}', 'prod/enrollment'),
    );

    // Assess
    expect(problems).toEqual([
      'S3_BUCKET (from the secret) must be a string or a number',
      'CONCURRENCY (from the secret) must be a string or a number',
      'STAGING_BUCKET (from the secret) must be a string or a number',
    ]);
  });

  it('never puts a secret value in a problem', () => {
    // Act
    const error = thrownBy(() => settingsFromSecret('{"S3_BUCKET":{"password":"hunter2"}}', 'prod/enrollment'));

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).not.toContain('hunter2');
  });
});

describe('parseBootstrap', () => {
  it('reads only what fetching the secret needs, with defaults', () => {
    // Act
    const bootstrap = parseBootstrap({ AWS_REGION: 'eu-west-1' });

    // Assess
    expect(bootstrap).toEqual({ region: 'eu-west-1', endpoint: undefined, logLevel: 'info', startupTimeoutSeconds: 60 });
  });

  it('reads the endpoint, log level and start-up timeout', () => {
    // Act
    const bootstrap = parseBootstrap({ AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL: 'http://127.0.0.1:5000', LOG_LEVEL: 'warn', STARTUP_TIMEOUT_SECONDS: '5' });

    // Assess
    expect(bootstrap).toEqual({ region: 'eu-west-1', endpoint: 'http://127.0.0.1:5000', logLevel: 'warn', startupTimeoutSeconds: 5 });
  });

  it('needs AWS_REGION but not the worker settings', () => {
    // Act
    const problems = problemsFrom(() => parseBootstrap({ LOG_LEVEL: 'nope' }));

    // Assess
    expect([...problems].sort()).toEqual(['AWS_REGION is required', 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent']);
  });
});

describe('parseProducerConfig', () => {
  it('needs the queue and the region, not the reference bucket', () => {
    // Act
    const config = parseProducerConfig({ SQS_QUEUE_URL: QUEUE, AWS_REGION: 'us-east-1' });

    // Assess
    expect(config).toEqual({
      queueUrl: QUEUE,
      region: 'us-east-1',
      endpoint: undefined,
      stagingBucket: undefined,
      stagingPrefix: '',
      resultQueueUrl: undefined,
    });
  });

  it('reads the staging and result settings', () => {
    // Act
    const config = parseProducerConfig({
      SQS_QUEUE_URL: QUEUE,
      AWS_REGION: 'us-east-1',
      STAGING_BUCKET: 'enrollment-staging',
      STAGING_PREFIX: 'incoming/',
      RESULT_QUEUE_URL: RESULTS,
      AWS_ENDPOINT_URL: 'http://127.0.0.1:4566',
    });

    // Assess
    expect(config).toMatchObject({ stagingBucket: 'enrollment-staging', stagingPrefix: 'incoming/', resultQueueUrl: RESULTS, endpoint: 'http://127.0.0.1:4566' });
  });

  it('names every missing setting', () => {
    // Act
    const problems = problemsFrom(() => parseProducerConfig({ S3_BUCKET: 'face-references' }));

    // Assess
    expect([...problems].sort()).toEqual(['AWS_REGION is required', 'SQS_QUEUE_URL is required']);
  });
});

describe('loadConfig', () => {
  it('reads the environment alone when no secret is named, fetching nothing', async () => {
    // Prepare
    const fetcher = fakeFetcher('{}');

    // Act
    const result = await loadConfig(ENV, fetcher.fetch);

    // Assess
    expect(result).toEqual({ config: parseConfig(ENV), ignoredSecretKeys: [] });
    expect(fetcher.asked).toEqual([]);
  });

  it('fetches the secret named by SECRETS_MANAGER_SECRET_NAME and layers it over the environment', async () => {
    // Prepare
    const fetcher = fakeFetcher(JSON.stringify({ S3_BUCKET: 'secret-bucket', CONCURRENCY: 4, OTHER_SERVICE_KEY: 'x' }));

    // Act
    const { config, ignoredSecretKeys } = await loadConfig(env({ SECRETS_MANAGER_SECRET_NAME: 'prod/enrollment' }), fetcher.fetch);

    // Assess
    expect(fetcher.asked).toEqual(['prod/enrollment']);
    expect(config.bucket).toBe('secret-bucket');
    expect(config.concurrency).toBe(4);
    expect(config.secretName).toBe('prod/enrollment');
    expect(config.fromSecret).toEqual(['CONCURRENCY', 'S3_BUCKET']);
    expect(ignoredSecretKeys).toEqual(['OTHER_SERVICE_KEY']);
  });

  it('uses SECRETS_NAME when SECRETS_MANAGER_SECRET_NAME is absent', async () => {
    // Prepare
    const fetcher = fakeFetcher('{"S3_BUCKET":"secret-bucket"}');

    // Act
    const { config } = await loadConfig(env({ SECRETS_NAME: 'legacy/enrollment' }), fetcher.fetch);

    // Assess
    expect(fetcher.asked).toEqual(['legacy/enrollment']);
    expect(config.secretName).toBe('legacy/enrollment');
    expect(config.bucket).toBe('secret-bucket');
  });

  it('uses SECRETS_NAME when SECRETS_MANAGER_SECRET_NAME is blank', async () => {
    // Prepare
    const fetcher = fakeFetcher('{}');

    // Act
    await loadConfig(env({ SECRETS_MANAGER_SECRET_NAME: ' ', SECRETS_NAME: 'legacy/enrollment' }), fetcher.fetch);

    // Assess
    expect(fetcher.asked).toEqual(['legacy/enrollment']);
  });

  it('prefers SECRETS_MANAGER_SECRET_NAME when both are set', async () => {
    // Prepare
    const fetcher = fakeFetcher('{}');

    // Act
    await loadConfig(env({ SECRETS_MANAGER_SECRET_NAME: 'new/name', SECRETS_NAME: 'legacy/name' }), fetcher.fetch);

    // Assess
    expect(fetcher.asked).toEqual(['new/name']);
  });

  it('lets the secret supply the required worker settings', async () => {
    // Prepare
    const fetcher = fakeFetcher(JSON.stringify({ SQS_QUEUE_URL: QUEUE, S3_BUCKET: 'secret-bucket', JOB_SIGNING_KEY: 'k'.repeat(32) }));

    // Act
    const { config } = await loadConfig({ AWS_REGION: 'us-east-1', SECRETS_NAME: 'prod' }, fetcher.fetch);

    // Assess
    expect(config.queueUrl).toBe(QUEUE);
    expect(config.bucket).toBe('secret-bucket');
  });

  it('checks the bootstrap settings before fetching anything', async () => {
    // Prepare
    const fetcher = fakeFetcher('{}');

    // Act
    const error = await rejectionOf(() => loadConfig({ SECRETS_NAME: 'prod', SQS_QUEUE_URL: QUEUE, S3_BUCKET: 'b-1' }, fetcher.fetch));

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual(['AWS_REGION is required']);
    expect(fetcher.asked).toEqual([]);
  });

  it('fails when the secret is not JSON', async () => {
    // Prepare
    const fetcher = fakeFetcher('not json');

    // Act
    const error = await rejectionOf(() => loadConfig(env({ SECRETS_NAME: 'prod' }), fetcher.fetch));

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
  });

  it('passes on the fetcher\'s error when the secret cannot be read', async () => {
    // Prepare
    const denied = Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' });
    const fetcher = fakeFetcher(denied);

    // Act
    const error = await rejectionOf(() => loadConfig(env({ SECRETS_NAME: 'prod' }), fetcher.fetch));

    // Assess
    expect(error).toBe(denied);
  });

  it('blames the secret for a bad value it supplied', async () => {
    // Prepare
    const fetcher = fakeFetcher('{"STAGING_BUCKET":"face-references"}');

    // Act
    const error = await rejectionOf(() => loadConfig(env({ SECRETS_NAME: 'prod' }), fetcher.fetch));

    // Assess
    expect((error as ConfigError).problems).toEqual([
      'STAGING_BUCKET (from the secret) must differ from S3_BUCKET (references are never read back as sources)',
    ]);
  });
});

describe('parseConfig: tracing (OTEL_*)', () => {
  it('reads the OpenTelemetry settings; the signal-specific ones win, the general endpoint gets /v1/traces', () => {
    // Act
    const general = parseConfig(env({ OTEL_TRACES_EXPORTER: 'OTLP', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/', OTEL_SERVICE_NAME: 'enroll-eu', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' })).tracing;
    const specific = parseConfig(env({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' })).tracing;

    // Assess
    expect(general).toMatchObject({ exporter: 'otlp', protocol: 'http/json', url: 'http://127.0.0.1:4318/v1/traces', serviceName: 'enroll-eu', sampler: 'parentbased_traceidratio', samplerRatio: 0.25 });
    expect(specific).toMatchObject({ exporter: 'none', protocol: 'http/protobuf', url: 'http://b:4318/custom' });
  });

  it.each([
    ['OTEL_TRACES_EXPORTER', 'jaeger', 'OTEL_TRACES_EXPORTER must be one of none, otlp'],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', 'grpc', 'OTEL_EXPORTER_OTLP_PROTOCOL must be one of http/protobuf, http/json'],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'localhost:4318', 'OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL of an OTLP/HTTP receiver (e.g. http://127.0.0.1:4318)'],
    ['OTEL_TRACES_SAMPLER', 'sometimes', expect.stringMatching(/^OTEL_TRACES_SAMPLER must be one of always_on, /)],
    ['OTEL_TRACES_SAMPLER_ARG', '1.5', 'OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1'],
    ['OTEL_BSP_MAX_QUEUE_SIZE', '0', 'OTEL_BSP_MAX_QUEUE_SIZE must be a whole number from 1 to 65536'],
  ])('refuses %s=%s, naming the variable', (name, value, problem) => {
    expect(problemsOf({ [name]: value })).toEqual([problem]);
  });

  it('comes from the environment only: the secret cannot switch tracing on or point it elsewhere', () => {
    const result = settingsFromSecret(JSON.stringify({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://elsewhere:4318' }), 'shared');
    expect(result).toEqual({ settings: {}, ignored: ['OTEL_TRACES_EXPORTER', 'OTEL_EXPORTER_OTLP_ENDPOINT'] });
  });
});
