// `npm run qr:provision -- M01,M02`: a payment QR code per machine (CONTRACTS.md §1), written
// to qr/<id>.png. Opens the configured database directly (not the whole app: no gateway, no
// outbox relay), so it is safe next to a running server; SQLite in WAL mode allows that.
import type { Config } from '../platform/config.js';
import { parseCliArgs, startCli, UsageError } from './cli-kit.js';
import { openDatabase } from '../platform/db/database.js';
import { createMachinesRepo } from '../modules/machines/machines.repo.js';
import { createMachinesService } from '../modules/machines/machines.service.js';
import {
  createProvisioningService,
  MACHINE_ID,
  type PaymentChannel,
  type ProvisionResult,
} from '../modules/machines/provisioning.service.js';
import { formatRupees, isValidVpa } from '../modules/machines/upi-link.js';
import { createTenantsService, DEFAULT_TENANT } from '../modules/tenants/tenants.service.js';
import { createRazorpayClient } from '../providers/razorpay/razorpay.api.js';

const USAGE = `Usage: npm run qr:provision -- <ids> [options]

  <ids>             machine ids, comma-separated (M01,M02,M03); missing machines are created
  --amount <paise>  fixed price of one vend in paise (default 2000 = ₹20.00)
  --out <dir>       where the images go (default qr)
  --force           replace the QR of machines that already have one
  --tenant <id>     tenant of new machines (default "default")
  --site <id>       site of new machines (default: the tenant's default site)
  --help            this text

With RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET set, each machine gets a Razorpay UPI QR code
and payments dispense automatically (the server needs RAZORPAY_WEBHOOK_SECRET). Without them,
UPI_VPA (and UPI_PAYEE_NAME) make local UPI QR codes that pay the VPA directly; one of the two
must be set. \`npm run pay -- <id>\` then sends a signed test payment for a machine to the server.`;

interface CliOptions {
  ids: string[];
  amountPaise: number;
  outDir: string;
  force: boolean;
  tenantId: string;
  siteId?: string;
}

function parseCli(argv: string[]): CliOptions | 'help' {
  const { values, positionals } = parseCliArgs(argv, {
    amount: { type: 'string' },
    out: { type: 'string' },
    force: { type: 'boolean' },
    tenant: { type: 'string' },
    site: { type: 'string' },
  });
  if (values.help) return 'help';
  const ids = [
    ...new Set(
      positionals
        .flatMap((p) => p.split(','))
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    ),
  ];
  if (ids.length === 0) throw new UsageError('give at least one machine id, e.g. M01,M02');
  const bad = ids.filter((id) => !MACHINE_ID.test(id));
  if (bad.length > 0) {
    throw new UsageError(
      `invalid machine id${bad.length > 1 ? 's' : ''} ${bad.map((b) => `"${b}"`).join(', ')}: an id is 1–64 characters of A–Z, a–z, 0–9, _ and -`,
    );
  }
  const amountText = values.amount ?? '2000';
  const amountPaise = Number(amountText);
  if (!/^\d+$/.test(amountText) || amountPaise < 1 || amountPaise > 10_000_000) {
    throw new UsageError(
      `--amount is in paise: a whole number from 1 to 10000000 (₹1,00,000), got "${amountText}"`,
    );
  }
  for (const [flag, value] of [
    ['--tenant', values.tenant],
    ['--site', values.site],
  ] as const) {
    if (value !== undefined && !MACHINE_ID.test(value))
      throw new UsageError(`${flag} "${value}" is not a valid id`);
  }
  return {
    ids,
    amountPaise,
    outDir: values.out ?? 'qr',
    force: values.force ?? false,
    tenantId: values.tenant ?? DEFAULT_TENANT,
    ...(values.site ? { siteId: values.site } : {}),
  };
}

/** The payment channel the configuration allows, or a message saying what to set. */
function channelFor(config: Config): { channel: PaymentChannel; notices: string[] } | { error: string } {
  const { keyId, keySecret, apiBase, webhookSecrets } = config.razorpay;
  if (keyId && keySecret) {
    const notices =
      webhookSecrets.length === 0
        ? [
            'RAZORPAY_WEBHOOK_SECRET is not set: until the server has it, payments to these QR codes are not turned into vends.',
          ]
        : [];
    return {
      channel: { kind: 'razorpay', client: createRazorpayClient({ baseUrl: apiBase, keyId, keySecret }) },
      notices,
    };
  }
  const vpa = config.upi.vpa;
  if (!vpa) {
    return {
      error: [
        'No payment provider is configured, so no QR code was made and nothing was changed. Set one of:',
        '  RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET  Razorpay QR codes; payments dispense automatically',
        '  UPI_VPA (and UPI_PAYEE_NAME)             local UPI QR codes paying that VPA; nothing confirms the payment',
        'To try Kioskhub without Razorpay keys, give a VPA and send test payments with npm run pay:',
        '  UPI_VPA=shop@okaxis npm run qr:provision -- M01 --amount 2000',
        '  npm run pay -- M01',
      ].join('\n'),
    };
  }
  if (!isValidVpa(vpa))
    return { error: `UPI_VPA "${vpa}" is not a UPI address (expected name@handle, e.g. shop@okaxis)` };
  const notices = [
    `No Razorpay keys: making local UPI QR codes that pay ${vpa} directly.`,
    'WARNING: payments to a local UPI QR cannot be confirmed automatically. UPI apps do not tell Kioskhub',
    'that anyone paid, so these machines will not dispense by themselves. Set RAZORPAY_KEY_ID and',
    'RAZORPAY_KEY_SECRET for QR codes whose payments dispense automatically.',
  ];
  const payeeName = config.upi.payeeName ?? vpa;
  if (!config.upi.payeeName)
    notices.push(`UPI_PAYEE_NAME is not set: payers will see "${vpa}" as the payee name.`);
  return { channel: { kind: 'upi_local', vpa, payeeName }, notices };
}

