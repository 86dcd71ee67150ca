// Paying from the wallet: sign in with the phone and the code the cafe texts (no password, no
// account to create), see the balance, pay. A wallet that holds too little changes nothing.
import { useEffect, useState } from 'react';
import {
  call,
  GuestError,
  saveCustomer,
  savedCustomer,
  type GuestOrder,
  type GuestPayment,
  type Wallet,
} from './api.ts';
import { ErrorBox, fmt } from './parts.tsx';

export function WalletPay({
  tableToken,
  order,
  paid,
}: {
  tableToken: string;
  order: GuestOrder;
  paid(p: GuestPayment): void;
}) {
  const [customer, setCustomer] = useState(() => savedCustomer(order.tableId));
  const [phone, setPhone] = useState(customer?.phone ?? '');
  const [codeSent, setCodeSent] = useState(false);
  const [code, setCode] = useState('');
  const [wallet, setWallet] = useState<Wallet | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [short, setShort] = useState<{ balanceMinor: number; amountMinor: number } | null>(null);

  async function run(fn: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      if (e instanceof GuestError && e.status === 401 && customer) {
        saveCustomer(null);
        setCustomer(null);
      }
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  const loadWallet = (token: string) =>
    call<Wallet>(`/api/credits/balance?currency=${order.currency}`, token).then(setWallet);

  useEffect(() => {
    if (customer) void run(() => loadWallet(customer.token));
    // Once per signed-in customer; `run` and `loadWallet` are recreated on every render.
  }, [customer?.token]);

  if (!customer) {
    return (
      <form
        className="wallet"
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            if (!codeSent) {
              await call('/api/customers/otp', tableToken, { phone });
              setCodeSent(true);
              return;
            }
            const session = await call<{ token: string; customerId: string }>(
              '/api/customers/session',
              tableToken,
              {
                phone,
                code: code.trim(),
              },
            );
            const saved = { ...session, phone, savedAt: Date.now(), tableId: order.tableId };
            saveCustomer(saved);
            setCustomer(saved);
            await loadWallet(session.token);
          });
        }}
      >
        <p className="hint">
          Sign in with your phone: we text you a 6-digit code. No password, no account to create.
        </p>
        <div className="field">
          <label htmlFor="wallet-phone">Phone number</label>
          <input
            id="wallet-phone"
            type="tel"
            autoComplete="tel"
            inputMode="tel"
            required
            value={phone}
            readOnly={codeSent}
            onChange={(e) => setPhone(e.target.value)}
          />
        </div>
        {codeSent && (
          <div className="field">
            <label htmlFor="wallet-code">Code from the SMS</label>
            <input
              id="wallet-code"
              autoComplete="one-time-code"
              inputMode="numeric"
              pattern="[0-9]*"
              maxLength={12}
              required
              value={code}
              onChange={(e) => setCode(e.target.value)}
            />
            <p className="hint" role="status">
              We sent a code to {phone}. It is valid for 5 minutes.
            </p>
          </div>
        )}
        <ErrorBox error={error} />
        <div className="row">
          <button type="submit" className="btn primary" disabled={busy}>
            {codeSent ? 'Sign in' : 'Text me a code'}
          </button>
          {codeSent && (
            <button type="button" className="link-btn" onClick={() => (setCodeSent(false), setCode(''))}>
              Change number
            </button>
          )}
        </div>
      </form>
    );
  }

  const pay = () =>
    run(async () => {
      setShort(null);
      try {
        paid(
          await call<GuestPayment>('/api/payments/initiate', customer.token, {
            orderId: order.id,
            method: 'credit',
          }),
        );
      } catch (e) {
        if (e instanceof GuestError && e.code === 'INSUFFICIENT_CREDIT') {
          setShort(
            (e.details as typeof short) ?? {
              balanceMinor: wallet?.balanceMinor ?? 0,
              amountMinor: order.totalMinor,
            },
          );
          await loadWallet(customer.token);
          return;
        }
        throw e;
      }
    });

  return (
    <div className="wallet">
      <p>
        Signed in as {customer.phone}.{' '}
        {wallet ? (
          <>
            Your wallet holds{' '}
            <strong data-testid="wallet-balance">{fmt(wallet.balanceMinor, wallet.currency)}</strong>.
          </>
        ) : (
          'Loading your wallet…'
        )}
      </p>
      {short && (
        <p className="error-box" role="alert">
          Not enough credit: your wallet holds {fmt(short.balanceMinor, order.currency)} and this order needs{' '}
          {fmt(short.amountMinor, order.currency)}. Nothing was charged. Ask staff to add credit, or choose
          another way to pay.
        </p>
      )}
      <ErrorBox error={error} />
      <div className="row">
        <button type="button" className="btn primary" disabled={busy || !wallet} onClick={() => void pay()}>
          Pay {fmt(order.totalMinor, order.currency)} from my wallet
        </button>
        <button
          type="button"
          className="link-btn"
          onClick={() => {
            saveCustomer(null);
            setCustomer(null);
            setWallet(null);
            setCodeSent(false);
          }}
        >
          Sign out
        </button>
      </div>
    </div>
  );
}
