import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Synthesis of the whole stack takes a few seconds; cdk-nag adds a few more.
    testTimeout: 60_000,
  },
});
