// Absolute paths inside the repository, wherever the bench is started from.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const repoPath = (...parts: string[]): string => resolve(REPO_ROOT, ...parts);
export const benchPath = (...parts: string[]): string => resolve(REPO_ROOT, 'bench/src', ...parts);
