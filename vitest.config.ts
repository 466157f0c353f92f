import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // Pure and quick: run first, so a broken rule fails fast.
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // One emulator for the whole run; each test file makes its own queues and buckets.
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 90_000,
          hookTimeout: 120_000,
          // Files spawn worker processes; two cores are shared with the emulator.
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          // `npm run test:faults` only: `npm test` names the two projects above.
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          // Scenarios freeze the emulator for longer than the SDK's timeouts and wait out visibility
          // timeouts: generous limits, and one file at a time so they do not fight for the cores.
          testTimeout: 240_000,
          hookTimeout: 120_000,
          maxWorkers: 1,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
