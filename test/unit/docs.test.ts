// The docs cannot drift from the code: the reference tables are what `npm run docs` would write
// from it (settings, error codes, metrics), every relative link and #anchor in README.md and docs/
// resolves, every `npm run` script and `enrollment-worker` command or flag they name exists, and the
// env file example ops edit has a line for every setting. Each check is also shown failing on a
// broken input, so a check that cannot fail would be seen.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { USAGE } from '../../src/commands.ts';
import { SECRET_NAME_SETTING, SETTING_DOCS, SETTING_NAMES } from '../../src/config.ts';
import { ERROR_CODE_DOCS, JOB_ERROR_CODES, RETRIES_EXHAUSTED } from '../../src/job/errors.ts';
import { brokenLinks, commandsOf, unknownCommands, unknownScripts } from '../support/doc-links.ts';
import { sourceFiles } from './helpers.ts';
import {
  errorCodesTable,
  generatedFiles,
  GENERATED,
  MissingDoc,
  metricsTable,
  ROOT,
  settingsTable,
  withTable,
  workerMetrics,
} from '../support/docs.ts';

const read = (file: string) => readFileSync(new URL(file, ROOT), 'utf8');

/** README.md, docs/*.md and BENCHMARKS.md, by their path from the repository's root. */
function docFiles(): Map<string, string> {
  const files = new Map<string, string>([
    ['README.md', read('README.md')],
    ['BENCHMARKS.md', read('BENCHMARKS.md')],
  ]);
  for (const name of readdirSync(new URL('docs/', ROOT)).sort()) {
    if (name.endsWith('.md')) files.set(`docs/${name}`, read(`docs/${name}`));
  }
  return files;
}

const exists = (file: string) => existsSync(new URL(file, ROOT));

describe('the generated tables', () => {
  it('are what npm run docs writes from the code (run it after adding a setting, an error code or a metric)', () => {
    for (const [file, text] of generatedFiles()) expect(read(file), `${file} is out of date: run npm run docs`).toBe(text);
  });

  it('have a row for every setting, error code and metric', () => {
    const settings = settingsTable();
    for (const name of [...SETTING_NAMES, SECRET_NAME_SETTING]) expect(settings).toContain(`| \`${name}\``);
    const codes = errorCodesTable();
    for (const code of [...JOB_ERROR_CODES, RETRIES_EXHAUSTED]) expect(codes).toContain(`| \`${code}\` |`);
    const metrics = metricsTable();
    for (const { name } of workerMetrics()) expect(metrics).toContain(`| \`${name}\` |`);
  });

  it('know every metric the source defines (a metric registered outside the generator would be missed)', () => {
    const named = new Set(
      sourceFiles(new URL('src/', ROOT).pathname)
        .flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/['"`](enrollment_[a-z_]+)['"`]/g)].map((m) => m[1] ?? '')),
    );
    const generated = new Set(workerMetrics().map((m) => m.name));
    expect([...named].filter((n) => !generated.has(n))).toEqual([]);
  });

  it('stop, naming the item, when a setting, an error code or a metric has no description', () => {
    const { CONCURRENCY: _dropped, ...settingDocs } = SETTING_DOCS;
    expect(() => settingsTable(settingDocs)).toThrow(new MissingDoc('setting CONCURRENCY has no description: add it to SETTING_DOCS in src/config.ts'));
    const { JOB_EXPIRED: _gone, ...codeDocs } = ERROR_CODE_DOCS;
    expect(() => errorCodesTable(codeDocs)).toThrow(/error code JOB_EXPIRED has no description/);
    expect(() => metricsTable([{ name: 'enrollment_new_total', type: 'counter', labels: [], help: ' ' }])).toThrow(
      /metric enrollment_new_total has no help text/,
    );
  });

  it('a committed table that differs from the code is seen (a new setting not regenerated)', () => {
    const [name, { file }] = Object.entries(GENERATED)[0] ?? ['', { file: '' }];
    const stale = withTable(read(file), name, settingsTable().split('\n').slice(0, -1).join('\n'));
    expect(stale).not.toBe(generatedFiles().get(file));
  });
});

describe('links and anchors in README.md and docs/', () => {
  it('every relative link and #anchor resolves', () => {
    expect(brokenLinks(docFiles(), exists)).toEqual([]);
  });

  it('a renamed heading, a missing file and a bad anchor are caught', () => {
    const files = new Map([
      ['README.md', 'See [ops](docs/ops.md#deploy-on-ec2), [gone](docs/gone.md), [here](#where-next) and [code](src/config.ts).'],
      ['docs/ops.md', '# Operations\n\n## Deploy on EC2 (renamed)\n\n```\n## Deploy on EC2\n```\n'],
    ]);
    expect(brokenLinks(files, (f) => f === 'src/config.ts')).toEqual([
      'README.md: docs/ops.md#deploy-on-ec2 — no heading in docs/ops.md gives #deploy-on-ec2',
      'README.md: docs/gone.md — no file docs/gone.md',
      'README.md: #where-next — no heading in README.md gives #where-next',
    ]);
  });

  it('README.md is a front door: at most 20 KB', () => {
    expect(statSync(new URL('README.md', ROOT)).size).toBeLessThanOrEqual(20 * 1024);
  });
});

describe('commands the docs name', () => {
  const scripts = new Set(Object.keys((JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts));
  // Imported, not read from the file: mutation testing runs these tests against instrumented sources.
  const commands = commandsOf(USAGE);

  it('reads the CLI usage text', () => {
    expect([...commands.keys()].sort()).toEqual(['check', 'enqueue', 'run', 'schema']);
    expect([...(commands.get('enqueue') ?? [])].sort()).toEqual(['--job-id', '--message-group-id', '--no-wait', '--timeout', '--traceparent', '--user']);
  });

  it('every npm run <script> exists in package.json', () => {
    expect(unknownScripts(docFiles(), scripts)).toEqual([]);
    expect(unknownScripts(new Map([['x.md', 'run `npm run test:everything` and `npm run -s docs`']]), scripts)).toEqual([
      'x.md: npm run test:everything',
    ]);
  });

  it('every enrollment-worker <command> --flag exists in the CLI', () => {
    expect(unknownCommands(docFiles(), commands)).toEqual([]);
    const bogus = new Map([['x.md', '`enrollment-worker check --fix`, `enrollment-worker doctor`, `systemctl restart enrollment-worker`']]);
    expect(unknownCommands(bogus, commands)).toEqual(['x.md: enrollment-worker check --fix', 'x.md: enrollment-worker doctor']);
  });
});

describe('systemd/enrollment-worker.env.example', () => {
  it('has a line for every setting, set or commented out', () => {
    const example = read('systemd/enrollment-worker.env.example');
    const named = new Set([...example.matchAll(/^#?([A-Z0-9_]+)=/gm)].map((m) => m[1]));
    expect(SETTING_NAMES.filter((name) => !named.has(name))).toEqual([]);
  });
});
