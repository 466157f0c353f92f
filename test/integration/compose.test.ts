// docker-compose.yml, checked by a real compose parser, and its worker settings by the worker's own
// configuration rules, so a typo in either shows here rather than on a developer's laptop.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig, settingsFromSecret } from '../../src/config.ts';

const root = resolve(import.meta.dirname, '..', '..');
const file = join(root, 'docker-compose.yml');

/** The `environment:` mapping of one service, read from the file's own indentation. */
function serviceEnvironment(text: string, service: string): Record<string, string> {
  const block = text.split(`\n  ${service}:\n`)[1]?.split(/\n {2}\S/)[0] ?? '';
  const env = block.split('\n    environment:\n')[1]?.split(/\n {4}\S/)[0] ?? '';
  return Object.fromEntries(
    [...env.matchAll(/^ {6}([A-Z0-9_]+): (.*)$/gm)].map((m) => [m[1] ?? '', (m[2] ?? '').replace(/^"|"$/g, '')]),
  );
}

describe('docker-compose.yml', () => {
  it('is valid for a real compose parser', () => {
    // Debian's docker-compose validates offline; .ci/run installs it.
    const out = execFileSync('docker-compose', ['-f', file, 'config', '--quiet'], { encoding: 'utf8', env: { ...process.env, LOCALSTACK_AUTH_TOKEN: '' } });
    expect(out).toBe('');
  });

  it('pins LocalStack to the last image that needs no auth token, and passes a token through', () => {
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/image: localstack\/localstack:4\.14\.0\n/);
    expect(text).toContain('LOCALSTACK_AUTH_TOKEN: ${LOCALSTACK_AUTH_TOKEN:-}');
  });

  it("gives the worker settings its own configuration accepts, with the secret the LocalStack init hook creates", () => {
    const env = serviceEnvironment(readFileSync(file, 'utf8'), 'worker');
    expect(Object.keys(env)).toContain('SQS_QUEUE_URL');
    const init = readFileSync(join(root, 'test', 'support', 'localstack-init.sh'), 'utf8');
    const secretText = /--secret-string '([^']*)'/.exec(init)?.[1] ?? '';
    const { settings } = settingsFromSecret(secretText, 'enrollment-worker/settings');

    const config = parseConfig(env, settings);

    expect(config).toMatchObject({ bucket: 'enrollment-refs', stagingBucket: 'enrollment-staging', metricsPort: 9464 });
  });
});
