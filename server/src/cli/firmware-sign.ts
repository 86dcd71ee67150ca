// `npm run firmware:sign`: make a signing key, or sign a firmware image's manifest offline
// (CONTRACTS.md §15). The private key never goes near the server: only the manifest, its
// signature and the key id are uploaded with the image.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, manifestFor, signManifest } from '../modules/firmware/signing.js';
import { parseCliArgs, UsageError } from './cli-kit.js';

const USAGE = `Usage:
  npm run firmware:sign -- keygen --key-id <id> [--out <dir>]
      writes <dir>/<id>.pem (the private key: keep it offline) and prints the
      FIRMWARE_SIGNING_KEYS entry "<id>:<base64 SPKI DER>" for the server
  npm run firmware:sign -- sign --key <file.pem> --key-id <id> --image <file> --version <v>
        --product <name> --hw <model[,model]> [--min-from <v>] [--allow-downgrade] [--out <dir>]
      writes <dir>/manifest.json (the exact signed bytes) and <dir>/manifest.sig (base64)
      and prints the curl command that uploads them with the image

Options:
  --out <dir>   where files go (default: the current directory)
  --help        this text`;

export function runFirmwareSign(argv: string[], print: (line: string) => void = console.log): number {
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
  const out = values.out ?? '.';
  if (!existsSync(out)) mkdirSync(out, { recursive: true });
  const command = positionals[0];
  if (command === 'keygen') {
    const keyId = need('key-id');
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(keyId)) throw new UsageError('--key-id: 1–64 letters, digits, . _ -');
    const file = join(out, `${keyId}.pem`);
    if (existsSync(file)) throw new UsageError(`${file} exists already; never overwrite a signing key`);
    const key = generateSigningKey(keyId);
    writeFileSync(file, key.privateKeyPem, { mode: 0o600 });
    print(`private key: ${file} (keep it offline)`);
    print(`FIRMWARE_SIGNING_KEYS=${key.entry}`);
    return 0;
  }
  if (command === 'sign') {
    const image = readFileSync(need('image'));
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
    const signature = signManifest(readFileSync(need('key'), 'utf8'), manifest);
    writeFileSync(join(out, 'manifest.json'), manifest);
    writeFileSync(join(out, 'manifest.sig'), signature + '\n');
    print(`manifest: ${join(out, 'manifest.json')}`);
    print(`signature: ${join(out, 'manifest.sig')}`);
    print(
      `upload: curl -H "Authorization: Bearer $ADMIN_TOKEN" -F image=@${need('image')} ` +
        `-F manifest="<${join(out, 'manifest.json')}" -F signature="<${join(out, 'manifest.sig')}" ` +
        `-F keyId=${need('key-id')} http://127.0.0.1:8080/v1/firmware`,
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
    console.error(`firmware:sign: ${err.message}\n(npm run firmware:sign -- --help shows the usage)`);
    process.exitCode = 2;
  }
}
