// Temporary folders that are removed at the end of the run, on failure and on Ctrl-C.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup } from './cleanup.js';

export function tempDir(prefix: string): { path: string; remove: () => Promise<void> } {
  const path = mkdtempSync(join(tmpdir(), `kioskhub-bench-${prefix}-`));
  const rm = () => rmSync(path, { recursive: true, force: true });
  const remove = onCleanup(`temp dir ${path}`, rm, rm);
  return { path, remove };
}
