// The unit project alone, for mutation testing (stryker.config.json): integration tests spawn the
// worker from dist/, which Stryker's mutants never reach, and take minutes per run.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    // The 2,100-file corrupted-JPEG corpus takes ~50 s to build, and would be run again for every
    // mutant of images.ts and decode.ts it touches.
    exclude: ['test/unit/lossless.corpus.test.ts'],
    // One worker process for every run: Stryker runs a few test files per mutant, thousands of
    // times, and a fresh process per file (importing sharp, zod and the sources again) would be
    // most of the cost. The unit files hold no state across files (they also pass this way).
    isolate: false,
  },
});
