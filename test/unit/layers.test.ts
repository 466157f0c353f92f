// The layers docs/architecture.md "Layout" promises, read from the import lines of the source: the contract
// and the use case import no AWS SDK and nothing from the layers above them, and the library face
// for producers (src/index.ts) does not drag in the daemon, the image stack or clients it never uses.
// A new import that breaks a layer fails here, not in a review.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sourceFiles } from './helpers.ts';

const src = resolve(import.meta.dirname, '..', '..', 'src');

/** Every module specifier a file imports or re-exports (static and dynamic). */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s(?:[^;']*?from\s+)?'([^']+)'/g), ...text.matchAll(/import\(\s*'([^']+)'\s*\)/g)];
  return found.map((m) => m[1] ?? '');
}

/** A specifier as a path under src/ (for local files) or as the package name. */
function target(file: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier;
  return relative(src, resolve(dirname(file), specifier));
}

/** The src/ files and packages reachable from `entry` through its imports. */
function closure(entry: string): Set<string> {
  const seen = new Set<string>();
  const pending = [entry];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    for (const spec of specifiers(file)) {
      const name = target(file, spec);
      if (seen.has(name)) continue;
      seen.add(name);
      const path = join(src, name);
      if (spec.startsWith('.') && existsSync(path)) pending.push(path);
    }
  }
  return seen;
}

const importsOf = (dir: string) => sourceFiles(join(src, dir)).flatMap((f) => specifiers(f).map((s) => ({ file: relative(src, f), name: target(f, s) })));

describe('layers', () => {
  it('finds the imports it judges (the reader is not blind)', () => {
    expect(importsOf('job').map((i) => i.name)).toContain('zod');
    expect(importsOf('image').map((i) => i.name)).toContain('sharp');
    expect(closure(join(src, 'cli.ts'))).toContain('@aws-sdk/client-sqs');
  });

  it('the contract (job/) imports only Node, zod and itself', () => {
    const outside = importsOf('job').filter((i) => !(i.name.startsWith('node:') || i.name === 'zod' || i.name.startsWith('job/')));
    expect(outside).toEqual([]);
  });

  it('the use case (enroll/) imports no AWS SDK and nothing from the worker, the AWS edge or the commands', () => {
    const above = importsOf('enroll').filter((i) => /^(@aws-sdk\/|@smithy\/|worker\/|aws\/|cli\.ts|commands\.ts|bootstrap\.ts)/.test(i.name));
    expect(above).toEqual([]);
  });

  it('the image code (image/) imports only Node, sharp, the contract and itself: the use case and the face check build on it', () => {
    const outside = importsOf('image').filter((i) => !(i.name.startsWith('node:') || i.name === 'sharp' || i.name.startsWith('job/') || i.name.startsWith('image/')));
    expect(outside).toEqual([]);
  });

  it('the library face (index.ts) reaches neither the daemon, the image stack, the face model, the secrets client nor the tracing SDK (only its API)', () => {
    const reached = [...closure(join(src, 'index.ts'))];
    const heavy = reached.filter((name) =>
      /^(worker\/|face\/|image\/(?!images\.ts)|bootstrap\.ts|commands\.ts|sharp|pino|piscina|@tensorflow\/|@vladmandic\/|@aws-sdk\/client-secrets-manager|@aws-sdk\/client-sts|@opentelemetry\/(?!api$))/.test(name),
    );
    expect(heavy).toEqual([]);
  });
});
