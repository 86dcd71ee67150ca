// `npm run firmware:sign`: make a signing key, or sign a firmware image's manifest offline
// (CONTRACTS.md §15). The private key never goes near the server: only the manifest, its
// signature and the key id are uploaded with the image.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateSigningKey, manifestFor, signManifest } from '../modules/firmware/signing.js';
import { parseCliArgs, UsageError, usageErrorText, userDirectory } from './cli-kit.js';

const USAGE = `Usage:
  npm run firmware:sign -- keygen --key-id <id> [--out <dir>]
      writes <dir>/<id>.pem (the private key: keep it offline) and prints the
      FIRMWARE_SIGNING_KEYS entry "<id>:<base64 SPKI DER>" for the server
  npm run firmware:sign -- sign --key <file.pem> --key-id <id> --image <file> --version <v>
        --product <name> --hw <model[,model]> [--min-from <v>] [--allow-downgrade] [--out <dir>]
      writes <dir>/manifest.json (the exact signed bytes) and <dir>/manifest.sig (base64)
      and prints the curl command that uploads them with the image

Options:
  --out <dir>   where files go (default: the directory you ran npm from)
  --help        this text

Relative paths (--out, --key, --image) are taken from the directory you ran npm from, not the
repository root where npm runs the command; the paths printed are absolute.`;

/** A word for a POSIX shell, in double quotes (so `<` and spaces stay part of it). */
const quoted = (word: string): string => `"${word.replace(/["\\$`]/g, '\\$&')}"`;

/** Where the upload goes: the server's PUBLIC_URL, else this machine on its PORT (default 8080). */
const serverUrl = (env: NodeJS.ProcessEnv): string =>
  env['PUBLIC_URL']?.trim().replace(/\/+$/, '') || `http://127.0.0.1:${env['PORT']?.trim() || '8080'}`;

export function runFirmwareSign(
  argv: string[],
  print: (line: string) => void = console.log,
  from: string = userDirectory(),
  env: NodeJS.ProcessEnv = process.env,
): number {
  const { values, positionals } = parseCliArgs(argv, {
    'key-id': { type: 'string' },
    key: { type: 'string' },
    image: { type: 'string' },
    version: { type: 'string' },
    product: { type: 'string' },
    hw: { type: 'string' },
    'min-from': { type: 'string' },
    'allow-downgrade': { type: 'boolean' },
    out: { type: 'string' },
  });
  if (values.help) {
    print(USAGE);
    return 0;
  }
  const need = (name: keyof typeof values): string => {
    const v = values[name];
    if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
    return v;
  };
  const path = (name: 'out' | 'key' | 'image'): string => resolve(from, need(name));
  const read = (name: 'key' | 'image'): Buffer => {
    const file = path(name);
    try {
      return readFileSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT'
          ? 'no such file'
          : code === 'EISDIR'
            ? 'a directory'
            : code === 'EACCES'
              ? 'permission denied'
              : (err as Error).message;
      throw new UsageError(`--${name}: cannot read ${file} (${why})`);
    }
  };
  const out = resolve(from, values.out ?? '.');
  const command = positionals[0];
  if (command === 'keygen') {
    const keyId = need('key-id');
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(keyId)) throw new UsageError('--key-id: 1–64 letters, digits, . _ -');
    const file = join(out, `${keyId}.pem`);
    if (existsSync(file)) throw new UsageError(`${file} exists already; never overwrite a signing key`);
    const key = generateSigningKey(keyId);
    mkdirSync(out, { recursive: true });
    writeFileSync(file, key.privateKeyPem, { mode: 0o600 });
    print(`private key: ${file} (keep it offline)`);
    print(`FIRMWARE_SIGNING_KEYS=${key.entry}`);
    return 0;
  }
  if (command === 'sign') {
    const keyId = need('key-id');
    const imageFile = path('image');
    const image = read('image');
    const privateKeyPem = read('key').toString('utf8');
    const manifest = manifestFor(image, {
      product: need('product'),
      hwModels: need('hw')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      version: need('version'),
      ...(values['min-from'] ? { minFromVersion: values['min-from'] } : {}),
      allowDowngrade: values['allow-downgrade'] === true,
    });
    let signature: string;
    try {
      signature = signManifest(privateKeyPem, manifest);
    } catch (err) {
      throw new UsageError(`--key: ${path('key')} is not a usable private key (${(err as Error).message})`);
    }
    const manifestFile = join(out, 'manifest.json');
    const signatureFile = join(out, 'manifest.sig');
    mkdirSync(out, { recursive: true });
    writeFileSync(manifestFile, manifest);
    writeFileSync(signatureFile, signature + '\n');
    print(`manifest: ${manifestFile}`);
    print(`signature: ${signatureFile}`);
    print(
      `upload: curl -H "Authorization: Bearer $ADMIN_TOKEN" -F ${quoted(`image=@${imageFile}`)} ` +
        `-F ${quoted(`manifest=<${manifestFile}`)} -F ${quoted(`signature=<${signatureFile}`)} ` +
        `-F keyId=${keyId} ${serverUrl(env)}/v1/firmware`,
    );
    return 0;
  }
  throw new UsageError(command ? `unknown command "${command}" (keygen or sign)` : 'say keygen or sign');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop()!)) {
  try {
    process.exitCode = runFirmwareSign(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(usageErrorText('firmware:sign', USAGE, err));
    process.exitCode = 2;
  }
}
