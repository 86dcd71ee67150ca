// Live updates for browsers on /live: staff (JWT or ADMIN_TOKEN) subscribe to rooms of their
// own tenant; a customer screen with an orderToken follows exactly one order. Rooms are
// kept per tenant internally so two tenants' `order:1001` never meet.
import { LIVE_NAMESPACE } from '@kioskhub/protocol';
import { decodeJwt } from 'jose';
import type { Server, Socket } from 'socket.io';
import type { Principal } from '../../platform/http/auth.js';
import { ackOf, answerUnknownEvents, socketError } from '../../platform/socket-validation.js';

export interface LiveViewer {
  principal: Principal | { kind: 'order'; tenantId: string; room: string };
  /** Its token's expiry (ms since the epoch): the socket is dropped then. */
  expiresAt?: number;
  /** The revocation count when the handshake's token check began (see `disconnectUser`). */
  checkedAt?: number;
}

// setTimeout's largest delay; a later expiry is re-armed when it fires.
const MAX_DELAY_MS = 2_147_483_647;

export interface LiveDeps {
  io: Server;
  resolveToken(token: string): Promise<Principal | null>;
  resolveOrderToken(token: string): Promise<{ tenantId: string; room: string } | null>;
  /** Tenant owning a room's subject, or undefined when it does not exist. */
  tenantOfMachine(machineId: string): Promise<string | undefined>;
  tenantOfOrder(orderIdOrNumber: string, tenantHint: string | null): Promise<string | undefined>;
  siteExists(tenantId: string, siteId: string): Promise<boolean>;
  tenantExists(tenantId: string): Promise<boolean>;
}

