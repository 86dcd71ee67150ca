// The menu of a table: categories (jump links), each product with its price and whether it can
// be ordered, an Add button, and a bar at the bottom to open the cart.
import type { Menu, MenuProduct } from './api.ts';
import { addItem, cartCount, cartSubtotal, type Cart } from './cart.tsx';
import { fmt } from './parts.tsx';

function Product({
  p,
  currency,
  inCart,
  add,
}: {
  p: MenuProduct;
  currency: string;
  inCart: number;
  add(): void;
}) {
  const why = p.soldOut ? 'Sold out' : !p.available ? 'Not available today' : null;
  const nameId = `p-${p.sku}`;
  return (
    <li className={`product${why ? ' product-off' : ''}`} data-sku={p.sku} aria-labelledby={nameId}>
      <div className="product-text">
        <h3 id={nameId}>{p.name}</h3>
        {p.description && <p className="product-desc">{p.description}</p>}
        <p className="price">{fmt(p.priceMinor, currency)}</p>
      </div>
      {why ? (
        <span className="off-label">{why}</span>
      ) : (
        <button type="button" className="btn add" onClick={add} aria-label={`Add ${p.name}`}>
          {inCart > 0 ? `Add · ${inCart} in cart` : 'Add'}
        </button>
      )}
    </li>
  );
}

export function MenuView({
  menu,
  cart,
  setCart,
  openCart,
}: {
  menu: Menu;
  cart: Cart;
  setCart(c: Cart): void;
  openCart(): void;
}) {
  const count = cartCount(cart);
  const inCart = (sku: string) => cart.lines.filter((l) => l.sku === sku).reduce((n, l) => n + l.qty, 0);
  return (
    <>
      <header className="guest-head">
        <p className="where">{menu.table.name}</p>
        <h1>{menu.site.name}</h1>
        {menu.categories.length > 1 && (
          <nav aria-label="Menu sections" className="cats">
            {menu.categories.map((c) => (
              <a key={c.name} href={`#cat-${encodeURIComponent(c.name)}`}>
                {c.name}
              </a>
            ))}
          </nav>
        )}
      </header>
      <main className="guest" id="main">
        {menu.categories.length === 0 && <p className="status-line">Nothing on the menu right now.</p>}
        {menu.categories.map((c) => (
          <section key={c.name} id={`cat-${encodeURIComponent(c.name)}`} aria-label={c.name}>
            <h2>{c.name}</h2>
            <ul className="products">
              {c.products.map((p) => (
                <Product
                  key={p.sku}
                  p={p}
                  currency={menu.currency}
                  inCart={inCart(p.sku)}
                  add={() => setCart(addItem(cart, p))}
                />
              ))}
            </ul>
          </section>
        ))}
      </main>
      <div className="bottom-bar">
        <button type="button" className="btn primary wide" onClick={openCart} disabled={count === 0}>
          {count === 0
            ? 'Your cart is empty'
            : `View cart · ${count} item${count === 1 ? '' : 's'} · ${fmt(cartSubtotal(cart), menu.currency)}`}
        </button>
      </div>
    </>
  );
}
