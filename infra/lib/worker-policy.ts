// The worker's IAM policy is systemd/iam-policy.json — the file `test/unit/iam-policy.test.ts`
// holds against the SDK calls in src/ — with its placeholders replaced by this stack's resources.
// One source: the stack never writes a statement of its own for the worker.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const IAM_POLICY_FILE = resolve(import.meta.dirname, '..', '..', 'systemd', 'iam-policy.json');

/** The placeholders of systemd/iam-policy.json (docs/operations.md "IAM"). */
export const PLACEHOLDERS = [
  'REGION',
  'ACCOUNT_ID',
  'JOBS_QUEUE',
  'DEAD_LETTER_QUEUE',
  'RESULT_QUEUE',
  'REFERENCE_BUCKET',
  'STAGING_BUCKET',
  'STAGING_PREFIX',
  'SECRET_NAME',
] as const;

export type Placeholder = (typeof PLACEHOLDERS)[number];

export interface PolicyJson {
  Version: string;
  Statement: Record<string, unknown>[];
}

export function readPolicyFile(path = IAM_POLICY_FILE): PolicyJson {
  return JSON.parse(readFileSync(path, 'utf8')) as PolicyJson;
}

const PLACEHOLDER = new RegExp(`\\b(${PLACEHOLDERS.join('|')})\\b`, 'g');

/**
 * The document with every placeholder in every string replaced by its value (plain text or a CDK
 * token, which CloudFormation resolves). A placeholder without a value is an error: a statement
 * must never reach IAM with a literal `JOBS_QUEUE` in it.
 */
export function substitute(doc: PolicyJson, values: Record<Placeholder, string>): PolicyJson {
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') {
      return value.replace(PLACEHOLDER, (name) => {
        const v = values[name as Placeholder];
        if (v === undefined || v === '') throw new Error(`${IAM_POLICY_FILE}: no value for ${name}`);
        return v;
      });
    }
    if (Array.isArray(value)) return value.map(walk);
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]));
    }
    return value;
  };
  return walk(doc) as PolicyJson;
}
