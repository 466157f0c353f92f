// `npm run docs`: writes the reference tables of docs/ from the code — the settings from the
// configuration schema (src/config.ts) and what a reload does with them (src/worker/reload.ts), the
// error codes from the error table (src/job/errors.ts), the metrics from their definitions
// (src/worker/metrics.ts) — between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`.
// test/unit/docs.test.ts fails when a committed table differs from what this would write. A setting,
// code or metric without its description stops the run, naming it.
import { readFileSync, writeFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { z } from 'zod';
import {
  ENVIRONMENT_ONLY_NAMES,
  ConfigError,
  parseConfig,
  SECRET_NAME_SETTING,
  SETTING_DOCS,
  SETTING_NAMES,
  SETTING_SCHEMAS,
  type Config,
} from '../../src/config.ts';
import { createMemoryBudget } from '../../src/enroll/memory.ts';
import { ERROR_CODE_DOCS, failureKind, JOB_ERROR_CODES, JobError, RETRIES_EXHAUSTED, type JobErrorCode } from '../../src/job/errors.ts';
import { createJobCounters, registerConsumerGauges, registerMemoryGauges } from '../../src/worker/metrics.ts';
import { reloadPlan } from '../../src/worker/reload.ts';

export const ROOT = new URL('../../', import.meta.url);

/** A description the code lacks: the run stops and says where to add it. */
export class MissingDoc extends Error {
  override readonly name = 'MissingDoc';
}

const MiB = 1024 * 1024;

/** A table cell: one line, pipes escaped. */
const cell = (text: string) => text.replace(/\s*\n\s*/g, ' ').replaceAll('|', '\\|');

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join(
    '\n',
  );
}

// ---- settings -------------------------------------------------------------------------------

interface SchemaFacts {
  type?: string;
  min?: number;
  max?: number;
  values?: string[];
}

interface ZodDefView {
  type?: string;
  in?: z.ZodType;
  out?: z.ZodType;
  innerType?: z.ZodType;
  options?: z.ZodType[];
  entries?: Record<string, string>;
  values?: unknown[];
  format?: string;
}

const defOf = (schema: z.ZodType): ZodDefView => (schema as unknown as { _zod: { def: ZodDefView } })._zod.def;

/** What a setting's schema says of itself: the outermost `.meta()` on its path, else its enum or format. */
function factsOf(schema: z.ZodType): SchemaFacts {
  const meta = z.globalRegistry.get(schema) as SchemaFacts | undefined;
  if (meta?.type !== undefined) return meta;
  const def = defOf(schema);
  if (def.type === 'enum' && def.entries !== undefined) return { type: 'one of', values: Object.values(def.entries) };
  if (def.type === 'literal' && def.values !== undefined) return { type: 'one of', values: def.values.map(String) };
  if (def.type === 'string') return { type: def.format === 'ipv4' ? 'IPv4 address' : 'text' };
  if (def.type === 'union' && def.options !== undefined) {
    const parts = def.options.map(factsOf);
    return { type: parts.map((p) => (p.type === 'one of' ? (p.values ?? []).map((v) => `\`${v}\``).join(', ') : p.type)).join(' or ') };
  }
  for (const inner of [def.out, def.in, def.innerType]) {
    if (inner === undefined) continue;
    const found = factsOf(inner);
    if (found.type !== undefined) return found;
  }
  return {};
}

/** Values of a setting's kind to try when finding out what a reload does with it. */
function samplesOf(schema: z.ZodType): string[] {
  const facts = factsOf(schema);
  const def = defOf(schema);
  if (facts.min !== undefined && facts.max !== undefined) {
    const { min, max } = facts;
    return [min, max, min + 1, Math.floor((min + max) / 2)].map(String);
  }
  if (facts.values !== undefined) return facts.values;
  const byType: Record<string, string[]> = {
    'SQS queue URL': ['https://sqs.us-east-1.amazonaws.com/123456789012/other'],
    'S3 bucket name': ['other-bucket'],
    'AWS region': ['eu-west-1'],
    'http(s) URL': ['http://127.0.0.1:4566'],
    'true/false (or 1/0)': ['true', 'false'],
    'IPv4 address': ['10.0.0.1'],
    text: ['other/'],
  };
  if (facts.type?.startsWith('text, at least')) return ['s'.repeat(64)];
  const samples = byType[facts.type ?? ''];
  if (samples !== undefined) return samples;
  if (def.type === 'union' || facts.type?.includes(' or ')) return ['10.0.0.1', '::1'];
  return [];
}

