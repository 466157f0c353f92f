// The README is the front door for upstream teams and ops: every setting the worker reads and every
// error code it can give must have its row there, and every row must name something real. The env
// file example is what ops edit: every setting has its line there too.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTING_NAMES } from '../../src/config.ts';
import { JOB_ERROR_CODES, RETRIES_EXHAUSTED } from '../../src/job/errors.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The text of one `## ` section. */
function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  expect(start, `README has a "## ${title}" section`).toBeGreaterThan(-1);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

/** The names in the first column of a section's tables: `| \`NAME\` …`. */
const rowNames = (text: string) => [...text.matchAll(/^\| `([A-Z0-9_]+)`/gm)].map((m) => m[1]);

// Read by the secret lookup before the settings are parsed (src/config.ts), so not in SETTING_NAMES.
const SECRET_NAME_SETTINGS = ['SECRETS_MANAGER_SECRET_NAME'];

describe('README', () => {
  it('has a Configuration row for every setting, and no row for a setting that does not exist', () => {
    const rows = rowNames(section('Configuration'));
    expect([...rows].sort()).toEqual([...SETTING_NAMES, ...SECRET_NAME_SETTINGS].sort());
  });

  it('has an Error codes row for every code a job can end with', () => {
    const rows = rowNames(section('Error codes'));
    expect([...rows].sort()).toEqual([...JOB_ERROR_CODES, RETRIES_EXHAUSTED].sort());
  });
});

describe('systemd/enrollment-worker.env.example', () => {
  it('has a line for every setting, set or commented out', () => {
    const example = readFileSync(new URL('../../systemd/enrollment-worker.env.example', import.meta.url), 'utf8');
    const named = new Set([...example.matchAll(/^#?([A-Z0-9_]+)=/gm)].map((m) => m[1]));
    expect(SETTING_NAMES.filter((name) => !named.has(name))).toEqual([]);
  });
});
