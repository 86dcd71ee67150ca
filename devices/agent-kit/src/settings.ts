// Agent settings: KEY=VALUE env files (the systemd EnvironmentFile format) overridden by the
// process environment, read into typed values with errors that name the variable.
import { constants, existsSync, readFileSync } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { parseEnv } from 'node:util';

/** A problem the operator fixes (a setting, a second agent running): printed without a stack trace. */
export class OperatorError extends Error {}

export class ConfigError extends OperatorError {}

/**
 * The folder an agent keeps its files in (`variable` names its setting): created when missing and
 * writable, or a ConfigError (exit 78, which systemd does not restart) instead of a crash.
 */
export async function usableDirectory(dir: string, variable: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(`${variable}: cannot use "${dir}" as a folder (${code})`);
  }
}

/** Variables the usage text marks "(required)". */
export function requiredVariables(usage: string): string[] {
  return usage
    .split('\n')
    .filter((l) => l.includes('(required)'))
    .map((l) => l.trim().split(/\s+/)[0]!);
}

export type Vars = Record<string, string | undefined>;

/** `--config FILE` / `--config=FILE` / `--help`. */
export function parseArgs(argv: readonly string[]): { configPath?: string; help: boolean } {
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h') return { help: true };
    if (arg === '--config') configPath = argv[++i];
    else if (arg.startsWith('--config=')) configPath = arg.slice('--config='.length);
    else throw new ConfigError(`unknown argument "${arg}" (see --help)`);
    if (!configPath) throw new ConfigError('--config needs a file name');
  }
  return configPath === undefined ? { help: false } : { configPath, help: false };
}

/** The file's variables (a missing default file gives none), with the environment on top. */
export function readSettings(
  configPath: string | undefined,
  defaultPath: string,
  env: NodeJS.ProcessEnv,
): Vars {
  const path = configPath ?? defaultPath;
  if (configPath !== undefined && !existsSync(path))
    throw new ConfigError(`config file ${path} does not exist`);
  const fromFile = existsSync(path) ? parseEnv(readFileSync(path, 'utf8')) : {};
  return { ...fromFile, ...env };
}

export function text(vars: Vars, name: string, fallback?: string): string {
  const value = vars[name]?.trim() || fallback;
  if (value === undefined) throw new ConfigError(`${name} is required (see --help)`);
  return value;
}

/**
 * A machine key: sent in an HTTP header, so visible ASCII only. A key pasted with curly quotes or a
 * stray character would otherwise fail every request as if the server could not be reached.
 */
export function deviceKey(vars: Vars, name: string): string {
  const value = text(vars, name);
  if (!/^[\x21-\x7e]+$/.test(value))
    throw new ConfigError(
      `${name} holds a character no HTTP header can carry (quotes or spaces pasted with it?)`,
    );
  return value;
}

export function integer(vars: Vars, name: string, fallback: number, min: number, max: number): number {
  const raw = vars[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new ConfigError(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
  return value;
}

export function oneOf<T extends string>(vars: Vars, name: string, allowed: readonly T[], fallback: T): T {
  const value = text(vars, name, fallback);
  if (!(allowed as readonly string[]).includes(value))
    throw new ConfigError(`${name} must be one of ${allowed.join(', ')} (got "${value}")`);
  return value as T;
}

export function machineId(name: string, value: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(value))
    throw new ConfigError(`${name} must be a machine id (1-64 of A-Z a-z 0-9 _ -), got "${value}"`);
  return value;
}

/** The server's base URL: http(s), a path allowed (reverse proxies), no trailing slash. */
export function baseUrl(name: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be a URL like https://kiosk.example.com (got "${raw}")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConfigError(`${name} must be an http:// or https:// URL (got "${raw}")`);
  if (url.search || url.hash)
    throw new ConfigError(`${name} must not have a query or fragment (got "${raw}")`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}
