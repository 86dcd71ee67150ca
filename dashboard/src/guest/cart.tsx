// The cart: quantities, a note per line for the kitchen, the tip (the cafe's presets or an
// amount), the total, and placing the order. A sold-out item refuses the whole order: the lines
// concerned are named and marked, and the menu is reloaded so they show as sold out.
import { currencyExponent, majorToMinor } from '@kioskhub/protocol';
import { useId, useState } from 'react';
import { call, GuestError, type GuestOrder, type Menu, type MenuProduct } from './api.ts';
import { ErrorBox, fmt } from './parts.tsx';

export interface CartLine {
  sku: string;
  name: string;
  priceMinor: number;
  qty: number;
  notes: string;
  /** The price the guest saw when adding it, when the menu has changed it since. */
  earlierPriceMinor?: number;
}
export type TipChoice = { percent: number } | { custom: string };
export interface Cart {
  lines: CartLine[];
  tip: TipChoice | null;
}
export const emptyCart: Cart = { lines: [], tip: null };

export const cartCount = (c: Cart) => c.lines.reduce((n, l) => n + l.qty, 0);
export const cartSubtotal = (c: Cart) => c.lines.reduce((n, l) => n + l.qty * l.priceMinor, 0);

export function addItem(cart: Cart, p: MenuProduct): Cart {
  const line = cart.lines.find((l) => l.sku === p.sku);
  const lines = line
    ? cart.lines.map((l) => (l === line ? { ...l, qty: Math.min(99, l.qty + 1) } : l))
    : [...cart.lines, { sku: p.sku, name: p.name, priceMinor: p.priceMinor, qty: 1, notes: '' }];
  return { ...cart, lines };
}

/**
 * The cart at the prices of a menu just loaded: the server charges the catalog's price, so the
 * total shown must be the same; a line whose price changed says so.
 */
export function repriced(cart: Cart, menu: Menu): Cart {
  const products = new Map(menu.categories.flatMap((c) => c.products).map((p) => [p.sku, p]));
  let changed = false;
  const lines = cart.lines.map((l) => {
    const p = products.get(l.sku);
    if (!p || p.priceMinor === l.priceMinor) return l;
    changed = true;
    return {
      ...l,
      name: p.name,
      priceMinor: p.priceMinor,
      earlierPriceMinor: l.earlierPriceMinor ?? l.priceMinor,
    };
  });
  return changed ? { ...cart, lines } : cart;
}

/** The tip in minor units, or undefined when a custom amount cannot be read. */
function tipMinor(tip: TipChoice | null, subtotal: number, currency: string): number | undefined {
  if (!tip) return 0;
  if ('percent' in tip) return Math.round((subtotal * tip.percent) / 100);
  const text = tip.custom.trim().replace(',', '.');
  if (text === '') return 0;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) return undefined;
  return majorToMinor(value, currency);
}

interface StockProblem {
  sku: string;
  name?: string;
  reason: 'unavailable' | 'sold_out';
  requested?: number;
  available?: number;
}

function stockText(p: StockProblem): string {
  const name = p.name ?? p.sku;
  if (p.reason === 'unavailable') return `${name} is not available right now.`;
  if (p.available !== undefined && p.available > 0)
    return `Only ${p.available} ${name} left (you asked for ${p.requested ?? 'more'}).`;
  return `${name} is sold out.`;
}

function TipPicker({ menu, cart, setCart }: { menu: Menu; cart: Cart; setCart(c: Cart): void }) {
  const id = useId();
  const subtotal = cartSubtotal(cart);
  const custom = cart.tip !== null && 'custom' in cart.tip;
  const chosen = (p: number) => cart.tip !== null && 'percent' in cart.tip && cart.tip.percent === p;
  const step = 1 / 10 ** currencyExponent(menu.currency);
  return (
    <fieldset className="tip">
      <legend>Add a tip?</legend>
      <div className="tip-options">
        {menu.tipPresetsPercent.map((p) => (
          <label key={p} className={`chip${chosen(p) || (p === 0 && cart.tip === null) ? ' chip-on' : ''}`}>
            <input
              type="radio"
              name={`${id}-tip`}
              checked={chosen(p) || (p === 0 && cart.tip === null)}
              onChange={() => setCart({ ...cart, tip: { percent: p } })}
            />
            {p === 0 ? 'No tip' : `${p}%`}
            {p > 0 && (
              <span className="chip-sub">{fmt(Math.round((subtotal * p) / 100), menu.currency)}</span>
            )}
          </label>
        ))}
        <label className={`chip${custom ? ' chip-on' : ''}`}>
          <input
            type="radio"
            name={`${id}-tip`}
            checked={custom}
            onChange={() => setCart({ ...cart, tip: { custom: '' } })}
          />
          Other amount
        </label>
      </div>
      {custom && (
        <div className="field">
          <label htmlFor={`${id}-amount`}>Tip amount ({menu.currency})</label>
          <input
            id={`${id}-amount`}
            inputMode="decimal"
            type="number"
            min={0}
            step={step}
            value={(cart.tip as { custom: string }).custom}
            onChange={(e) => setCart({ ...cart, tip: { custom: e.target.value } })}
          />
        </div>
      )}
    </fieldset>
  );
}

