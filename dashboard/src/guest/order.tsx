// One order, followed live on `/live` with the order token in the room `order:<id>` (docs/cafe.md
// §12): payment, then the kitchen (PAID → PREPARING → READY → SERVED) without reloading.
// Every event, and every reconnect after a lost connection, reloads the order and its payment
// from the API, so nothing missed while offline is shown wrong.
import { LIVE_EVENTS, LIVE_NAMESPACE } from '@kioskhub/protocol';
import { useCallback, useEffect, useState } from 'react';
import { io } from 'socket.io-client';
import {
  call,
  GuestError,
  saveOrder,
  savedOrder,
  type GuestOrder,
  type GuestPayment,
  type GuestRefund,
} from './api.ts';
import { PaymentChoice, PendingPayment, type CheckoutReturn } from './pay.tsx';
import { ErrorBox, fmt, Problem } from './parts.tsx';

type Connection = 'connecting' | 'live' | 'lost';

const KITCHEN = ['PREPARING', 'READY', 'SERVED'];
const HEADLINES: Record<string, string> = {
  PAID: 'Paid. Your order is with the kitchen.',
  PREPARING: 'Your order is being prepared.',
  READY: 'Your order is ready!',
  SERVED: 'Served. Enjoy!',
  CANCELLED: 'This order was cancelled.',
  REFUNDED: 'This order was refunded.',
};

function Steps({ order }: { order: GuestOrder }) {
  const s = order.status;
  const steps = [
    { label: 'Ordered', done: true },
    { label: 'Paid', done: order.paidAt !== null },
    { label: 'Preparing', done: KITCHEN.includes(s) },
    { label: 'Ready', done: s === 'READY' || s === 'SERVED' },
    { label: 'Served', done: s === 'SERVED' },
  ];
  return (
    <ol className="steps" aria-label="Progress">
      {steps.map((step) => (
        <li key={step.label} className={step.done ? 'step-done' : ''}>
          <span aria-hidden="true">{step.done ? '✓' : ''}</span>
          {step.label}
          <span className="sr-only">{step.done ? ' (done)' : ' (not yet)'}</span>
        </li>
      ))}
    </ol>
  );
}

/** `?checkout=done|cancelled`: where the card gateway sent the guest back from (success or back link). */
function checkoutReturn(): CheckoutReturn {
  const v = new URLSearchParams(location.search).get('checkout');
  return v === 'done' || v === 'cancelled' ? v : null;
}

function endedText(p: GuestPayment): string {
  if (p.status === 'EXPIRED')
    return 'The payment expired before it was completed. Nothing was charged. Please choose how to pay again.';
  if (p.failureCode === 'SUPERSEDED') return '';
  return `The payment did not go through${p.failureCode ? ` (${p.failureCode.toLowerCase().replaceAll('_', ' ')})` : ''}. Nothing was charged. Please try again or choose another way to pay.`;
}

const ENDED = ['SUCCEEDED', 'FAILED'];

/**
 * The newer of what the page knows of the order's latest refund and what it just heard (the
 * order read, or `payment_refunded` / `refund_updated` live): a later refund (ids grow with
 * time), or a later state of the same one. A read begun before a live event may answer after it.
 */
function newer(known: GuestRefund | null, heard: GuestRefund | null): GuestRefund | null {
  if (!known || !heard) return heard ?? known;
  if (heard.refundId !== known.refundId) return heard.refundId > known.refundId ? heard : known;
  return ENDED.includes(known.status) && !ENDED.includes(heard.status) ? known : heard;
}

function refundText(r: GuestRefund): string {
  const amount = fmt(r.amountMinor, r.currency);
  if (r.status === 'FAILED')
    return `The refund of ${amount} did not go through. Please ask a member of staff.`;
  if (r.status === 'SUCCEEDED')
    return r.destination === 'credit' ? `${amount} was refunded to your wallet.` : `${amount} was refunded.`;
  return r.destination === 'refund_due'
    ? `A refund of ${amount} waits for you: staff will hand it back.`
    : `A refund of ${amount} is on its way. It can take a few days to reach you.`;
}

