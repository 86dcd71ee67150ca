// `npm run pay -- M01 [--amount 2000]`: a test payment. Sends the running server a correctly
// signed Razorpay `qr_code.credited` for the machine's QR code, as Razorpay would when someone
// pays it, and prints the order it created and where to watch it.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Config } from '../platform/config.js';
import { parseCliArgs, startCli, UsageError } from './cli-kit.js';
import { DatabaseUnreachableError, openDatabase } from '../platform/db/database.js';
import { createMachinesRepo } from '../modules/machines/machines.repo.js';
import { MACHINE_ID } from '../modules/machines/provisioning.service.js';
import { formatRupees } from '../modules/machines/upi-link.js';
import { qrCreditedEvent } from '../providers/razorpay/razorpay.events.js';
import { signRazorpayBody } from '../providers/razorpay/razorpay.webhook.js';

const USAGE = `Usage: npm run pay -- <machine id> [options]

  --amount <paise>  amount paid (default: the machine's fixed QR amount, else 2000 = ₹20.00)
  --url <url>       the server (default http://127.0.0.1:<PORT>, PORT from the environment or 8080)
  --qr <id>         the QR code id to pay, without looking the machine up in the database
                    (e.g. qr_demo_DEMO01 for a machine of npm run demo)
  --help            this text

Signs with RAZORPAY_WEBHOOK_SECRET (the server's value) and reads the machine's QR code from the
server's database (DATA_DIR or DATABASE_URL), as qr:provision does.`;

interface Options {
  machineId: string;
  amountPaise: number | undefined;
  url: string | undefined;
  qrCodeId: string | undefined;
}

function parseCli(argv: string[]): Options | 'help' {
  const { values, positionals } = parseCliArgs(argv, {
    amount: { type: 'string' },
    url: { type: 'string' },
    qr: { type: 'string' },
  });
  if (values.help) return 'help';
  if (positionals.length !== 1 || !MACHINE_ID.test(positionals[0]!))
    throw new UsageError('give one machine id, e.g. npm run pay -- M01');
  let amountPaise: number | undefined;
  if (values.amount !== undefined) {
    amountPaise = Number(values.amount);
    if (!/^\d+$/.test(values.amount) || amountPaise < 1 || amountPaise > 10_000_000) {
      throw new UsageError(`--amount is in paise: a whole number from 1 to 10000000, got "${values.amount}"`);
    }
  }
  if (values.url !== undefined && !/^https?:\/\/[^\s]+$/.test(values.url))
    throw new UsageError(`--url must be an http(s) URL, got "${values.url}"`);
  return {
    machineId: positionals[0]!,
    amountPaise,
    url: values.url?.replace(/\/+$/, ''),
    qrCodeId: values.qr,
  };
}

/** The machine's QR code id and fixed amount, from the server's database. */
async function lookUpQr(
  config: Config,
  machineId: string,
): Promise<{ qrCodeId: string; fixedAmountPaise: number | null }> {
  if (config.database.kind === 'sqlite-memory') {
    throw new UsageError(
      'DATABASE_URL=memory:// keeps nothing to look the machine up in; pass its QR code id with --qr',
    );
  }
  // Opening a file that is not there would create an empty database beside the server's.
  if (config.database.kind === 'sqlite-file' && !existsSync(config.database.file)) {
    throw new UsageError(
      `there is no database at ${config.database.file}: run this with the DATA_DIR (or DATABASE_URL) ` +
        'your server uses, or pass the QR code id with --qr',
    );
  }
  const database = await openDatabase(config.database, {
    ...(config.databaseSchema ? { schema: config.databaseSchema } : {}),
  });
  try {
    const row = await createMachinesRepo(database.db, database.dialect).findById(machineId);
    if (!row)
      throw new UsageError(
        `there is no machine ${machineId} in ${config.database.kind === 'sqlite-file' ? config.database.file : 'this database'}`,
      );
    if (!row.payment_qr_code_id) {
      throw new UsageError(
        `machine ${machineId} has no payment QR yet: run npm run qr:provision -- ${machineId} first`,
      );
    }
    return {
      qrCodeId: row.payment_qr_code_id,
      fixedAmountPaise:
        row.payment_fixed_amount_minor === null ? null : Number(row.payment_fixed_amount_minor),
    };
  } finally {
    await database.close();
  }
}

/** The order's status as the server has it, when ADMIN_TOKEN is set here; else undefined. */
async function orderStatus(
  url: string,
  orderId: string,
  adminToken: string | undefined,
): Promise<string | undefined> {
  if (!adminToken) return undefined;
  try {
    const res = await fetch(`${url}/v1/orders/${encodeURIComponent(orderId)}`, {
      headers: { authorization: `Bearer ${adminToken}` },
      signal: AbortSignal.timeout(5_000),
    });
    const body = (await res.json().catch(() => ({}))) as { status?: unknown };
    return res.ok && typeof body.status === 'string' ? body.status : undefined;
  } catch {
    return undefined;
  }
}