// The id part allows every character an order number may have (`#` included: "A#21").
const ROOM = /^(tenant|machine|order|kitchen|site|table):([A-Za-z0-9_.:#-]{1,128})$/;
export const internalRoom = (tenantId: string, room: string): string => `${tenantId}|${room}`;

export function installLiveGateway(deps: LiveDeps) {
  const nsp = deps.io.of(LIVE_NAMESPACE);
  // Revocations seen by this process (of a user: its id; of one sign-in: `session:<jti>`): a
  // handshake whose token check began before the latest one of its user or session is refused (or
  // dropped), since `disconnectUser` / `disconnectSession` could not see that socket yet.
  let revocations = 0;
  const revokedAt = new Map<string, { count: number; at: number }>();
  const revokedSince = (
    viewer: { userId: string; session?: { id: string } },
    checkedAt: number | undefined,
  ): boolean => {
    if (checkedAt === undefined) return false;
    const ofUser = revokedAt.get(viewer.userId)?.count ?? 0;
    const ofSession = viewer.session ? (revokedAt.get(`session:${viewer.session.id}`)?.count ?? 0) : 0;
    return Math.max(ofUser, ofSession) > checkedAt;
  };
  function recordRevocation(key: string): void {
    const now = Date.now();
    // A handshake's check takes milliseconds: older revocations no longer matter.
    for (const [id, entry] of revokedAt) if (entry.at < now - 60_000) revokedAt.delete(id);
    revokedAt.set(key, { count: ++revocations, at: now });
  }

  nsp.use((socket, next) => {
    const auth = socket.handshake.auth as { token?: unknown; orderToken?: unknown };
    const data = socket.data as LiveViewer;
    data.checkedAt = revocations;
    // Refused: `unauthorized` as before (clients match it), with the reason in the error's `data`.
    const refuse = (message: string) => {
      const err = new Error('unauthorized') as Error & { data?: unknown };
      err.data = { code: 'UNAUTHORIZED', message };
      return err;
    };
    const resolve = async (): Promise<LiveViewer['principal'] | string> => {
      if (typeof auth.token === 'string') {
        const p = await deps.resolveToken(auth.token);
        if (!p)
          return 'the token is not valid (expired, signed with another key, or not a token): sign in again';
        if (p.kind === 'machine')
          return 'a machine key does not open /live: use a staff token or an orderToken';
        if (p.kind === 'user') {
          // The token was just verified: its `exp` (required for staff tokens) can be trusted.
          const exp = decodeJwt(auth.token).exp;
          if (typeof exp === 'number') data.expiresAt = exp * 1000;
          if (revokedSince(p, data.checkedAt)) return 'this session has ended: sign in again';
        }
        return p;
      }
      if (typeof auth.orderToken === 'string') {
        const o = await deps.resolveOrderToken(auth.orderToken);
        if (!o) return 'the orderToken is not valid (expired, or not an order token)';
        // Verified, and `exp` is required of order tokens: the screen is dropped then (24 h).
        const exp = decodeJwt(auth.orderToken).exp;
        if (typeof exp === 'number') data.expiresAt = exp * 1000;
        return { kind: 'order', ...o };
      }
      return 'no credential: connect with auth: {token} (a staff token or ADMIN_TOKEN) or auth: {orderToken}';
    };
    resolve()
      .then((principal) => {
        if (typeof principal === 'string') return next(refuse(principal));
        data.principal = principal;
        next();
      })
      .catch(() => next(new Error('unavailable')));
  });

  /** The tenant whose copy of `room` this viewer may join, or an error message. */
  async function authorize(
    viewer: LiveViewer['principal'],
    kind: string,
    id: string,
    room: string,
    tenantHint?: string,
  ): Promise<string | { code: string; message: string }> {
    const denied = { code: 'FORBIDDEN', message: `room ${room} is not yours` };
    if (viewer.kind === 'order') return viewer.room === room ? viewer.tenantId : denied;
    const own = viewer.tenantId; // null for ADMIN_TOKEN: any tenant
    let tenant: string | undefined;
    switch (kind) {
      case 'tenant':
        tenant = (await deps.tenantExists(id)) ? id : undefined;
        break;
      case 'machine':
        tenant = await deps.tenantOfMachine(id);
        break;
      case 'order':
        tenant = await deps.tenantOfOrder(id, own ?? tenantHint ?? null);
        break;
      case 'table': // a cafe table is a machine of kind `table`
        tenant = await deps.tenantOfMachine(id);
        break;
      case 'site':
      case 'kitchen': {
        const t = own ?? tenantHint ?? 'default';
        tenant = (await deps.siteExists(t, id)) ? t : undefined;
        break;
      }
    }
    if (tenant === undefined)
      return own === null ? { code: 'NOT_FOUND', message: `${room} does not exist` } : denied;
    if (own !== null && tenant !== own) return denied;
    return tenant;
  }

  nsp.on('connection', (socket: Socket) => {
    const data = socket.data as LiveViewer;
    const viewer = data.principal;
    // Revoked between the handshake's check and now: nothing else would drop this socket.
    if (viewer.kind === 'user' && revokedSince(viewer, data.checkedAt)) return void socket.disconnect(true);
    // A socket does not outlive its token (a staff token's 12 h, an order token's 24 h).
    const expiresAt = data.expiresAt;
    if (expiresAt !== undefined) {
      let timer: NodeJS.Timeout;
      const arm = (): void => {
        const left = expiresAt - Date.now();
        if (left <= 0) return void socket.disconnect(true);
        timer = setTimeout(arm, Math.min(left, MAX_DELAY_MS));
        timer.unref();
      };
      arm();
      socket.once('disconnect', () => clearTimeout(timer));
    }
    answerUnknownEvents(socket, ['subscribe', 'unsubscribe']);
    socket.on('subscribe', async (...args: unknown[]) => {
      const ack = ackOf(args);
      const payload = args[0] as { room?: unknown; tenantId?: unknown } | undefined;
      const room = typeof payload?.room === 'string' ? payload.room : undefined;
      const match = room ? ROOM.exec(room) : null;
      if (!room || !match)
        return ack(
          socketError(
            'VALIDATION_FAILED',
            'room must look like tenant:<id>, machine:<id>, order:<id>, kitchen:<siteId>, site:<siteId> or table:<id>',
          ),
        );
      const hint = typeof payload?.tenantId === 'string' ? payload.tenantId : undefined;
      try {
        const tenant = await authorize(viewer, match[1]!, match[2]!, room, hint);
        if (typeof tenant !== 'string') return ack({ ok: false, error: tenant });
        await socket.join(internalRoom(tenant, room));
        ack({ ok: true, room });
      } catch {
        ack(socketError('INTERNAL', 'try again'));
      }
    });
    socket.on('unsubscribe', async (...args: unknown[]) => {
      const ack = ackOf(args);
      const room = (args[0] as { room?: unknown } | undefined)?.room;
      if (typeof room !== 'string') return ack(socketError('VALIDATION_FAILED', 'room is required'));
      for (const joined of socket.rooms) if (joined.endsWith(`|${room}`)) await socket.leave(joined);
      ack({ ok: true });
    });
  });

  return {
    /**
     * Drops this process's /live sockets of a staff user whose tokens were revoked, and refuses
     * its handshakes whose token check was already under way.
     */
    disconnectUser(userId: string): void {
      recordRevocation(userId);
      for (const socket of nsp.sockets.values()) {
        const viewer = (socket.data as LiveViewer).principal;
        if (viewer.kind === 'user' && viewer.userId === userId) socket.disconnect(true);
      }
    },
    /** The same for one sign-in (a token's `jti`) ended alone: the user's other sockets stay. */
    disconnectSession(userId: string, sessionId: string): void {
      recordRevocation(`session:${sessionId}`);
      for (const socket of nsp.sockets.values()) {
        const viewer = (socket.data as LiveViewer).principal;
        if (viewer.kind === 'user' && viewer.userId === userId && viewer.session?.id === sessionId)
          socket.disconnect(true);
      }
    },
    publish(tenantId: string, rooms: string[], event: string, data: Record<string, unknown>): void {
      if (rooms.length === 0) return;
      nsp.to(rooms.map((r) => internalRoom(tenantId, r))).emit(event, data);
    },
  };
}

export type LiveGateway = ReturnType<typeof installLiveGateway>;
