// `npm run test:systemd`: the unit under a real systemd in a container (test/systemd/). Not part
// of `npm test`: it needs root and boots a container.
import { resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: resolve(import.meta.dirname, '..', '..'),
    include: ['test/systemd/**/*.test.ts'],
    // One container, checks in order.
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 25 * 60_000,
  },
});
