// The mutation score's floors, per directory of src/ (README "Mutation testing"): reads Stryker's
// JSON report (reports/mutation/mutation.json) and exits 1 when any directory is below its floor or
// missing from the report. Run by `npm run test:mutation:floors` and by .ci/run after the
// incremental run. Stryker's own `thresholds.break` judges only the score of everything together.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** A group of source files and the score it must reach, in per cent. */
export interface Floor {
  readonly name: string;
  readonly floor: number;
  readonly includes: (path: string) => boolean;
}

const inDirectory = (dir: string) => (path: string) => path.startsWith(`${dir}/`) && !path.slice(dir.length + 1).includes('/');
const MESSAGE_PATH = ['job-message', 'settle', 'dead-letter', 'retry', 'outcomes', 'consumer'].map((f) => `src/worker/${f}.ts`);

/** 80 % for every directory; 90 % for the contract (src/job) and for the message path. */
export const FLOORS: readonly Floor[] = [
  { name: 'src (top level)', floor: 80, includes: inDirectory('src') },
  ...['aws', 'enroll', 'face', 'image', 'producer', 'worker'].map((dir) => ({ name: `src/${dir}`, floor: 80, includes: inDirectory(`src/${dir}`) })),
  { name: 'src/job', floor: 90, includes: inDirectory('src/job') },
  { name: 'message path (src/worker: job-message, settle, dead-letter, retry, outcomes, consumer)', floor: 90, includes: (path) => MESSAGE_PATH.includes(path) },
];

/** The part of Stryker's report (mutation-testing-report-schema) read here. */
export interface MutationReport {
  readonly files: Readonly<Record<string, { readonly mutants: readonly { readonly status: string }[] }>>;
}

export interface GroupScore {
  readonly name: string;
  readonly floor: number;
  readonly detected: number;
  readonly undetected: number;
  /** Detected ÷ (detected + undetected), in per cent, as Stryker counts it; undefined without mutants. */
  readonly score: number | undefined;
}

const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

/** Paths as the report names them (absolute or relative, either separator) → `src/...`. */
function sourcePath(path: string): string {
  const unix = path.replaceAll('\\', '/');
  const at = unix.lastIndexOf('/src/');
  return at >= 0 ? unix.slice(at + 1) : unix;
}

export function groupScores(report: MutationReport, floors: readonly Floor[] = FLOORS): GroupScore[] {
  return floors.map(({ name, floor, includes }) => {
    let detected = 0;
    let undetected = 0;
    for (const [path, file] of Object.entries(report.files)) {
      if (!includes(sourcePath(path))) continue;
      for (const { status } of file.mutants) {
        if (DETECTED.has(status)) detected += 1;
        else if (UNDETECTED.has(status)) undetected += 1;
      }
    }
    const total = detected + undetected;
    return { name, floor, detected, undetected, score: total === 0 ? undefined : (100 * detected) / total };
  });
}

/** One line per group below its floor, or with no mutant at all (a directory left out of the run). */
export function shortfalls(scores: readonly GroupScore[]): string[] {
  return scores.flatMap(({ name, floor, score, detected, undetected }) => {
    if (score === undefined) return [`${name}: no mutants in the report (is it in stryker.config.json's "mutate"?)`];
    if (score < floor) return [`${name}: ${score.toFixed(1)} % is below its floor of ${floor} % (${detected} detected, ${undetected} survived or not covered)`];
    return [];
  });
}

function main(path: string): number {
  const report = JSON.parse(readFileSync(path, 'utf8')) as MutationReport;
  const scores = groupScores(report);
  for (const { name, floor, score, detected, undetected } of scores) {
    const shown = score === undefined ? 'no mutants' : `${score.toFixed(1)} %`;
    console.log(`[mutation] ${name}: ${shown} (floor ${floor} %; ${detected} detected / ${undetected} not)`);
  }
  const problems = shortfalls(scores);
  for (const problem of problems) console.error(`[mutation] below the floor: ${problem}`);
  return problems.length === 0 ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = main(process.argv[2] ?? 'reports/mutation/mutation.json');
}
