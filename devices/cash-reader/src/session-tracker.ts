// Which order this kiosk's cash belongs to. The agent only ever credits a session opened by
// its own kiosk (`kioskId` in active-sessions), never "the first open session" of the site.
// Money seen while this kiosk has no session is reported against NO-SESSION-<kiosk> so the
// server records it as unallocated cash for this machine (README: "Cash without a session").
import type { ActiveSession, KioskhubClient } from './kioskhub-client.js';
import type { Logger } from '@kioskhub/agent-kit';

/** The order number reported for money inserted while this kiosk has no open session. */
export const noSessionOrderNumber = (kioskId: string): string => `NO-SESSION-${kioskId}`.slice(0, 64);

/** This kiosk's session among the site's: the newest one it opened (a kiosk serves one customer at a time). */
export function selectOwnSession(
  sessions: readonly ActiveSession[],
  kioskId: string,
): { session: ActiveSession | undefined; mine: number } {
  const mine = sessions.filter((s) => s.kioskId === kioskId);
  const session = mine.reduce<ActiveSession | undefined>(
    (newest, s) => (!newest || s.startedAt >= newest.startedAt ? s : newest),
    undefined,
  );
  return { session, mine: mine.length };
}

export type Binding = { orderNumber: string; basis: 'session' | 'no-session' };

export type SessionTracker = ReturnType<typeof createSessionTracker>;

export function createSessionTracker(deps: {
  client: Pick<KioskhubClient, 'activeSessions'>;
  kioskId: string;
  log: Logger;
  refreshTimeoutMs: number;
}) {
  const { log, kioskId } = deps;
  let own: ActiveSession | undefined;
  let reachable: boolean | undefined;
  let inFlight: Promise<boolean> | undefined;

  async function ask(): Promise<boolean> {
    let sessions: ActiveSession[];
    try {
      sessions = await deps.client.activeSessions(AbortSignal.timeout(deps.refreshTimeoutMs));
    } catch (err) {
      if (reachable !== false)
        log.warn('cannot reach the server for open sessions; keeping the last known one', {
          err,
          orderNumber: own?.orderNumber ?? null,
        });
      reachable = false;
      return false;
    }
    if (reachable === false) log.info('server reachable again');
    reachable = true;
    const { session, mine } = selectOwnSession(sessions, kioskId);
    if (mine > 1 && session?.orderNumber !== own?.orderNumber)
      log.warn('this kiosk has several open cash sessions; cash goes to the newest', {
        kioskId,
        orderNumber: session?.orderNumber,
        open: mine,
      });
    if (session?.orderNumber !== own?.orderNumber) {
      if (session)
        log.info('cash session open for this kiosk', {
          orderNumber: session.orderNumber,
          totalRequired: session.totalRequired,
          amountInserted: session.amountInserted,
        });
      else log.info('no open cash session for this kiosk', { previous: own?.orderNumber });
    }
    own = session;
    return true;
  }

  /** Asks the server (one request at a time); false when it could not be reached. */
  function refresh(): Promise<boolean> {
    inFlight ??= ask().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  return {
    refresh,
    /** The session known from the last answer, without asking. */
    cachedOrderNumber: (): string | undefined => own?.orderNumber,
    /** The session stopped taking cash (paid, cancelled or refused): forget it until the server says otherwise. */
    closed(orderNumber: string): void {
      if (own?.orderNumber === orderNumber) own = undefined;
    },
    /** Where an insert detected now goes: the known session, else the server's fresh answer, else unallocated. */
    async bindingForNewInsert(): Promise<Binding> {
      if (!own) await refresh();
      if (own) return { orderNumber: own.orderNumber, basis: 'session' };
      return { orderNumber: noSessionOrderNumber(kioskId), basis: 'no-session' };
    },
    noSessionOrderNumber: (): string => noSessionOrderNumber(kioskId),
  };
}
