// Live updates from /live (CONTRACTS.md §8): subscribes to the viewer's tenant rooms and folds
// each event into the query cache, patching what it can at once and refetching the rest.
import {
  LIVE_EVENTS,
  LIVE_NAMESPACE,
  type FleetMachineView,
  type MachineStatusEvent,
  type OrderCreatedEvent,
  type OrderStatusEvent,
  type OrderView,
  type Page,
  type TenantView,
} from '@kioskhub/protocol';
import { useQueryClient, type InfiniteData, type QueryClient, type QueryKey } from '@tanstack/react-query';
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { io } from 'socket.io-client';
import { api } from './api.ts';
import { useAuth } from './auth.tsx';

export type LiveState = 'connecting' | 'live' | 'offline';
const LiveContext = createContext<LiveState>('offline');
export const useLiveState = (): LiveState => useContext(LiveContext);

/** Runs at once, then at most every `ms` while calls keep coming (leading + trailing). */
function throttle(fn: () => void, ms: number): () => void {
  let last = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return () => {
    const wait = last + ms - Date.now();
    if (wait <= 0) {
      last = Date.now();
      fn();
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = undefined;
        last = Date.now();
        fn();
      }, wait);
    }
  };
}

function patchPages<T extends { id: string }>(
  client: QueryClient,
  key: QueryKey,
  id: string,
  patch: Partial<T>,
): void {
  const fixItems = (items: T[]): T[] => items.map((item) => (item.id === id ? { ...item, ...patch } : item));
  client.setQueriesData<Page<T> | InfiniteData<Page<T>> | T[]>({ queryKey: key }, (data) => {
    if (!data) return data;
    if (Array.isArray(data)) return fixItems(data);
    const fix = (page: Page<T>): Page<T> => ({ ...page, items: fixItems(page.items) });
    if ('pages' in data) return { ...data, pages: data.pages.map(fix) };
    // Other queries under the same key (the fleet's summary counts) are refetched, not patched.
    return 'items' in data ? fix(data) : data;
  });
}

/** The feed's filters, as the orders screen keys its query: ['orders', 'feed', filters]. */
interface FeedFilters {
  machineId?: string;
  siteId?: string;
  status?: string;
  from?: string;
  to?: string;
}

/** Shows a new order at the top of every open feed it belongs in, before the refetch lands. */
function prependOrder(client: QueryClient, e: OrderCreatedEvent & { orderNumber?: string }): void {
  const now = new Date().toISOString();
  const row: OrderView = {
    id: e.orderId,
    tenantId: e.tenantId,
    machineId: e.machineId ?? null,
    siteId: null,
    orderNumber: e.orderNumber ?? null,
    amount: e.amount,
    currency: e.currency,
    source: e.source,
    provider: null,
    providerPaymentId: null,
    providerQrCodeId: null,
    paidAt: e.status === 'CREATED' ? null : now,
    dispatchPending: e.status === 'PAID',
    status: e.status,
    failureCode: null,
    customerName: null,
    createdAt: now,
    updatedAt: now,
  };
  for (const [key, data] of client.getQueriesData<InfiniteData<Page<OrderView>>>({
    queryKey: ['orders', 'feed'],
  })) {
    const f = (key[2] ?? {}) as FeedFilters;
    const fits =
      (!f.machineId || f.machineId === e.machineId) &&
      !f.siteId &&
      (!f.status || f.status === e.status) &&
      (!f.from || f.from <= now) &&
      (!f.to || now < f.to);
    const first = data?.pages[0];
    if (!fits || !data || !first || first.items.some((o) => o.id === e.orderId)) continue;
    client.setQueryData<InfiniteData<Page<OrderView>>>(key, {
      ...data,
      pages: [{ ...first, items: [row, ...first.items] }, ...data.pages.slice(1)],
    });
  }
}

