// The shell: sign-in gate, header (navigation, alerts badge, live state, account menu, sign out)
// and routes.
import type { AlertView, Page } from '@kioskhub/protocol';
import { useQuery } from '@tanstack/react-query';
import { lazy, Suspense } from 'react';
import { Link, Route, Switch, useLocation } from 'wouter';
import { api } from './api.ts';
import { useAction } from './action.ts';
import { useAuth, type Action } from './auth.tsx';
import { LiveProvider, useLiveState } from './live.tsx';
import { AlertsPage } from './pages/alerts.tsx';
import { CafeSettingsPage } from './pages/cafe-settings.tsx';
import { CashPrintingPage } from './pages/cash-printing.tsx';
import { CatalogPage } from './pages/catalog.tsx';
import { CustomerPage } from './pages/customer.tsx';
import { CustomersPage } from './pages/customers.tsx';
import { FleetPage } from './pages/fleet.tsx';
import { CampaignPage, FirmwarePage } from './pages/firmware.tsx';
import { MachinePage } from './pages/machine.tsx';
import { OrderPage } from './pages/order.tsx';
import { OrdersPage } from './pages/orders.tsx';
import { PlansPage } from './pages/plans.tsx';
import { ReviewPage } from './pages/review.tsx';
import { SignInPage } from './pages/sign-in.tsx';
import { WaterKioskPage, WaterKiosksPage } from './pages/water.tsx';
import { StaffKitchenPage } from './pages/staff-kitchen.tsx';
import { StaffPage } from './pages/staff.tsx';
import { ErrorNote, Loading } from './ui.tsx';

// Chart.js is the biggest dependency: only the charts screen loads it.
const ChartsPage = lazy(() => import('./pages/charts.tsx'));

const NAV: { href: string; label: string; action?: Action }[] = [
  { href: '/', label: 'Fleet' },
  { href: '/orders', label: 'Orders' },
  { href: '/customers', label: 'Customers', action: 'manageCustomers' },
  { href: '/review', label: 'Needs review' },
  { href: '/cash', label: 'Cash & printing' },
  { href: '/catalog', label: 'Sites & products' },
  { href: '/water', label: 'Water' },
  { href: '/staff', label: 'Cafe' },
  { href: '/charts', label: 'Charts' },
  { href: '/firmware', label: 'Firmware' },
];

function AlertsBadge() {
  const open = useQuery({
    queryKey: ['alerts', 'open'],
    queryFn: () => api<Page<AlertView>>('/v1/alerts?open=true&limit=200'),
    refetchInterval: 20_000,
  });
  const count = open.data?.items.length ?? 0;
  const more = (open.data?.nextCursor ?? null) !== null;
  return (
    <Link
      href="/alerts"
      className="alerts-link"
      aria-label={`Alerts: ${count}${more ? ' or more' : ''} open`}
    >
      Alerts{' '}
      <span className={`count ${count > 0 ? 'count-hot' : ''}`} data-testid="alert-count">
        {more ? `${count}+` : count}
      </span>
    </Link>
  );
}

function LiveDot() {
  const state = useLiveState();
  return (
    <span className={`live live-${state}`} role="status" aria-live="polite">
      {state === 'live' ? 'Live' : state === 'connecting' ? 'Connecting…' : 'Offline'}
    </span>
  );
}

/** Who is signed in; a staff user's menu also ends every session of the user. */
function Account() {
  const { me, allTenants, signOutEverywhere } = useAuth();
  const { busy, error, run } = useAction();
  if (allTenants || !me) {
    return (
      <span className="muted small" title={me?.actor}>
        {allTenants ? 'Admin token (all tenants)' : ''}
      </span>
    );
  }
  const who = `${me.actor.replace(/^user:/, '')} · ${me.role ?? ''} · ${me.tenantId ?? ''}`;
  return (
    <details className="account">
      <summary title={me.actor}>
        <span>{who}</span>
      </summary>
      <div className="account-menu">
        <p className="small">{who}</p>
        <p className="muted small">
          Sign out ends this browser's session only. Sign out everywhere ends every session of yours: other
          browsers, phones and kitchen screens too.
        </p>
        <button
          type="button"
          className="danger"
          disabled={busy}
          onClick={() => void run(signOutEverywhere)()}
        >
          Sign out everywhere
        </button>
        <ErrorNote error={error} />
      </div>
    </details>
  );
}

function SignOutButton() {
  const { signOut } = useAuth();
  const { busy, run } = useAction();
  return (
    <button type="button" className="secondary" disabled={busy} onClick={() => void run(signOut)()}>
      Sign out
    </button>
  );
}

function Shell() {
  const { can } = useAuth();
  const [location] = useLocation();
  const active = (href: string) =>
    href === '/'
      ? location === '/' || location.startsWith('/machines')
      : href === '/customers'
        ? location.startsWith('/customers') || location.startsWith('/plans')
        : location.startsWith(href);
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <div className="brand">
          <Link href="/">Kioskhub</Link>
        </div>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((n) => !n.action || can(n.action)).map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={active(n.href) ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <AlertsBadge />
          <LiveDot />
          <Account />
          <SignOutButton />
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading />}>
          <Switch>
            <Route path="/" component={FleetPage} />
            <Route path="/machines/:id">{(p) => <MachinePage id={p.id} />}</Route>
            <Route path="/orders" component={OrdersPage} />
            <Route path="/orders/:id">{(p) => <OrderPage id={p.id} />}</Route>
            <Route path="/customers" component={CustomersPage} />
            <Route path="/customers/:id">{(p) => <CustomerPage id={p.id} />}</Route>
            <Route path="/plans" component={PlansPage} />
            <Route path="/review" component={ReviewPage} />
            <Route path="/cash" component={CashPrintingPage} />
            <Route path="/catalog" component={CatalogPage} />
            <Route path="/water" component={WaterKiosksPage} />
            <Route path="/water/:id">{(p) => <WaterKioskPage id={p.id} />}</Route>
            <Route path="/charts" component={ChartsPage} />
            <Route path="/alerts" component={AlertsPage} />
            <Route path="/staff" component={StaffPage} />
            <Route path="/staff/kitchen" component={StaffKitchenPage} />
            <Route path="/staff/settings" component={CafeSettingsPage} />
            <Route path="/firmware" component={FirmwarePage} />
            <Route path="/firmware/campaigns/:id">{(p) => <CampaignPage id={p.id} />}</Route>
            <Route>
              <h1>Not found</h1>
              <p>
                There is no such page. <Link href="/">Back to the fleet</Link>
              </p>
            </Route>
          </Switch>
        </Suspense>
      </main>
    </>
  );
}

export function App() {
  const { token, me, meError } = useAuth();
  if (!token) return <SignInPage />;
  if (!me) {
    if (!meError) return <Loading what="Signing in" />;
    return (
      <main id="main" className="sign-in">
        <ErrorNote error={meError} />
        <SignOutButton />
      </main>
    );
  }
  return (
    <LiveProvider>
      <Shell />
    </LiveProvider>
  );
}