// A configuration the worker accepts, to change one setting of at a time.
const BASE_ENV: Readonly<Record<string, string>> = {
  SQS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/jobs',
  S3_BUCKET: 'references',
  AWS_REGION: 'us-east-1',
  STAGING_BUCKET: 'staging',
  JOB_SIGNING_KEY: 'k'.repeat(40),
};

function tryConfig(env: Record<string, string>): Config | undefined {
  try {
    return parseConfig(env);
  } catch (e: unknown) {
    if (e instanceof ConfigError) return undefined;
    throw e;
  }
}

/** What SIGHUP does with a changed value of the setting, found by asking src/worker/reload.ts. */
function reloadEffect(name: string, schema: z.ZodType): string {
  if (ENVIRONMENT_ONLY_NAMES.has(name)) return 'no: environment only, read at start';
  const base = tryConfig({ ...BASE_ENV });
  if (base === undefined) throw new Error('test/support/docs.ts: BASE_ENV is not a valid configuration any more');
  for (const sample of samplesOf(schema)) {
    if (BASE_ENV[name] === sample) continue;
    const next = tryConfig({ ...BASE_ENV, [name]: sample });
    if (next === undefined) continue;
    const plan = reloadPlan(base, next);
    if (plan.restart.length > 0) return 'restart';
    if (plan.live.length > 0) return 'yes, from the next job';
  }
  throw new MissingDoc(
    `cannot tell what a reload does with ${name}: no value of its kind changes the configuration (teach samplesOf in test/support/docs.ts its type)`,
  );
}

const formatDefault = (name: string, value: unknown): string => {
  if (typeof value === 'number' && name.endsWith('_BYTES') && value % MiB === 0) return `${value} (${value / MiB} MiB)`;
  return String(value);
};

type SettingDocs = Readonly<Record<string, { readonly doc: string; readonly default?: string }>>;

function defaultOf(name: string, schema: z.ZodType, docs: SettingDocs): string {
  const given = docs[name]?.default;
  if (given !== undefined) return given;
  const parsed = schema.safeParse(undefined);
  if (!parsed.success) return 'required';
  return parsed.data === undefined ? 'unset' : formatDefault(name, parsed.data);
}

function rangeOf(name: string, facts: SchemaFacts): string {
  if (facts.values !== undefined) return facts.values.join(', ');
  if (facts.min === undefined || facts.max === undefined) return '';
  if (name.endsWith('_BYTES')) {
    const human = (n: number) => (n >= 1024 * MiB ? `${n / (1024 * MiB)} GiB` : n >= MiB ? `${n / MiB} MiB` : `${n / 1024} KiB`);
    return `${human(facts.min)}–${human(facts.max)}`;
  }
  return `${facts.min}–${facts.max}`;
}

function docOf(name: string, docs: SettingDocs): string {
  const doc = docs[name]?.doc;
  if (doc === undefined || doc.trim() === '') {
    throw new MissingDoc(`setting ${name} has no description: add it to SETTING_DOCS in src/config.ts`);
  }
  return doc;
}

export function settingsTable(docs: SettingDocs = SETTING_DOCS): string {
  const stray = Object.keys(docs).filter((n) => !SETTING_NAMES.includes(n) && n !== SECRET_NAME_SETTING);
  if (stray.length > 0) throw new MissingDoc(`SETTING_DOCS in src/config.ts describes settings that do not exist: ${stray.join(', ')}`);
  const rows = SETTING_NAMES.map((name) => {
    const schema = SETTING_SCHEMAS[name];
    if (schema === undefined) throw new Error(`no schema for ${name}`);
    const doc = docOf(name, docs); // first: a missing description is the likeliest news
    const facts = factsOf(schema);
    const type = facts.type === 'one of' ? 'one of' : (facts.type ?? 'text');
    return [`\`${name}\``, type, defaultOf(name, schema, docs), rangeOf(name, facts), reloadEffect(name, schema), doc];
  });
  rows.push([`\`${SECRET_NAME_SETTING}\` (or \`SECRETS_NAME\`)`, 'text', 'unset', '', 'no: environment only, read at start', docOf(SECRET_NAME_SETTING, docs)]);
  return table(['variable', 'type', 'default', 'range', 'SIGHUP applies it', 'what it does'], rows);
}

// ---- error codes ----------------------------------------------------------------------------