export function OrderPage({ orderId }: { orderId: string }) {
  const [saved, setSaved] = useState(() => savedOrder(orderId));
  const [order, setOrder] = useState<GuestOrder | null>(null);
  const [payment, setPayment] = useState<GuestPayment | null>(null);
  const [choosing, setChoosing] = useState(false);
  const [refund, setRefund] = useState<GuestRefund | null>(null);
  const [connection, setConnection] = useState<Connection>('connecting');
  const [error, setError] = useState<unknown>(null);

  const resync = useCallback(async () => {
    if (!saved) return;
    try {
      const read = await call<GuestOrder>(`/api/orders/${encodeURIComponent(orderId)}`, saved.orderToken);
      setOrder(read);
      // The refund line survives a reload: the order read carries its newest refund.
      setRefund((known) => newer(known, read.refund ?? null));
      if (saved.paymentId) {
        const status = await call<GuestPayment>(
          `/api/payments/${encodeURIComponent(saved.paymentId)}/status`,
          saved.orderToken,
        );
        // The status route does not repeat the EPC code or the checkout link: keep them.
        setPayment({ ...saved.presented, ...status });
      }
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [orderId, saved]);

  useEffect(() => {
    if (!saved) return;
    void resync();
    const socket = io(LIVE_NAMESPACE, { auth: { orderToken: saved.orderToken }, transports: ['websocket'] });
    socket.on('connect', async () => {
      await socket.emitWithAck('subscribe', { room: `order:${orderId}` });
      setConnection('live');
      await resync(); // anything missed while the connection was down
    });
    socket.on('disconnect', (reason) => {
      setConnection('lost');
      // The server ended the session (a deploy, a kick): socket.io does not retry that by itself.
      if (reason === 'io server disconnect') socket.connect();
    });
    socket.on('connect_error', () => setConnection('lost'));
    const refresh = () => void resync();
    for (const e of [
      LIVE_EVENTS.orderStatusUpdated,
      LIVE_EVENTS.paymentInitiated,
      LIVE_EVENTS.paymentCompleted,
      LIVE_EVENTS.paymentEnded,
      LIVE_EVENTS.paymentRefunded,
      LIVE_EVENTS.refundUpdated,
      LIVE_EVENTS.kitchenOrderReady,
    ])
      socket.on(e, refresh);
    // A refund recorded (often PENDING at the card's provider), then how it ended.
    const heard = (r: GuestRefund) => {
      if (r.orderId === orderId) setRefund((known) => newer(known, r));
    };
    socket.on(LIVE_EVENTS.paymentRefunded, heard);
    socket.on(LIVE_EVENTS.refundUpdated, heard);
    socket.on(LIVE_EVENTS.orderStatusUpdated, (e: { orderId: string; status: string }) => {
      if (e.orderId === orderId) setOrder((o) => (o ? { ...o, status: e.status } : o));
    });
    // The phone says the network went away (the socket may take a while to notice) and came back.
    const offline = () => setConnection('lost');
    const online = () => {
      // Reconnect now rather than at the end of socket.io's backoff (up to seconds away).
      if (!socket.connected) socket.disconnect().connect();
      else setConnection('live');
      void resync();
    };
    addEventListener('offline', offline);
    addEventListener('online', online);
    return () => {
      removeEventListener('offline', offline);
      removeEventListener('online', online);
      socket.disconnect();
    };
  }, [orderId, saved, resync]);

  useEffect(() => {
    if (order) document.title = `Order ${order.orderNumber ?? ''}: ${order.status.toLowerCase()}`;
  }, [order]);

  // While the live connection is down, ask now and then instead (a phone on a flaky network).
  useEffect(() => {
    if (connection !== 'lost') return;
    const timer = setInterval(() => void resync(), 15_000);
    return () => clearInterval(timer);
  }, [connection, resync]);

  if (!saved)
    return (
      <Problem title="We can’t find this order on this phone">
        Orders can be followed on the phone they were placed on. Scan the QR code on your table to order, or
        ask a member of staff.
      </Problem>
    );
  if (!order) {
    if (error)
      return (
        <Problem title="The order could not be loaded">
          {error instanceof GuestError && error.status === 401
            ? 'This order link has expired. Please ask a member of staff.'
            : (error as Error).message}
          <button type="button" className="btn" onClick={() => void resync()}>
            Try again
          </button>
        </Problem>
      );
    return (
      <p className="status-line" role="status">
        Loading your order…
      </p>
    );
  }

  const started = (p: GuestPayment) => {
    const presented = {
      ...(p.epc ? { epc: p.epc } : {}),
      ...(p.checkoutUrl ? { checkoutUrl: p.checkoutUrl } : {}),
    };
    const next = { ...saved, paymentId: p.paymentId, presented };
    saveOrder(next);
    setSaved(next);
    setPayment(p);
    setChoosing(false);
  };
  const unpaid = order.paidAt === null && ['CREATED', ...KITCHEN].includes(order.status);
  const ended = payment && (payment.status === 'FAILED' || payment.status === 'EXPIRED');
  const showChoice = unpaid && (choosing || !payment || ended);
  const headline =
    (order.status === 'CANCELLED' && order.failureCode === 'UNPAID_EXPIRED'
      ? 'This order was cancelled: it was not paid in time.'
      : HEADLINES[order.status]) ??
    (payment?.status === 'PENDING' ? 'Waiting for your payment.' : 'Order placed. Please choose how to pay.');

  return (
    <>
      <header className="guest-head unstuck">
        <p className="where">Order {order.orderNumber ?? ''}</p>
        <h1 data-testid="order-status" data-status={order.status} aria-live="polite">
          {headline}
        </h1>
      </header>
      {connection === 'lost' && (
        <div className="banner" role="alert">
          Connection lost. Reconnecting… Your order is safe; this page catches up once you are back online.
        </div>
      )}
      <main className="guest" id="main">
        <Steps order={order} />
        <ErrorBox error={error} />
        {ended && endedText(payment) && (
          <p className="error-box" role="alert" data-testid="payment-ended">
            {endedText(payment)}
          </p>
        )}
        {order.failureCode === 'UNPAID_EXPIRED' && order.status === 'CANCELLED' && (
          <p className="error-box" role="alert" data-testid="order-expired">
            Nothing was charged. If you still want it, please order again from the menu.
          </p>
        )}
        {order.status === 'READY' && (
          <p className="ready-note">Please collect it at the counter, or staff bring it to your table.</p>
        )}
        {showChoice ? (
          <PaymentChoice tableToken={saved.tableToken} order={order} started={started} />
        ) : (
          unpaid &&
          payment?.status === 'PENDING' && (
            <PendingPayment payment={payment} again={() => setChoosing(true)} checkout={checkoutReturn()} />
          )
        )}
        {payment && payment.status !== 'PENDING' && !ended && (
          <p className="paid-note">
            Paid {fmt(payment.amountMinor, payment.currency)} (
            {payment.method === 'credit' ? 'wallet' : payment.method.replace('_', ' ')})
            {payment.status === 'REFUNDED' || payment.status === 'PARTIALLY_REFUNDED'
              ? ` · refunded ${fmt(payment.refundedMinor ?? 0, payment.currency)}`
              : ''}
          </p>
        )}
        {refund && (
          <p
            className={refund.status === 'FAILED' ? 'error-box' : 'paid-note'}
            role="status"
            data-testid="refund-status"
            data-status={refund.status}
          >
            {refundText(refund)}
          </p>
        )}
        <section className="card" aria-labelledby="items-title">
          <h2 id="items-title">Your order</h2>
          <ul className="lines compact">
            {(order.items ?? []).map((i, n) => (
              <li key={n} className="line">
                <div className="line-head">
                  <span>
                    {i.qty} × {i.name ?? i.sku}
                  </span>
                  {i.unitPriceMinor !== undefined && (
                    <span className="price">{fmt(i.qty * i.unitPriceMinor, order.currency)}</span>
                  )}
                </div>
                {i.notes && <p className="hint">Note: {i.notes}</p>}
              </li>
            ))}
          </ul>
          <dl className="totals">
            <dt>Subtotal</dt>
            <dd>{fmt(order.subtotalMinor, order.currency)}</dd>
            <dt>Tip</dt>
            <dd>{fmt(order.tipMinor, order.currency)}</dd>
            <dt className="total">Total</dt>
            <dd className="total">{fmt(order.totalMinor, order.currency)}</dd>
          </dl>
        </section>
        <p>
          <a href={`/t/${encodeURIComponent(saved.tableToken)}`}>Order something else</a>
        </p>
      </main>
    </>
  );
}