async function run(argv: string[]): Promise<number> {
  const started = startCli('pay', USAGE, argv, parseCli);
  if (typeof started === 'number') return started;
  const { options, config } = started;
  const secret = config.razorpay.webhookSecrets[0];
  if (!secret) {
    console.error(
      'pay: RAZORPAY_WEBHOOK_SECRET is not set: set it to the value the server uses (the payment is signed with it).',
    );
    return 2;
  }
  let qr: { qrCodeId: string; fixedAmountPaise: number | null };
  try {
    qr = options.qrCodeId
      ? { qrCodeId: options.qrCodeId, fixedAmountPaise: null }
      : await lookUpQr(config, options.machineId);
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof DatabaseUnreachableError)) throw err;
    console.error(`pay: ${err.message}`);
    return 2;
  }
  const host = ['0.0.0.0', '::', ''].includes(config.host) ? '127.0.0.1' : config.host;
  const url = options.url ?? `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
  const amountPaise = options.amountPaise ?? qr.fixedAmountPaise ?? 2000;
  const paymentId = `pay_test${randomBytes(7).toString('hex')}`;
  const eventId = `evt_test${randomBytes(7).toString('hex')}`;
  const raw = JSON.stringify(
    qrCreditedEvent({
      qrCodeId: qr.qrCodeId,
      amountPaise,
      paymentId,
      notes: { machine_id: options.machineId },
    }),
  );

  console.log(
    `Paying ₹${formatRupees(amountPaise)} to ${options.machineId} (QR ${qr.qrCodeId}): signed qr_code.credited -> ${url}/webhooks/razorpay`,
  );
  let res: Response;
  try {
    res = await fetch(`${url}/webhooks/razorpay`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-razorpay-signature': signRazorpayBody(raw, secret),
        'x-razorpay-event-id': eventId,
      },
      body: raw,
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    console.error(
      `pay: cannot reach the server at ${url} (${cause?.code ?? cause?.message ?? (err as Error).message}); is it running? (--url or PORT)`,
    );
    return 1;
  }
  const answer = (await res.json().catch(() => ({}))) as {
    orderId?: string;
    duplicate?: boolean;
    ignored?: string;
    error?: { code?: string; message?: string };
  };
  if (res.status === 401) {
    console.error(
      'pay: the server refused the signature (401 BAD_SIGNATURE): RAZORPAY_WEBHOOK_SECRET here is not the server’s.',
    );
    return 1;
  }
  if (!res.ok) {
    console.error(
      `pay: the server answered ${res.status} ${answer.error?.code ?? ''}: ${answer.error?.message ?? JSON.stringify(answer)}`,
    );
    return 1;
  }
  if (!answer.orderId) {
    const why = answer.ignored === 'UNKNOWN_QR' ? ' (no machine of this server has that QR code)' : '';
    console.error(
      `pay: the server took the payment but made no order: ignored ${answer.ignored ?? '?'}${why}`,
    );
    return 1;
  }
  const status = await orderStatus(url, answer.orderId, config.adminToken);
  const mismatch = `this order is FAILED with AMOUNT_MISMATCH and is not dispensed`;
  let outcome: string;
  if (status === 'FAILED') outcome = `The server made ${mismatch.replace('this order is ', 'it ')}.`;
  else if (qr.fixedAmountPaise !== null && amountPaise !== qr.fixedAmountPaise)
    outcome = `The machine's QR is for ₹${formatRupees(qr.fixedAmountPaise)}: ${mismatch}.`;
  else if (qr.fixedAmountPaise === null && status === undefined)
    // --qr: the QR's own amount was not looked up, and the order could not be read back.
    outcome =
      `If ₹${formatRupees(amountPaise)} is the QR's amount, a connected machine dispenses it now; if not, ` +
      `${mismatch}: its timeline says which.`;
  else outcome = 'A connected machine dispenses it now; an offline one when it connects.';
  console.log(
    [
      `Order ${answer.orderId} created for ${options.machineId} (payment ${paymentId}).`,
      'Watch it:',
      `  dashboard  ${url}/orders/${answer.orderId}`,
      `  API        curl -H "Authorization: Bearer $ADMIN_TOKEN" ${url}/v1/orders/${answer.orderId}/timeline`,
      `  payment    curl -H "Authorization: Bearer $ADMIN_TOKEN" ${url}/v1/payment-events/razorpay/${paymentId}`,
      outcome,
    ].join('\n'),
  );
  return 0;
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error('pay: failed:', err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
