// The shipped IAM policy against the code: every AWS command the worker sends is allowed, and the
// policy allows nothing the worker never does. The commands are read from the source itself, so a
// new SDK call without a policy change (or a stale grant) fails here.
import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sourceFiles } from './helpers.ts';

const root = resolve(import.meta.dirname, '..', '..');
const policy = JSON.parse(readFileSync(join(root, 'systemd', 'iam-policy.json'), 'utf8')) as {
  Statement: { Sid: string; Effect: string; Action: string[]; Resource: string | string[]; Condition?: unknown }[];
};

const SERVICE_PREFIX: Readonly<Record<string, string>> = {
  '@aws-sdk/client-sqs': 'sqs',
  '@aws-sdk/client-s3': 's3',
  '@aws-sdk/client-secrets-manager': 'secretsmanager',
  '@aws-sdk/client-sts': 'sts',
};

// Commands whose IAM action is named differently, or needs none.
const ACTION_OF: Readonly<Record<string, string | null>> = {
  's3:HeadObject': 's3:GetObject',
  's3:ListObjectsV2': 's3:ListBucket',
  // A batch call needs the permission of its single-message form.
  'sqs:DeleteMessageBatch': 'sqs:DeleteMessage',
  'sqs:ChangeMessageVisibilityBatch': 'sqs:ChangeMessageVisibility',
  'sqs:SendMessageBatch': 'sqs:SendMessage',
  'sts:GetCallerIdentity': null, // needs no permission
};

/** `sqs:SendMessage` for every `new SendMessageCommand(` in a file importing it from client-sqs. */
function actionsIn(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const services = new Map<string, string>();
  for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*'(@aws-sdk\/client-[a-z0-9-]+)'/g)) {
    const prefix = SERVICE_PREFIX[m[2] ?? ''];
    if (!prefix) continue;
    for (const name of (m[1] ?? '').split(',')) services.set(name.replace(/\btype\b/, '').trim(), prefix);
  }
  return [...text.matchAll(/new (\w+)Command\(/g)].flatMap((m) => {
    const prefix = services.get(`${m[1]}Command`);
    if (!prefix) throw new Error(`${relative(root, file)}: cannot tell which service ${m[1]}Command belongs to`);
    const raw = `${prefix}:${m[1]}`;
    const action = raw in ACTION_OF ? ACTION_OF[raw] : raw;
    return action ? [action] : [];
  });
}

// The producer side (`enqueue`) runs as the producer's principal, not the worker's role.
const workerFiles = sourceFiles(join(root, 'src')).filter((f) => !f.includes(`${join('src', 'producer')}`));
const called = new Set(workerFiles.flatMap(actionsIn));
const granted = new Set(policy.Statement.flatMap((s) => s.Action));

describe('systemd/iam-policy.json', () => {
  it('finds the calls in the source (the scan itself works)', () => {
    expect(called).toContain('s3:PutObject');
    expect(called).toContain('sqs:SendMessage');
    expect(called).toContain('secretsmanager:GetSecretValue');
  });

  it('allows every AWS call the worker makes', () => {
    expect([...called].filter((a) => !granted.has(a)).sort()).toEqual([]);
  });

  it('allows nothing the worker never calls', () => {
    expect([...granted].filter((a) => !called.has(a)).sort()).toEqual([]);
  });

  it('is allow-only, with no wildcard action, and every resource is one named ARN', () => {
    for (const statement of policy.Statement) {
      expect(statement.Effect).toBe('Allow');
      for (const action of statement.Action) expect(action).not.toContain('*');
      for (const resource of [statement.Resource].flat()) {
        expect(resource).toMatch(/^arn:aws:(sqs|s3|secretsmanager):/);
        expect(resource).not.toMatch(/:\*$|^arn:aws:s3:::\*/);
      }
    }
  });

  it('writes references only under users/, and reads only the staging prefix', () => {
    const put = policy.Statement.filter((s) => s.Action.includes('s3:PutObject')).flatMap((s) => [s.Resource].flat());
    const get = policy.Statement.filter((s) => s.Action.includes('s3:GetObject')).flatMap((s) => [s.Resource].flat());

    expect(put).toEqual(['arn:aws:s3:::REFERENCE_BUCKET/users/*']);
    expect(get).toEqual(['arn:aws:s3:::STAGING_BUCKET/STAGING_PREFIX*']);
  });

  it('lists key names only under users/ of the reference bucket and the staging prefix, each by a prefix condition', () => {
    // On the staging bucket for its effect (a missing staged object is 404, not 403: SOURCE_NOT_FOUND,
    // not a retry); on the reference bucket to name what an earlier attempt of a failed job stored.
    const list = policy.Statement.filter((s) => s.Action.includes('s3:ListBucket')).map((s) => [s.Resource, s.Condition]);
    expect(list).toEqual([
      ['arn:aws:s3:::REFERENCE_BUCKET', { StringLike: { 's3:prefix': ['users/*'] } }],
      ['arn:aws:s3:::STAGING_BUCKET', { StringLike: { 's3:prefix': ['STAGING_PREFIX*'] } }],
    ]);
  });
});
