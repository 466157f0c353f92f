// The mutation floors' check (test/mutation/floors.ts): scores per directory as Stryker counts them,
// a directory below its floor or missing from the report named, the message path held to 90 %.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FLOORS, groupScores, shortfalls, type MutationReport } from '../mutation/floors.ts';

/** A report with, per file, so many mutants of each status. */
function report(files: Record<string, Record<string, number>>): MutationReport {
  return {
    files: Object.fromEntries(
      Object.entries(files).map(([path, counts]) => [path, { mutants: Object.entries(counts).flatMap(([status, n]) => Array.from({ length: n }, () => ({ status }))) }]),
    ),
  };
}

/** Every group of FLOORS at 100 %, so a test changes only what it is about. */
const everyGroupWhole: Record<string, Record<string, number>> = {
  'src/config.ts': { Killed: 10 },
  'src/aws/s3.ts': { Killed: 10 },
  'src/enroll/enroll.ts': { Killed: 10 },
  'src/face/plan.ts': { Killed: 10 },
  'src/image/decode.ts': { Killed: 10 },
  'src/producer/enqueue.ts': { Killed: 10 },
  'src/worker/daemon.ts': { Killed: 10 },
  'src/job/contract.ts': { Killed: 10 },
  'src/worker/settle.ts': { Killed: 10 },
};

describe('groupScores', () => {
  it('counts killed and timed-out as detected, survived and uncovered as not, and leaves out the rest', () => {
    // Act
    const scores = groupScores(report({ ...everyGroupWhole, 'src/aws/s3.ts': { Killed: 6, Timeout: 2, Survived: 1, NoCoverage: 1, CompileError: 5, Ignored: 3, RuntimeError: 1 } }));

    // Assess
    expect(scores.find((s) => s.name === 'src/aws')).toEqual({ name: 'src/aws', floor: 80, detected: 8, undetected: 2, score: 80 });
  });

  it('puts a file in its own directory only, reads absolute and Windows paths, and counts the message path apart too', () => {
    // Act
    const scores = groupScores(
      report({
        '/build/repo/src/worker/settle.ts': { Killed: 9, Survived: 1 },
        'C:\\repo\\src\\worker\\daemon.ts': { Killed: 1, Survived: 1 },
        'src/enroll/nested/deep.ts': { Killed: 1 },
        'src/cli.ts': { Survived: 1 },
      }),
    );
    const byName = Object.fromEntries(scores.map((s) => [s.name, s.score]));

    // Assess
    expect(byName['src/worker']).toBeCloseTo((100 * 10) / 12);
    expect(byName[FLOORS.at(-1)?.name ?? '']).toBe(90);
    expect(byName['src (top level)']).toBe(0);
    expect(byName['src/enroll']).toBeUndefined();
  });
});

describe('shortfalls', () => {
  it('is empty when every group reaches its floor, exactly at it included', () => {
    // Act
    const problems = shortfalls(groupScores(report({ ...everyGroupWhole, 'src/aws/s3.ts': { Killed: 4, Survived: 1 }, 'src/job/contract.ts': { Killed: 9, Survived: 1 } })));

    // Assess
    expect(problems).toEqual([]);
  });

  it('names each group below its floor: 80 % for a directory, 90 % for src/job and the message path', () => {
    // Act
    const problems = shortfalls(
      groupScores(
        report({
          ...everyGroupWhole,
          'src/aws/s3.ts': { Killed: 79, Survived: 21 },
          'src/job/contract.ts': { Killed: 89, Survived: 11 },
          'src/worker/retry.ts': { Killed: 7, NoCoverage: 3 },
        }),
      ),
    );

    // Assess
    expect(problems).toEqual([
      'src/aws: 79.0 % is below its floor of 80 % (79 detected, 21 survived or not covered)',
      'src/job: 89.0 % is below its floor of 90 % (89 detected, 11 survived or not covered)',
      expect.stringMatching(/^message path .*: 85\.0 % is below its floor of 90 % \(17 detected, 3 survived or not covered\)$/),
    ]);
  });

  it('names a directory with no mutants in the report', () => {
    // Prepare
    const { 'src/face/plan.ts': _left, ...withoutFace } = everyGroupWhole;

    // Act
    const problems = shortfalls(groupScores(report(withoutFace)));

    // Assess
    expect(problems).toEqual(['src/face: no mutants in the report (is it in stryker.config.json\'s "mutate"?)']);
  });
});

describe('FLOORS', () => {
  it('has a floor for every directory of src/ (the native glue aside, which Stryker does not mutate)', () => {
    // Prepare
    const directories = readdirSync('src', { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && entry.name !== 'native')
      .map((entry) => `src/${entry.name}`);

    // Assess
    expect(directories.length).toBeGreaterThan(0);
    for (const dir of directories) expect(FLOORS.map((f) => f.name)).toContain(dir);
  });
});
