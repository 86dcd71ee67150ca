// The cafe guest page (docs/cafe-ui.md), a separate entry from the dashboard: `/t/<tableToken>`
// shows the table's menu, cart and checkout; `/t/order/<orderId>` follows one order live (where
// the page goes after ordering, and where a card checkout returns to).
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { call, GuestError, saveOrder, type GuestOrder, type Menu } from './api.ts';
import { CartView, emptyCart, repriced, type Cart } from './cart.tsx';
import { MenuView } from './menu.tsx';
import { OrderPage } from './order.tsx';
import { go, Problem } from './parts.tsx';
import './guest.css';

type Route = { page: 'table'; tableToken: string } | { page: 'order'; orderId: string } | { page: 'none' };

function parse(pathname: string): Route {
  const order = /^\/t\/order\/([^/]+)\/?$/.exec(pathname);
  if (order) return { page: 'order', orderId: decodeURIComponent(order[1]!) };
  const table = /^\/t\/([^/]+)\/?$/.exec(pathname);
  if (table) return { page: 'table', tableToken: decodeURIComponent(table[1]!) };
  return { page: 'none' };
}

function TablePage({ tableToken }: { tableToken: string }) {
  const [menu, setMenu] = useState<Menu | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [cart, setCart] = useState<Cart>(emptyCart);
  const [view, setView] = useState<'menu' | 'cart'>('menu');

  const load = () =>
    call<Menu>('/api/menu', tableToken).then(
      (m) => {
        setMenu(m);
        // What is in the cart is charged at the menu's prices now (staff may have changed one).
        setCart((c) => repriced(c, m));
        setError(null);
        document.title = `${m.site.name} · ${m.table.name}`;
      },
      (e: unknown) => setError(e),
    );
  useEffect(() => {
    void load();
  }, [tableToken]);
  useEffect(() => {
    window.scrollTo(0, 0);
  }, [view]);

  if (!menu) {
    if (!error)
      return (
        <p className="status-line" role="status">
          Loading the menu…
        </p>
      );
    const rotated = error instanceof GuestError && error.status === 401;
    return (
      <Problem title={rotated ? 'This QR code no longer works' : 'The menu could not be loaded'}>
        {rotated
          ? 'Please scan the QR code on your table again, or ask a member of staff.'
          : (error as Error).message}
        {!rotated && (
          <button type="button" className="btn" onClick={() => void load()}>
            Try again
          </button>
        )}
      </Problem>
    );
  }

  const placed = (order: GuestOrder & { orderToken: string }) => {
    saveOrder({ orderId: order.id, orderToken: order.orderToken, tableToken });
    setCart(emptyCart);
    go(`/t/order/${encodeURIComponent(order.id)}`);
  };

  return view === 'menu' ? (
    <MenuView menu={menu} cart={cart} setCart={setCart} openCart={() => setView('cart')} />
  ) : (
    <CartView
      menu={menu}
      tableToken={tableToken}
      cart={cart}
      setCart={setCart}
      back={() => setView('menu')}
      reloadMenu={load}
      placed={placed}
    />
  );
}

function App() {
  const [route, setRoute] = useState<Route>(() => parse(location.pathname));
  useEffect(() => {
    const onPop = () => setRoute(parse(location.pathname));
    addEventListener('popstate', onPop);
    return () => removeEventListener('popstate', onPop);
  }, []);
  if (route.page === 'table') return <TablePage key={route.tableToken} tableToken={route.tableToken} />;
  if (route.page === 'order') return <OrderPage key={route.orderId} orderId={route.orderId} />;
  return (
    <Problem title="Scan the QR code on your table">This page opens from the code on a cafe table.</Problem>
  );
}

createRoot(document.getElementById('guest')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
