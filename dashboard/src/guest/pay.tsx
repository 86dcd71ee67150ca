// Choosing how to pay, and what a pending payment asks of the guest: cash (staff come to the
// table), the wallet (wallet.tsx), a bank transfer (EPC QR, payload text and RF reference) or a
// card (the gateway's hosted checkout). A method the cafe has not set up says so plainly.
import { Fragment, useState } from 'react';
import { call, type GuestOrder, type GuestPayment, type Method } from './api.ts';
import { ErrorBox, fmt } from './parts.tsx';
import { WalletPay } from './wallet.tsx';

const METHODS: { method: Method; label: string; hint: string }[] = [
  { method: 'cash', label: 'Cash', hint: 'A member of staff comes to your table.' },
  { method: 'credit', label: 'Wallet credit', hint: 'Sign in with your phone and a code by SMS.' },
  { method: 'bank_transfer', label: 'Bank transfer', hint: 'Scan the QR code with your banking app.' },
  { method: 'card', label: 'Card', hint: 'Pay on the secure card page.' },
];

export function PaymentChoice({
  tableToken,
  order,
  started,
}: {
  tableToken: string;
  order: GuestOrder;
  started(p: GuestPayment): void;
}) {
  const [method, setMethod] = useState<Method | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function start(m: Method) {
    setBusy(true);
    setError(null);
    try {
      const payment = await call<GuestPayment>('/api/payments/initiate', tableToken, {
        orderId: order.id,
        method: m,
      });
      started(payment);
      if (payment.checkoutUrl) location.assign(payment.checkoutUrl);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby="pay-title">
      <h2 id="pay-title">How would you like to pay {fmt(order.totalMinor, order.currency)}?</h2>
      <fieldset className="methods">
        <legend className="sr-only">Payment method</legend>
        {METHODS.map((m) => (
          <label key={m.method} className={`method${method === m.method ? ' method-on' : ''}`}>
            <input
              type="radio"
              name="method"
              value={m.method}
              checked={method === m.method}
              onChange={() => (setMethod(m.method), setError(null))}
            />
            <span>
              <strong>{m.label}</strong>
              <span className="hint">{m.hint}</span>
            </span>
          </label>
        ))}
      </fieldset>
      {method === 'credit' ? (
        <WalletPay tableToken={tableToken} order={order} paid={started} />
      ) : (
        <>
          <ErrorBox error={error} currency={order.currency} />
          <button
            type="button"
            className="btn primary wide"
            disabled={method === null || busy}
            onClick={() => method && void start(method)}
          >
            {busy
              ? 'One moment…'
              : method === 'cash'
                ? 'Pay with cash'
                : method === 'bank_transfer'
                  ? 'Show the bank transfer details'
                  : method === 'card'
                    ? 'Go to the card payment'
                    : 'Choose a payment method'}
          </button>
        </>
      )}
    </section>
  );
}

/** The payee of an EPC069-12 payload (lines: BCD, version, charset, SCT, BIC, name, IBAN, …). */
function epcFields(payload: string): { label: string; value: string; copy?: string }[] {
  const lines = payload.split(/\r?\n/);
  const [bic, name, iban] = [lines[4] ?? '', lines[5] ?? '', lines[6] ?? ''];
  return [
    ...(name ? [{ label: 'Pay to', value: name }] : []),
    ...(iban ? [{ label: 'IBAN', value: iban.replace(/(.{4})(?=.)/g, '$1 '), copy: iban }] : []),
    ...(bic ? [{ label: 'BIC', value: bic }] : []),
  ];
}

function CopyButton({ text, what }: { text: string; what: string }) {
  const [copied, setCopied] = useState(false);
  if (!navigator.clipboard) return null;
  return (
    <button
      type="button"
      className="link-btn"
      aria-label={`Copy ${what}`}
      onClick={() => void navigator.clipboard.writeText(text).then(() => setCopied(true))}
    >
      {copied ? 'Copied' : 'Copy'}
    </button>
  );
}

/** How the guest came back from a card checkout: paid there (`done`) or left it (`cancelled`). */
export type CheckoutReturn = 'done' | 'cancelled' | null;

/** What to do while a payment waits (cash, transfer, card); `again` offers the choice again. */
export function PendingPayment({
  payment,
  again,
  checkout = null,
}: {
  payment: GuestPayment;
  again(): void;
  checkout?: CheckoutReturn;
}) {
  const amount = fmt(payment.amountMinor, payment.currency);
  // Part of a transfer arrived: the rest goes to the same reference (never the whole amount again).
  const received = payment.receivedMinor ?? 0;
  const partly = payment.method === 'bank_transfer' && received > 0 && received < payment.amountMinor;
  const rest = fmt(payment.amountMinor - received, payment.currency);
  return (
    <section className="card" aria-labelledby="pending-title">
      {payment.method === 'cash' && (
        <>
          <h2 id="pending-title">Pay {amount} in cash</h2>
          <p>
            A member of staff will come to your table to collect it. This page updates by itself once they
            confirm.
          </p>
        </>
      )}
      {payment.method === 'bank_transfer' && (
        <>
          <h2 id="pending-title">
            {partly ? `Send the remaining ${rest} by bank transfer` : `Pay ${amount} by bank transfer`}
          </h2>
          {partly && (
            <p role="status" data-testid="transfer-partly">
              {fmt(received, payment.currency)} of {amount} has arrived. Send the remaining {rest} with the
              same reference; the code for the full amount is not shown again.
            </p>
          )}
          {payment.epc ? (
            <>
              {!partly && (
                <>
                  <p>
                    Scan this code with your banking app (from another screen), or copy the details below into
                    it. Either way the amount and the reference must be exactly these.
                  </p>
                  <img
                    className="epc"
                    src={payment.epc.qrPngUrl}
                    alt={`Bank transfer QR code for ${amount}`}
                    width={240}
                    height={240}
                  />
                </>
              )}
              <dl className="facts">
                {epcFields(payment.epc.payload).map((f) => (
                  <Fragment key={f.label}>
                    <dt>{f.label}</dt>
                    <dd>
                      <code>{f.value}</code> <CopyButton text={f.copy ?? f.value} what={f.label} />
                    </dd>
                  </Fragment>
                ))}
                <dt>{partly ? 'Still to send' : 'Amount'}</dt>
                <dd>
                  <strong>{partly ? rest : amount}</strong>
                </dd>
                <dt>Reference</dt>
                <dd>
                  <code data-testid="rf-reference">{payment.epc.reference}</code>{' '}
                  <CopyButton text={payment.epc.reference} what="Reference" />
                </dd>
              </dl>
              {!partly && (
                <details>
                  <summary>Transfer details as text</summary>
                  <pre className="payload">{payment.epc.payload}</pre>
                </details>
              )}
              <p className="hint">
                Please quote the reference exactly. The page updates once the bank confirms the transfer.
              </p>
            </>
          ) : (
            <p>The transfer details are not available. Please ask a member of staff.</p>
          )}
        </>
      )}
      {payment.method === 'card' && (
        <>
          <h2 id="pending-title">
            {checkout === 'done' ? `Confirming your card payment of ${amount}` : `Pay ${amount} by card`}
          </h2>
          {checkout === 'done' ? (
            <p role="status" data-testid="card-confirming">
              The card page says you paid. We are waiting for the card company to confirm it; this page
              updates by itself in a moment. Please do not pay again.
            </p>
          ) : payment.checkoutUrl ? (
            <>
              {checkout === 'cancelled' && (
                <p data-testid="card-cancelled">You left the card page. Nothing was charged.</p>
              )}
              <p>
                <a className="btn primary" href={payment.checkoutUrl}>
                  Continue to the card payment
                </a>
              </p>
            </>
          ) : (
            <p>The card page is not available. Please choose another way to pay.</p>
          )}
        </>
      )}
      {!(payment.method === 'card' && checkout === 'done') && (
        <button type="button" className="link-btn" onClick={again}>
          Pay another way
        </button>
      )}
    </section>
  );
}
