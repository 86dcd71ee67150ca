import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', 'bench/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two at a time on a 2-core machine (vitest's default there is one): the run keeps both cores
    // about 90% busy with servers, child processes and browsers; a third worker made the heavy
    // files twice as slow and timed one out.
    maxWorkers: 2,
    // A worker keeps its loaded modules from one test file to the next instead of importing the
    // whole server again for each (that import was 190 s of a 960 s run). Every file starts its
    // own servers, databases and schemas, restores real timers and sets no process-wide state.
    isolate: false,
  },
});
