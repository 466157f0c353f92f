// The launch template's user data: infra/bootstrap/bootstrap.sh as it is in the repo, after a block
// of `export NAME='value'` lines — the environment the script documents at its top. The systemd
// test runs the same file with the same names (test/systemd/bootstrap.test.ts).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const BOOTSTRAP_FILE = resolve(import.meta.dirname, '..', 'bootstrap', 'bootstrap.sh');

/** EC2 refuses user data above 16 KiB (before base64). */
export const USER_DATA_LIMIT = 16 * 1024;

export function readBootstrap(path = BOOTSTRAP_FILE): string {
  return readFileSync(path, 'utf8');
}

/**
 * The script with its environment in front. Values may be CDK tokens (queue URLs, names), which
 * CloudFormation resolves; every value that reaches it is an AWS-made name or URL, or a parameter
 * whose AllowedPattern admits no quote, so single quotes are enough.
 */
export function userData(script: string, env: Record<string, string>): string {
  if (!script.startsWith('#!/bin/bash\n')) throw new Error(`${BOOTSTRAP_FILE} must start with #!/bin/bash`);
  for (const [name, value] of Object.entries(env)) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`not an environment variable name: ${name}`);
    if (value.includes("'")) throw new Error(`${name}: a quote in a user-data value`);
  }
  const exports = Object.entries(env).map(([name, value]) => `export ${name}='${value}'`);
  return ['#!/bin/bash', '# Set by the launch template (infra/lib/stack.ts):', ...exports, script.slice('#!/bin/bash\n'.length)].join('\n');
}