export function LiveProvider({ children }: { children: ReactNode }) {
  const { token, me, allTenants } = useAuth();
  const client = useQueryClient();
  const [state, setState] = useState<LiveState>('offline');

  useEffect(() => {
    if (!token || !me) return;
    const socket = io(LIVE_NAMESPACE, { auth: { token }, transports: ['websocket'] });
    const refetch = (key: string, ms = 250) =>
      throttle(() => void client.invalidateQueries({ queryKey: [key] }), ms);
    const orders = refetch('orders');
    const review = refetch('review');
    const fleet = refetch('fleet', 1000);
    const alerts = refetch('alerts', 1000);
    const cash = refetch('cash', 500);
    const print = refetch('print', 500);
    const stats = refetch('stats', 5000);
    const water = refetch('water', 250);
    const cafe = refetch('cafe', 300);
    const firmware = refetch('firmware', 500);

    setState('connecting');
    socket.on('connect', async () => {
      const tenants = allTenants
        ? (await api<Page<TenantView>>('/v1/tenants')).items.map((t) => t.id)
        : [me.tenantId ?? 'default'];
      await Promise.all(tenants.map((t) => socket.emitWithAck('subscribe', { room: `tenant:${t}` })));
      setState('live');
      // Anything missed while disconnected.
      void client.invalidateQueries();
    });
    socket.on('disconnect', () => setState('offline'));
    socket.on('connect_error', () => setState('offline'));

    socket.on(LIVE_EVENTS.machineStatus, (e: MachineStatusEvent) => {
      const patch = { status: e.status, socketConnected: e.socketConnected, lastSeenAt: e.lastSeenAt };
      patchPages<FleetMachineView>(client, ['fleet'], e.machineId, patch);
      client.setQueryData<FleetMachineView>(['machine', e.machineId], (m) => (m ? { ...m, ...patch } : m));
      fleet();
      alerts();
      stats();
    });
    socket.on(LIVE_EVENTS.orderCreated, (e: OrderCreatedEvent) => {
      prependOrder(client, e);
      orders();
      cafe();
      fleet();
      review();
      stats();
    });
    socket.on(LIVE_EVENTS.orderStatusUpdated, (e: OrderStatusEvent) => {
      const patch: Partial<OrderView> = {
        status: e.status,
        ...(e.failureCode ? { failureCode: e.failureCode } : {}),
      };
      patchPages<OrderView>(client, ['orders'], e.orderId, patch);
      client.setQueryData<OrderView>(['order', e.orderId], (o) => (o ? { ...o, ...patch } : o));
      void client.invalidateQueries({ queryKey: ['order', e.orderId] });
      void client.invalidateQueries({ queryKey: ['timeline', e.orderId] });
      if (e.machineId) void client.invalidateQueries({ queryKey: ['machine-commands', e.machineId] });
      orders();
      fleet();
      review();
      alerts();
      stats();
      cafe();
    });
    socket.on(LIVE_EVENTS.cashSessionUpdated, () => {
      cash();
      alerts();
    });
    socket.on(LIVE_EVENTS.firmwareCampaignUpdated, () => firmware());
    socket.on(LIVE_EVENTS.firmwareDeviceUpdated, () => firmware());
    socket.on(LIVE_EVENTS.alertRaised, () => void client.invalidateQueries({ queryKey: ['alerts'] }));
    socket.on(LIVE_EVENTS.paymentInitiated, () => {
      cash();
      cafe();
    });
    socket.on(LIVE_EVENTS.paymentCompleted, () => {
      cash();
      orders();
      cafe();
    });
    // Cafe payments that end without money or are refunded, and refunds that end (docs/cafe.md §12).
    socket.on(LIVE_EVENTS.paymentEnded, cafe);
    socket.on(LIVE_EVENTS.paymentRefunded, cafe);
    socket.on(LIVE_EVENTS.refundUpdated, cafe);
    socket.on(LIVE_EVENTS.printJobUpdated, () => {
      print();
      alerts();
    });
    // A kiosk page's feed and the overview's counts refetch; the charts follow more slowly.
    socket.on(LIVE_EVENTS.waterVerification, () => {
      water();
      stats();
    });
    socket.on(LIVE_EVENTS.waterDispensed, () => {
      water();
      stats();
    });
    return () => {
      socket.disconnect();
      setState('offline');
    };
  }, [token, me, allTenants, client]);

  return <LiveContext.Provider value={state}>{children}</LiveContext.Provider>;
}
