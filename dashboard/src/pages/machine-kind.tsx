// What a machine page shows depends on its kind: a UPI QR for vending machines, the HTTP routes
// a kiosk, cash unit or printer calls for the others, and how each one counts as online.
import type { MachineKind, MachineView } from '@kioskhub/protocol';
import { Link } from 'wouter';
import { Section } from '../ui.tsx';

/** Kinds paid through a fixed-amount UPI QR on the machine. */
export const takesQrPayments = (kind: string): boolean => kind === 'vending';
/** Kinds that receive dispense commands (and so have a command history). */
export const dispenses = (kind: string): boolean => kind === 'vending' || kind === 'water';

/** How the machine talks to the server, in the facts list. */
export function connectionText(m: MachineView): string {
  if (m.socketConnected) return `connected (${m.protocol ?? '?'})`;
  if (m.status !== 'OFFLINE') return 'calling over HTTP with its key';
  return 'not connected';
}

const ROLES: Partial<
  Record<MachineKind, { what: string; routes: string[]; more?: { href: string; label: string } }>
> = {
  kiosk: {
    what:
      'A self-order kiosk: it creates orders priced from its site’s catalog and opens their cash sessions. ' +
      'It is online while it calls the server with its key.',
    routes: ['POST /v1/orders', 'POST /api/cash-payment/init', 'GET /api/cash-payment/status/:orderNumber'],
    more: { href: '/cash', label: 'Cash sessions of its site' },
  },
  cash: {
    what:
      'A cash unit (bill and coin acceptor): it reports each bill and coin for the open session of its kiosk. ' +
      'It is online while it calls the server with its key.',
    routes: ['GET /api/cash-payment/active-sessions', 'POST /api/cash-payment/update'],
    more: { href: '/cash', label: 'Cash sessions and unallocated cash' },
  },
  printer: {
    what:
      'A receipt printer: it takes its site’s receipts one at a time and reports each one printed or failed. ' +
      'It is online while it polls the queue with its key (or stays connected on /machines).',
    routes: [
      'GET /api/receipt/queue/next?wait=25',
      'POST /api/receipt/queue/complete/:jobId',
      'POST /api/receipt/queue/failed/:jobId',
    ],
    more: { href: '/cash', label: 'Print queue of its site' },
  },
  water: {
    what: 'A water kiosk: customers take water with their phone number and PIN; the kiosk asks the server, settles what it dispensed and sends a heartbeat every ~2 minutes.',
    routes: [
      'POST /dispense-verification',
      'POST /v1/water/dispenses',
      'POST /v1/water/transactions:batch',
      'GET /v1/water/credential-cache?since=',
      'POST /v1/water/heartbeat',
    ],
    more: { href: '/water/:id', label: 'Its taps, heartbeat and live verifications' },
  },
  table: {
    what: 'A cafe table: orders placed at it are paid and sent to the kitchen.',
    routes: [],
  },
};

/** The part of a machine page that is about its kind (everything but vending machines). */
export function KindPanel({ machine }: { machine: MachineView }) {
  const role = ROLES[machine.kind as MachineKind];
  if (!role) return null;
  return (
    <Section title="What this machine does">
      <p>{role.what}</p>
      <p className="muted small">Amounts in {machine.currency}, the currency of its site.</p>
      {role.routes.length > 0 && (
        <>
          <h3>Calls it makes (with its key in X-API-Key)</h3>
          <ul>
            {role.routes.map((r) => (
              <li key={r}>
                <code>{r}</code>
              </li>
            ))}
          </ul>
        </>
      )}
      {role.more && (
        <p>
          <Link href={role.more.href.replace(':id', encodeURIComponent(machine.id))}>{role.more.label}</Link>
        </p>
      )}
    </Section>
  );
}
