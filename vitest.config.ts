import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', 'bench/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most test files wait on real servers, sockets and fsyncs, not on the CPU: two at a time on
    // a 2-core machine (vitest's default there is one).
    maxWorkers: 2,
  },
});