export function CartView(props: {
  menu: Menu;
  tableToken: string;
  cart: Cart;
  setCart(c: Cart): void;
  back(): void;
  reloadMenu(): Promise<void>;
  placed(order: GuestOrder & { orderToken: string }): void;
}) {
  const { menu, cart, setCart } = props;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [stock, setStock] = useState<StockProblem[]>([]);
  const currency = menu.currency;
  const subtotal = cartSubtotal(cart);
  const tip = tipMinor(cart.tip, subtotal, currency);
  const setLine = (sku: string, patch: Partial<CartLine>) =>
    setCart({
      ...cart,
      lines: cart.lines.map((l) => (l.sku === sku ? { ...l, ...patch } : l)).filter((l) => l.qty > 0),
    });

  async function place() {
    if (tip === undefined) return;
    setBusy(true);
    setError(null);
    setStock([]);
    try {
      const order = await call<GuestOrder & { orderToken: string }>('/api/orders', props.tableToken, {
        siteId: menu.site.id,
        tableId: menu.table.id,
        items: cart.lines.map((l) => ({
          sku: l.sku,
          qty: l.qty,
          ...(l.notes.trim() ? { notes: l.notes.trim() } : {}),
        })),
        ...(cart.tip === null
          ? {}
          : 'percent' in cart.tip
            ? { tip: { percent: cart.tip.percent } }
            : { tip: { amountMinor: tip } }),
      });
      props.placed(order);
    } catch (e) {
      if (e instanceof GuestError && e.code === 'OUT_OF_STOCK' && Array.isArray(e.details)) {
        setStock(e.details as StockProblem[]);
        void props.reloadMenu();
      } else setError(e);
      setBusy(false);
    }
  }

  const problemOf = (sku: string) => stock.find((s) => s.sku === sku);
  return (
    <>
      <header className="guest-head">
        <button type="button" className="link-btn" onClick={props.back}>
          ← Back to the menu
        </button>
        <h1>Your order</h1>
        <p className="where">{menu.table.name}</p>
      </header>
      <main className="guest" id="main">
        {stock.length > 0 && (
          <div className="error-box" role="alert">
            <strong>Some items can’t be ordered. Nothing was ordered yet.</strong>
            <ul>
              {stock.map((s) => (
                <li key={s.sku}>{stockText(s)}</li>
              ))}
            </ul>
            Change or remove them, then place the order again.
          </div>
        )}
        {cart.lines.length === 0 && <p className="status-line">Your cart is empty.</p>}
        <ul className="lines">
          {cart.lines.map((l) => (
            <li key={l.sku} className={`line${problemOf(l.sku) ? ' line-problem' : ''}`} data-sku={l.sku}>
              <div className="line-head">
                <span className="line-name">{l.name}</span>
                <span className="price">{fmt(l.qty * l.priceMinor, currency)}</span>
              </div>
              {problemOf(l.sku) && <p className="line-warn">{stockText(problemOf(l.sku)!)}</p>}
              {l.earlierPriceMinor !== undefined && (
                <p className="line-warn" role="status">
                  The price changed: {fmt(l.priceMinor, currency)} each (was{' '}
                  {fmt(l.earlierPriceMinor, currency)}).
                </p>
              )}
              <div className="line-row">
                <div className="qty" role="group" aria-label={`Quantity of ${l.name}`}>
                  <button
                    type="button"
                    className="btn small"
                    aria-label={`One less ${l.name}`}
                    onClick={() => setLine(l.sku, { qty: l.qty - 1 })}
                  >
                    −
                  </button>
                  <output aria-live="polite">{l.qty}</output>
                  <button
                    type="button"
                    className="btn small"
                    aria-label={`One more ${l.name}`}
                    disabled={l.qty >= 99}
                    onClick={() => setLine(l.sku, { qty: l.qty + 1 })}
                  >
                    +
                  </button>
                </div>
                <button type="button" className="link-btn" onClick={() => setLine(l.sku, { qty: 0 })}>
                  Remove
                </button>
              </div>
              <div className="field">
                <label htmlFor={`note-${l.sku}`}>Note for {l.name} (optional)</label>
                <input
                  id={`note-${l.sku}`}
                  maxLength={200}
                  placeholder="Anything the kitchen should know"
                  value={l.notes}
                  onChange={(e) => setLine(l.sku, { notes: e.target.value })}
                />
              </div>
            </li>
          ))}
        </ul>
        {cart.lines.length > 0 && (
          <>
            <TipPicker menu={menu} cart={cart} setCart={setCart} />
            <dl className="totals">
              <dt>Subtotal</dt>
              <dd>{fmt(subtotal, currency)}</dd>
              <dt>Tip</dt>
              <dd>{tip === undefined ? '—' : fmt(tip, currency)}</dd>
              <dt className="total">Total</dt>
              <dd className="total" data-testid="cart-total">
                {tip === undefined ? '—' : fmt(subtotal + tip, currency)}
              </dd>
            </dl>
            {tip === undefined && (
              <p className="error-box" role="alert">
                The tip amount is not a valid {currency} amount.
              </p>
            )}
            <ErrorBox error={error} />
          </>
        )}
      </main>
      {cart.lines.length > 0 && (
        <div className="bottom-bar">
          <button
            type="button"
            className="btn primary wide"
            disabled={busy || tip === undefined}
            onClick={() => void place()}
          >
            {busy ? 'Placing your order…' : `Place order · ${fmt(subtotal + (tip ?? 0), currency)}`}
          </button>
        </div>
      )}
    </>
  );
}