function describeResult(r: ProvisionResult, force: boolean): string {
  const parts: string[] = [];
  if (r.createdKey) parts.push(`created machine (key: ${r.createdKey} — shown once)`);
  if (r.status === 'failed') parts.push(`FAILED: ${r.error ?? 'unknown error'}`);
  else if (r.status === 'skipped')
    parts.push(
      `already has QR ${r.qrCodeId}${r.imagePath ? ` -> ${r.imagePath}` : ''}; skipped${force ? '' : ' (--force replaces it)'}`,
    );
  else parts.push(`QR ${r.qrCodeId} -> ${r.imagePath}`);
  return parts.join(', ') + r.notes.map((n) => `\n        ${n}`).join('');
}

async function run(argv: string[]): Promise<number> {
  const started = startCli('qr:provision', USAGE, argv, parseCli);
  if (typeof started === 'number') return started;
  const { options, config } = started;
  if (config.database.kind === 'sqlite-memory') {
    console.error(
      'qr:provision: DATABASE_URL=memory:// keeps nothing; point DATA_DIR or DATABASE_URL at the database your server uses.',
    );
    return 2;
  }
  const chosen = channelFor(config);
  if ('error' in chosen) {
    console.error(`qr:provision: ${chosen.error}`);
    return 2;
  }
  for (const line of chosen.notices) console.log(line);

  // Same database and schema as the server (app.ts).
  const database = await openDatabase(config.database, {
    ...(config.databaseSchema ? { schema: config.databaseSchema } : {}),
  });
  try {
    const tenants = createTenantsService(database.db);
    const where =
      config.database.kind === 'sqlite-file'
        ? config.database.file
        : `PostgreSQL${config.databaseSchema ? ` schema ${config.databaseSchema}` : ''}`;
    // A database nobody has started yet: create the default tenant like the server would. One a
    // server has started is left alone: a server run with ADMIN_TOKEN stores no generated token,
    // and this command must not make one up for it.
    if (!(await tenants.exists(DEFAULT_TENANT))) {
      const secrets = await tenants.bootstrap({
        ...(config.adminToken ? { adminToken: config.adminToken } : {}),
        ...(config.jwtSecret ? { jwtSecret: config.jwtSecret } : {}),
      });
      console.log(
        `New database (${where}): no server has used it yet. If yours is running already, it uses ` +
          'another one: run this with its DATA_DIR (or DATABASE_URL and DATABASE_SCHEMA).',
      );
      if (secrets.generatedAdminToken) {
        console.log(
          `An admin token was generated. It is shown this once; keep it safe.\n  ADMIN_TOKEN=${secrets.generatedAdminToken}`,
        );
      }
    }
    const machines = createMachinesService({
      db: database.db,
      repo: createMachinesRepo(database.db, database.dialect),
      siteCurrency: tenants.siteCurrency,
      tenantExists: tenants.exists,
      pendingLastSeen: () => undefined,
    });
    const provisioning = createProvisioningService({ machines, channel: chosen.channel });
    console.log(
      `Provisioning ${options.ids.length} machine(s) at ₹${formatRupees(options.amountPaise)} per vend (${where}) -> ${options.outDir}/`,
    );

    const results: ProvisionResult[] = [];
    for (const [i, machineId] of options.ids.entries()) {
      let result: ProvisionResult;
      try {
        result = await provisioning.provision({
          machineId,
          tenantId: options.tenantId,
          amountPaise: options.amountPaise,
          force: options.force,
          outDir: options.outDir,
          ...(options.siteId ? { siteId: options.siteId } : {}),
        });
      } catch (err) {
        result = {
          machineId,
          status: 'failed',
          notes: [],
          error: err instanceof Error ? err.message : String(err),
        };
      }
      results.push(result);
      const line = `[${i + 1}/${options.ids.length}] ${machineId} ... ${describeResult(result, options.force)}`;
      if (result.status === 'failed') console.error(line);
      else console.log(line);
    }

    const count = (s: ProvisionResult['status']) => results.filter((r) => r.status === s);
    const failed = count('failed');
    console.log(
      `Done: ${count('provisioned').length} provisioned, ${count('skipped').length} skipped, ${failed.length} failed${failed.length ? ` (${failed.map((r) => r.machineId).join(', ')})` : ''}.`,
    );
    if (results.some((r) => r.createdKey))
      console.log("Machine keys above are shown once: put each into its machine's configuration now.");
    if (failed.length > 0)
      console.log('Fix the cause and run the same command again: provisioned machines are skipped.');
    return failed.length > 0 ? 1 : 0;
  } finally {
    await database.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error('qr:provision: failed:', err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