export function errorCodesTable(docs: Readonly<Record<string, { readonly when: string; readonly producer: string }>> = ERROR_CODE_DOCS): string {
  const codes: string[] = [...JOB_ERROR_CODES, RETRIES_EXHAUSTED];
  const stray = Object.keys(docs).filter((c) => !codes.includes(c));
  if (stray.length > 0) throw new MissingDoc(`ERROR_CODE_DOCS in src/job/errors.ts describes codes that do not exist: ${stray.join(', ')}`);
  const rows = codes.map((code) => {
    const doc = docs[code];
    if (doc === undefined || doc.when.trim() === '' || doc.producer.trim() === '') {
      throw new MissingDoc(`error code ${code} has no description: add "when" and "producer" to ERROR_CODE_DOCS in src/job/errors.ts`);
    }
    const permanent = code !== RETRIES_EXHAUSTED && failureKind(new JobError(code as JobErrorCode, code)) === 'permanent';
    return [
      `\`${code}\``,
      permanent ? 'permanent' : 'transient, retries used up',
      permanent ? 'yes, by the worker, with `ErrorCode` and `ErrorMessage`' : "yes, by the queue's redrive policy, as it came",
      doc.when,
      doc.producer,
    ];
  });
  return table(['code', 'kind', 'dead-lettered', 'when', 'what the producer should do'], rows);
}

// ---- metrics --------------------------------------------------------------------------------

/** Every metric the worker defines, registered the way the daemon registers them. */
export interface MetricFacts {
  readonly name: string;
  readonly type: string;
  readonly labels: readonly string[];
  readonly help: string;
}

export function workerMetrics(): MetricFacts[] {
  const registry = new Registry();
  createJobCounters(registry);
  registerConsumerGauges(registry, () => {
    throw new Error('not scraped');
  });
  registerMemoryGauges(registry, { held: createMemoryBudget(1), decode: createMemoryBudget(1) });
  return registry.getMetricsAsArray().map((metric) => {
    const m = metric as typeof metric & { labelNames?: readonly string[] };
    const type = m instanceof Counter ? 'counter' : m instanceof Histogram ? 'histogram' : m instanceof Gauge ? 'gauge' : String(m.type);
    return { name: m.name, type, labels: m.labelNames ?? [], help: m.help };
  });
}

export function metricsTable(metrics: readonly MetricFacts[] = workerMetrics()): string {
  const rows = metrics.map((m) => {
    if (m.help.trim() === '') throw new MissingDoc(`metric ${m.name} has no help text: give it one in src/worker/metrics.ts`);
    return [`\`${m.name}\``, m.type, m.labels.map((l) => `\`${l}\``).join(', '), m.help];
  });
  return table(['metric', 'type', 'labels', 'what it counts'], rows);
}

// ---- writing --------------------------------------------------------------------------------

/** Each generated table: the file it lives in and how it is made. */
export const GENERATED: Readonly<Record<string, { file: string; make: () => string }>> = {
  settings: { file: 'docs/operations.md', make: () => settingsTable() },
  'error-codes': { file: 'docs/producers.md', make: () => errorCodesTable() },
  metrics: { file: 'docs/operations.md', make: () => metricsTable() },
};

/** The text between a table's markers, or an error naming what is missing. */
export function between(text: string, name: string): { start: number; end: number } {
  const open = `<!-- generated:${name} -->`;
  const close = `<!-- /generated:${name} -->`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  if (start === -1 || end === -1 || end < start) throw new Error(`the markers ${open} … ${close} are missing or out of order`);
  return { start: start + open.length, end };
}

/** `text` with the table `name` replaced by `content`. */
export function withTable(text: string, name: string, content: string): string {
  const { start, end } = between(text, name);
  return `${text.slice(0, start)}\n${content}\n${text.slice(end)}`;
}

/** Every docs file as the code would write it. */
export function generatedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const [name, { file, make }] of Object.entries(GENERATED)) {
    const text = files.get(file) ?? readFileSync(new URL(file, ROOT), 'utf8');
    files.set(file, withTable(text, name, make()));
  }
  return files;
}

if (import.meta.main) {
  try {
    for (const [file, text] of generatedFiles()) {
      const url = new URL(file, ROOT);
      const changed = readFileSync(url, 'utf8') !== text;
      if (changed) writeFileSync(url, text);
      console.log(`${file}: ${changed ? 'written' : 'unchanged'}`);
    }
  } catch (e: unknown) {
    console.error(`npm run docs: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  }
}
