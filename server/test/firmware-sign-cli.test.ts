// `npm run firmware:sign` as an operator runs it, from their own directory: npm runs the command
// in the repository root, so relative paths (--out, --key, --image) are taken from the directory
// npm was started in (INIT_CWD), and the paths printed are absolute.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseSigningKeys } from '../src/platform/config-firmware.js';
import { runFirmwareSign } from '../src/cli/firmware-sign.js';
import { verifyManifestSignature } from '../src/modules/firmware/manifest.js';
import { tempDir } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string): Promise<Result> {
  const env = { ...process.env };
  delete env['INIT_CWD']; // npm sets its own; the plain node run below must have none
  // The printed upload command names the server from these: the default here.
  delete env['PUBLIC_URL'];
  delete env['PORT'];
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

/** `npm run firmware:sign -- …` started in `cwd` (npm finds the repository by --prefix). */
const npmRun = (args: string[], cwd: string) =>
  run('npm', ['--prefix', ROOT, 'run', '-s', 'firmware:sign', '--', ...args], cwd);

const dirs: { remove(): void }[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.remove();
});

describe('npm run firmware:sign: relative paths', { timeout: 120_000 }, () => {
  it('are taken from the directory npm was run from, and printed absolute; the signature verifies', async () => {
    const dir = tempDir('kioskhub-fw-sign-');
    dirs.push(dir);
    const keys = `keys-${randomBytes(4).toString('hex')}`;
    const build = `build-${randomBytes(4).toString('hex')}`;

    const keygen = await npmRun(['keygen', '--key-id', 'k1', '--out', keys], dir.path);
    expect(keygen.code, keygen.stderr).toBe(0);
    const keyFile = join(dir.path, keys, 'k1.pem');
    expect(keygen.stdout).toContain(`private key: ${keyFile} (keep it offline)`);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(existsSync(join(ROOT, keys))).toBe(false);
    const entry = /^FIRMWARE_SIGNING_KEYS=(\S+)$/m.exec(keygen.stdout)?.[1];
    expect(entry).toBeDefined();

    mkdirSync(join(dir.path, 'fw'));
    writeFileSync(join(dir.path, 'fw', 'kiosk 2.0.0.bin'), randomBytes(4096));
    const sign = await npmRun(
      [
        'sign',
        '--key',
        `${keys}/k1.pem`,
        '--key-id',
        'k1',
        '--image',
        'fw/kiosk 2.0.0.bin',
        '--version',
        '2.0.0',
        '--product',
        'kiosk-fw',
        '--hw',
        'esp32-s3',
        '--out',
        build,
      ],
      dir.path,
    );
    expect(sign.code, sign.stderr).toBe(0);
    const manifestFile = join(dir.path, build, 'manifest.json');
    const signatureFile = join(dir.path, build, 'manifest.sig');
    expect(sign.stdout).toContain(`manifest: ${manifestFile}\n`);
    expect(sign.stdout).toContain(`signature: ${signatureFile}\n`);
    expect(sign.stdout).toContain(
      `upload: curl -H "Authorization: Bearer $ADMIN_TOKEN" -F "image=@${join(dir.path, 'fw', 'kiosk 2.0.0.bin')}" ` +
        `-F "manifest=<${manifestFile}" -F "signature=<${signatureFile}" -F keyId=k1 http://127.0.0.1:8080/v1/firmware`,
    );
    // A server elsewhere: the upload command names its PUBLIC_URL (else PORT on this machine).
    for (const [env, url] of [
      [{ PUBLIC_URL: 'https://fleet.example.com/' }, 'https://fleet.example.com/v1/firmware'],
      [{ PORT: '9090' }, 'http://127.0.0.1:9090/v1/firmware'],
    ] as const) {
      const lines: string[] = [];
      const args = ['sign', '--key', `${keys}/k1.pem`, '--key-id', 'k1', '--image', 'fw/kiosk 2.0.0.bin'];
      const more = ['--version', '2.0.0', '--product', 'kiosk-fw', '--hw', 'esp32-s3', '--out', build];
      expect(runFirmwareSign([...args, ...more], (l) => lines.push(l), dir.path, env)).toBe(0);
      expect(lines.find((l) => l.startsWith('upload: '))).toMatch(
        new RegExp(` ${url.replace(/[.]/g, '\\.')}$`),
      );
    }
    expect(existsSync(join(ROOT, build))).toBe(false);
    const manifest = readFileSync(manifestFile, 'utf8');
    expect(JSON.parse(manifest)).toMatchObject({ product: 'kiosk-fw', version: '2.0.0', size: 4096 });
    const trusted = parseSigningKeys(entry, (message) => new Error(message));
    expect(() =>
      verifyManifestSignature(trusted, 'k1', manifest, readFileSync(signatureFile, 'utf8').trim()),
    ).not.toThrow();

    // A key that is not there is named by its absolute path: exit 2, no stack trace, nothing written.
    const missing = await npmRun(
      ['sign', '--key', 'nope.pem', '--key-id', 'k1', '--image', 'fw/kiosk 2.0.0.bin'].concat([
        '--version',
        '2.0.0',
        '--product',
        'kiosk-fw',
        '--hw',
        'esp32-s3',
        '--out',
        'other',
      ]),
      dir.path,
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(
      `firmware:sign: --key: cannot read ${join(dir.path, 'nope.pem')} (no such file)`,
    );
    expect(missing.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dir.path, 'other'))).toBe(false);
  });

  it('without npm (no INIT_CWD) they are taken from the current directory', async () => {
    const dir = tempDir('kioskhub-fw-sign-');
    dirs.push(dir);
    const script = join(ROOT, 'server/src/cli/firmware-sign.ts');
    // tsx by its path: the temporary directory has no node_modules to find it in.
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const r = await run(process.execPath, ['--import', tsx, script, 'keygen', '--key-id', 'k2'], dir.path);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`private key: ${join(dir.path, 'k2.pem')} (keep it offline)`);
    expect(existsSync(join(dir.path, 'k2.pem'))).toBe(true);
  });
});
