// Commands are durable rows: one per paid order that a machine must execute. This module
// claims the next command for a machine (oldest paid first, at most one in flight, enforced
// by a partial unique index), records acks and results, and escalates v1 silences.
import type { CommandView, DispenseCommand, DispenseResult } from '@kioskhub/protocol';
import { sql } from 'kysely';
import { insertRows } from '../../platform/db/compiled.js';
import { nowIso, type Db, type Executor, newId } from '../../platform/db/database.js';
import { isUniqueViolation } from '../../platform/db/errors.js';
import { AppError } from '../../platform/errors.js';
import type { CommandRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { OrdersService } from '../orders/orders.service.js';
import {
  IN_FLIGHT,
  claimDecision,
  commandSourcesOf,
  isInFlight,
  resultEffect,
  type CommandStatus,
  type Protocol,
} from './command-rules.js';
import { createCommandsRepo } from './commands.repo.js';

export type { CommandStatus, Protocol } from './command-rules.js';
// Every paid vending order queues one: compiled once.
const insertCommand = insertRows('commands');

export type Claim =
  | { kind: 'new'; command: CommandRow }
  | { kind: 'in-flight'; command: CommandRow }
  /** `empty`: the machine had nothing queued or in flight (not merely lost a race to another process). */
  | { kind: 'none'; empty?: true };

/**
 * `unknown`: no such command of this machine (or it names another order); `not-sent`: the
 * machine's command, but not sent to it (queued, or cancelled or expired before it went out).
 */
export type ResultOutcome = 'recorded' | 'repeat' | 'unknown' | 'not-sent';

export function createCommandsService(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  orders: Pick<OrdersService, 'note' | 'transition' | 'findRow'>;
  alerts: Pick<AlertsService, 'raise' | 'raiseUnlessOpen'>;
  /** What refunds gave back of an order's payments so far, in minor units (the payments module's). */
  refundedOf?(ex: Executor, orderId: string): Promise<number>;
}) {
  const { db, orders } = deps;
  const repo = createCommandsRepo(db);

  type OrderRow = NonNullable<Awaited<ReturnType<typeof orders.findRow>>>;
  /**
   * A machine dispensed an order that was settled otherwise meanwhile: the fact goes on the
   * order's timeline, and where money went back (`after` says how) an alert asks staff to decide.
   */
  async function dispensedLate(
    tx: Executor,
    late: { command: CommandRow; machineId: string; order: OrderRow; after: string | null },
    detail: Record<string, unknown> = {},
  ): Promise<void> {
    const { command, machineId, order, after } = late;
    await orders.note(tx, order.id, 'dispensed_after_review', `machine:${machineId}`, {
      commandId: command.id,
      status: order.status,
      ...detail,
    });
    if (after === null) return;
    await deps.alerts.raise(tx, {
      tenantId: order.tenant_id,
      kind: 'DISPENSED_AFTER_REFUND',
      subjectType: 'order',
      subjectId: order.id,
      message: `Machine ${machineId} reported that it dispensed order ${order.order_number ?? order.id} after ${after}`,
    });
  }

  /**
   * A SUCCESS for an order a review already settled (the result came after the operator's
   * decision): an order marked refund due raises the alert, so the refund owed is not handed back
   * for an item taken.
   */
  async function dispensedAfterReview(tx: Executor, command: CommandRow, machineId: string): Promise<void> {
    const order = await orders.findRow(command.order_id, tx);
    // Marked dispensed by the operator (COMPLETED): the machine agrees, nothing to tell.
    if (!order || order.status === 'COMPLETED') return;
    const after =
      order.status === 'REFUNDED'
        ? 'the order was marked refund due: the customer has the item, so the refund due is not owed'
        : null;
    await dispensedLate(tx, { command, machineId, order, after });
  }

  /**
   * A SUCCESS that settled a review (NEEDS_REVIEW → COMPLETED) for an order whose payment staff
   * refunded meanwhile (through the payment, not the review's refund due): the customer has the
   * item and money back.
   */
  async function dispensedAfterRefund(tx: Executor, command: CommandRow, machineId: string): Promise<void> {
    const refundedMinor = deps.refundedOf ? await deps.refundedOf(tx, command.order_id) : 0;
    if (refundedMinor <= 0) return;
    const order = await orders.findRow(command.order_id, tx);
    if (!order) return;
    const after = `${refundedMinor} ${order.currency} (minor units) of its payment was refunded: the customer has the item and the refund`;
    await dispensedLate(tx, { command, machineId, order, after }, { refundedMinor });
  }

  return {
    /**
     * Queues a dispense for a paid order, inside the payment's transaction. When the machine is
     * connected over v2, IDLE and has nothing queued or in flight, the command is claimed right
     * here (SENT, attempts 0): the process holding the machine's socket then only reads it and
     * sends it, with no transaction of its own between the payment and the dispense.
     */
    async enqueue(
      ex: Executor,
      input: {
        tenantId: string;
        machineId: string;
        orderId: string;
        amountMinor: number;
        currency: string;
        items?: { sku: string; qty: number }[];
        queuedAt: string;
      },
      machine?: { status: string; socket_connected: number; protocol: string | null },
    ): Promise<CommandRow> {
      const id = newId();
      const payload: DispenseCommand = {
        commandId: id,
        orderId: input.orderId,
        amountMinor: input.amountMinor,
        currency: input.currency,
        ...(input.items ? { items: input.items } : {}),
        issuedAt: input.queuedAt,
      };
      const row: CommandRow = {
        id,
        tenant_id: input.tenantId,
        machine_id: input.machineId,
        order_id: input.orderId,
        status: 'QUEUED',
        protocol: null,
        payload: JSON.stringify(payload),
        attempts: 0,
        queued_at: input.queuedAt,
        sent_at: null,
        accepted_at: null,
        finished_at: null,
        result: null,
        failure_code: null,
      };
      if (machine?.socket_connected === 1 && machine.status === 'IDLE' && machine.protocol === 'v2') {
        const queued = await ex
          .selectFrom('commands')
          .select('id')
          .where('machine_id', '=', input.machineId)
          .where('status', '=', 'QUEUED')
          .limit(1)
          .executeTakeFirst();
        if (!queued) {
          const claimed: CommandRow = { ...row, status: 'SENT', protocol: 'v2', sent_at: nowIso() };
          // Another command in flight (or a concurrent payment claiming first): the index says
          // no, nothing is inserted, and the command is queued below as usual.
          const inserted = await ex
            .insertInto('commands')
            .values(claimed)
            // The predicate must be literal SQL to match the partial index's own.
            .onConflict((oc) =>
              oc
                .column('machine_id')
                .where(sql<boolean>`status in ('SENT', 'ACCEPTED')`)
                .doNothing(),
            )
            .returning('id')
            .executeTakeFirst();
          if (inserted) {
            await orders.note(ex, input.orderId, 'command_sent', `machine:${input.machineId}`, {
              commandId: id,
              protocol: 'v2',
              attempt: 1,
              claimedWithPayment: true,
            });
            await enqueueOutbox(ex, 'dispatch', {
              tenantId: input.tenantId,
              machineId: input.machineId,
              commandId: id,
            });
            return claimed;
          }
        }
      }
      await insertCommand(ex, [row]);
      await enqueueOutbox(ex, 'dispatch', {
        tenantId: input.tenantId,
        machineId: input.machineId,
        commandId: id,
      });
      return row;
    },

    /** The command the machine must see now: the one in flight, or the oldest queued (now claimed). */
    async claimNext(machineId: string, protocol: Protocol): Promise<Claim> {
      // One read answers most kicks without a transaction: nothing to do, or the command in
      // flight (sorted first; claimed when its payment was recorded, or sent before).
      const pending = await db
        .selectFrom('commands')
        .selectAll()
        .where('machine_id', '=', machineId)
        .where('status', 'in', ['QUEUED', ...IN_FLIGHT])
        .orderBy(sql`case when status = 'QUEUED' then 1 else 0 end`)
        .orderBy('queued_at')
        .orderBy('id')
        .limit(1)
        .executeTakeFirst();
      const decision = claimDecision(pending && { status: pending.status as CommandStatus });
      if (!pending || decision === 'none') return { kind: 'none', empty: true };
      if (decision === 'in-flight') return { kind: 'in-flight', command: pending };
      try {
        return await db.transaction().execute(async (tx) => {
          const inFlight = await tx
            .selectFrom('commands')
            .selectAll()
            .where('machine_id', '=', machineId)
            .where('status', 'in', IN_FLIGHT)
            .executeTakeFirst();
          if (inFlight) return { kind: 'in-flight', command: inFlight } as const;
          let q = tx
            .selectFrom('commands')
            .selectAll()
            .where('machine_id', '=', machineId)
            .where('status', '=', 'QUEUED')
            .orderBy('queued_at')
            .orderBy('id')
            .limit(1);
          if (deps.dialect === 'postgres') q = q.modifyEnd(sql`for update skip locked`);
          const next = await q.executeTakeFirst();
          if (!next) return { kind: 'none' } as const;
          const now = nowIso();
          const claimed = await tx
            .updateTable('commands')
            .set({ status: 'SENT', protocol, sent_at: now, attempts: next.attempts + 1 })
            .where('id', '=', next.id)
            .where('status', 'in', commandSourcesOf('SENT'))
            .returningAll()
            .executeTakeFirst();
          if (!claimed) return { kind: 'none' } as const;
          await orders.note(tx, claimed.order_id, 'command_sent', `machine:${machineId}`, {
            commandId: claimed.id,
            protocol,
            attempt: claimed.attempts,
          });
          // v1 machines never ack: the command counts as delivered when it is sent.
          if (protocol === 'v1')
            await orders.transition(tx, claimed.order_id, 'DISPATCHED', {
              actor: 'dispatcher',
              detail: { commandId: claimed.id },
            });
          return { kind: 'new', command: claimed } as const;
        });
      } catch (err) {
        // Another process claimed for this machine at the same moment: the index said no.
        if (isUniqueViolation(err)) return { kind: 'none' };
        throw err;
      }
    },

    inFlight(machineId: string): Promise<CommandRow | undefined> {
      return db
        .selectFrom('commands')
        .selectAll()
        .where('machine_id', '=', machineId)
        .where('status', 'in', IN_FLIGHT)
        .executeTakeFirst();
    },

    async markResent(commandId: string): Promise<void> {
      await db
        .updateTable('commands')
        .set((eb) => ({ attempts: eb('attempts', '+', 1), sent_at: nowIso() }))
        .where('id', '=', commandId)
        .execute();
    },

    /** The machine took the command: order DISPATCHED. */
    async markAccepted(commandId: string): Promise<boolean> {
      return db.transaction().execute(async (tx) => {
        const row = await tx
          .updateTable('commands')
          .set({ status: 'ACCEPTED', accepted_at: nowIso() })
          .where('id', '=', commandId)
          .where('status', 'in', commandSourcesOf('ACCEPTED'))
          .returningAll()
          .executeTakeFirst();
        if (!row) return false;
        await orders.transition(tx, row.order_id, 'DISPATCHED', {
          actor: `machine:${row.machine_id}`,
          event: 'command_accepted',
          detail: { commandId },
        });
        return true;
      });
    },

    /**
     * A refund of the order's payment is being recorded, in its transaction (docs/api.md §8). A
     * dispense not yet sent (QUEUED) is cancelled by a full refund (DONE with no result, failure
     * `REFUNDED`) and the order ends REFUNDED, so no machine ever dispenses it; a partial refund of
     * it is refused, and so is any refund while the machine holds the command (sent, no result
     * yet). An order without a pending command (restaurant, cafe, dispensed) changes nothing.
     */
    async settleForRefund(
      ex: Executor,
      orderId: string,
      refund: { full: boolean; actor: string; paymentId: string },
    ): Promise<void> {
      const pending = await ex
        .selectFrom('commands')
        .selectAll()
        .where('order_id', '=', orderId)
        .where('status', 'in', ['QUEUED', ...IN_FLIGHT])
        .execute();
      const inFlight = (c: CommandRow) =>
        new AppError(
          'INVALID_STATE',
          `order ${orderId} is at machine ${c.machine_id}: the machine is dispensing it; wait for its result, then refund`,
          { orderId, commandId: c.id, commandStatus: c.status, machineId: c.machine_id },
        );
      const held = pending.find((c) => isInFlight(c.status as CommandStatus));
      if (held) throw inFlight(held);
      for (const c of pending) {
        if (!refund.full)
          throw new AppError(
            'INVALID_STATE',
            `order ${orderId} is waiting for machine ${c.machine_id} to dispense it: only a full refund may cancel the dispense; refund all of it, or wait for the machine's result`,
            { orderId, commandId: c.id, commandStatus: c.status, machineId: c.machine_id },
          );
        // Conditional: a machine claiming the command at this moment wins, and the refund waits.
        const cancelled = await ex
          .updateTable('commands')
          .set({ status: 'DONE', finished_at: nowIso(), result: null, failure_code: 'REFUNDED' })
          .where('id', '=', c.id)
          .where('status', '=', 'QUEUED')
          .returningAll()
          .executeTakeFirst();
        if (!cancelled) throw inFlight({ ...c, status: 'SENT' });
        await orders.transition(ex, orderId, 'REFUNDED', {
          actor: refund.actor,
          event: 'command_cancelled',
          detail: { commandId: c.id, paymentId: refund.paymentId, reason: 'refunded before dispense' },
        });
      }
    },

    /**
     * The machine declined (busy, out of stock…): the command waits in the queue again, and is
     * offered again at the machine's next IDLE. A reason other than BUSY may never pass (a machine
     * out of stock declines every time, and the orders paid after it wait behind it): the paid
     * order raises a DISPENSE_DECLINED alert, once while it is open.
     */
    async markDeclined(commandId: string, reason: string): Promise<void> {
      await db.transaction().execute(async (tx) => {
        const row = await tx
          .updateTable('commands')
          .set({ status: 'QUEUED', sent_at: null })
          .where('id', '=', commandId)
          .where('status', 'in', commandSourcesOf('QUEUED'))
          .returningAll()
          .executeTakeFirst();
        if (!row) return;
        await orders.note(tx, row.order_id, 'command_declined', `machine:${row.machine_id}`, {
          commandId,
          reason,
        });
        if (reason === 'BUSY') return;
        // The machine's own words, shortened and without control characters (PostgreSQL text holds no NUL).
        const said = reason.replace(/[\u0000-\u001f\u007f]/g, '?').slice(0, 64);
        await deps.alerts.raiseUnlessOpen(tx, {
          tenantId: row.tenant_id,
          kind: 'DISPENSE_DECLINED',
          subjectType: 'order',
          subjectId: row.order_id,
          message:
            `Machine ${row.machine_id} declined to dispense paid order ${row.order_id} (${said}): ` +
            'it is offered again whenever the machine is idle, and orders paid after it wait behind it; ' +
            'fix the machine, or refund the order in full to cancel its dispense',
        });
      });
    },

    /**
     * A result from the machine, for a command that was sent to it. Repeats of a recorded result
     * are acknowledged and change nothing; so does a result for a command it was never sent.
     */
    async recordResult(
      machineId: string,
      ref: { commandId: string; orderId?: string } | { orderId: string },
      result: DispenseResult,
      failureCode: string | undefined,
    ): Promise<{ outcome: ResultOutcome; command?: CommandRow }> {
      return db.transaction().execute(async (tx) => {
        let q = tx.selectFrom('commands').selectAll().where('machine_id', '=', machineId);
        if ('commandId' in ref) {
          q = q.where('id', '=', ref.commandId);
          // A result naming another order than its command's is not this command's result.
          if (ref.orderId !== undefined) q = q.where('order_id', '=', ref.orderId);
        } else q = q.where('order_id', '=', ref.orderId);
        const command = await q.executeTakeFirst();
        if (!command) return { outcome: 'unknown' as const };
        const effect = resultEffect({
          status: command.status as CommandStatus,
          sent: command.sent_at !== null,
        });
        // Nothing the machine was given: its word on it changes nothing.
        if (effect.kind === 'not-sent') return { outcome: 'not-sent' as const, command };
        if (effect.kind === 'repeat') return { outcome: 'repeat' as const, command };
        const code = result === 'FAILED' ? (failureCode ?? 'DISPENSE_FAILED') : null;
        const now = nowIso();
        const updated = await tx
          .updateTable('commands')
          .set({
            status: 'DONE',
            finished_at: now,
            result,
            failure_code: code,
            ...(command.accepted_at === null ? { accepted_at: now } : {}),
          })
          .where('id', '=', command.id)
          .where('status', 'in', commandSourcesOf('DONE'))
          // Declined back into the queue at this moment (which clears sent_at): not recorded.
          .where('sent_at', 'is not', null)
          .returningAll()
          .executeTakeFirst();
        if (!updated) return { outcome: 'repeat' as const, command };
        // A result before its ack was recorded (the machine answered both at once, or the ack
        // was lost): the machine evidently took the command, so the order passes DISPATCHED.
        // (v1 orders are DISPATCHED when sent; the transition then changes nothing.)
        if (effect.impliesAccepted) {
          await orders.transition(tx, command.order_id, 'DISPATCHED', {
            actor: `machine:${machineId}`,
            event: 'command_accepted',
            detail: { commandId: command.id, impliedByResult: true },
          });
        }
        const moved = await orders.transition(
          tx,
          command.order_id,
          result === 'SUCCESS' ? 'COMPLETED' : 'FAILED',
          {
            actor: `machine:${machineId}`,
            failureCode: code,
            event: result === 'SUCCESS' ? 'dispensed' : 'dispense_failed',
            detail: { commandId: command.id },
          },
        );
        if (!moved && result === 'SUCCESS') await dispensedAfterReview(tx, updated, machineId);
        else if (result === 'SUCCESS' && command.status === 'NEEDS_REVIEW')
          await dispensedAfterRefund(tx, updated, machineId);
        // No outbox kick: the result came in on the process holding the machine's socket, and the
        // gateway kicks its dispatch right after this commit (a crash in between is covered by
        // the dispatch on reconnect).
        return { outcome: 'recorded' as const, command: updated };
      });
    },

    /**
     * Which of these machines (at most 1,000: one parameter each) have a command queued or in
     * flight since before `olderThan`.
     */
    async machinesWithWork(machineIds: readonly string[], olderThan: string): Promise<string[]> {
      if (machineIds.length === 0) return [];
      return (await repo.listMachinesWithWork(machineIds, olderThan)).map((row) => row.machine_id);
    },

    /**
     * A command past its expiry (the customer has long left) is never sent again: it and its
     * order go to review. False when it had finished meanwhile (or, with `from`, had left those
     * statuses).
     */
    async expire(commandId: string, expiresAt: string, from?: readonly CommandStatus[]): Promise<boolean> {
      return db.transaction().execute(async (tx) => {
        const sources = commandSourcesOf('NEEDS_REVIEW').filter((s) => !from || from.includes(s));
        const row = await tx
          .updateTable('commands')
          .set({ status: 'NEEDS_REVIEW', finished_at: nowIso() })
          .where('id', '=', commandId)
          .where('status', 'in', sources)
          .returningAll()
          .executeTakeFirst();
        if (!row) return false;
        await orders.transition(tx, row.order_id, 'NEEDS_REVIEW', {
          actor: 'dispatcher',
          failureCode: 'EXPIRED',
          detail: { commandId, expiresAt },
        });
        return true;
      });
    },

    /**
     * Commands queued before `queuedBefore` (their expiry) that are in flight over `protocol`, or
     * still queued for a machine whose latest connection was over `protocol`: expired, so a
     * machine that stays away (or never says IDLE) does not leave its customers' orders looking
     * paid and pending.
     */
    async expireOverdue(protocol: Protocol, queuedBefore: string, expiresAt: (row: CommandRow) => string) {
      const overdue = await db
        .selectFrom('commands')
        .selectAll()
        .where('queued_at', '<', queuedBefore)
        .where((eb) =>
          eb.or([
            eb.and([eb('protocol', '=', protocol), eb('status', 'in', IN_FLIGHT)]),
            eb.and([
              eb('status', '=', 'QUEUED'),
              eb(
                'machine_id',
                'in',
                eb.selectFrom('machines').select('machines.id').where('machines.protocol', '=', protocol),
              ),
            ]),
          ]),
        )
        .limit(500)
        .execute();
      let expired = 0;
      for (const row of overdue) {
        // A queued one is expired only while still queued: claimed meanwhile (the machine came
        // back), the dispatcher decides on it.
        const from = row.status === 'QUEUED' ? (['QUEUED'] as const) : undefined;
        if (await this.expire(row.id, expiresAt(row), from)) expired++;
      }
      return expired;
    },

    /**
     * Dispenses with no result `olderThanMs` after their last send go to an operator instead of
     * being sent again: v1 ones (a v1 machine cannot de-duplicate), and v2 ones in flight for a
     * machine whose latest connection is v1 (older firmware after a rollback: the command can
     * never reach it, and it may have run it). The machine's next command then goes out.
     */
    async escalateSilentV1(olderThanMs: number): Promise<number> {
      const cutoff = new Date(Date.now() - olderThanMs).toISOString();
      const onV1 = db.selectFrom('machines').select('machines.id').where('machines.protocol', '=', 'v1');
      const stale = await db
        .selectFrom('commands')
        .select(['id', 'tenant_id', 'order_id', 'machine_id', 'protocol'])
        .where('sent_at', '<', cutoff)
        .where((eb) =>
          eb.or([
            eb.and([eb('protocol', '=', 'v1'), eb('status', '=', 'SENT')]),
            eb.and([eb('protocol', '=', 'v2'), eb('status', 'in', IN_FLIGHT), eb('machine_id', 'in', onV1)]),
          ]),
        )
        .limit(500)
        .execute();
      let escalated = 0;
      for (const c of stale) {
        const strandedV2 = c.protocol === 'v2';
        await db.transaction().execute(async (tx) => {
          let q = tx
            .updateTable('commands')
            .set({ status: 'NEEDS_REVIEW', finished_at: nowIso() })
            .where('id', '=', c.id);
          // A v2 command only while the machine is still on v1 (come back on v2, it is re-sent).
          q = strandedV2
            ? q.where('status', 'in', IN_FLIGHT).where('machine_id', 'in', onV1)
            : q.where('status', '=', 'SENT');
          const moved = await q.executeTakeFirst();
          if (Number(moved.numUpdatedRows) === 0) return;
          escalated++;
          await orders.transition(tx, c.order_id, 'NEEDS_REVIEW', {
            actor: 'dispatcher',
            failureCode: 'NO_RESULT',
            detail: {
              commandId: c.id,
              timeoutMs: olderThanMs,
              ...(strandedV2 ? { protocol: 'v2', machineProtocol: 'v1' } : {}),
            },
          });
          await enqueueOutbox(tx, 'dispatch', { tenantId: c.tenant_id, machineId: c.machine_id });
        });
      }
      return escalated;
    },

    async queueDepth(): Promise<number> {
      return Number((await repo.countPending()).n);
    },

    /** Commands not yet executed per machine (machines with none are absent). */
    async pendingCountsByMachine(machineIds: readonly string[]): Promise<Map<string, number>> {
      const counts = new Map<string, number>();
      // In slices: a whole fleet's ids would pass SQLite's limit of bound values in one `in`.
      for (let i = 0; i < machineIds.length; i += 500)
        for (const r of await repo.countPendingByMachine(machineIds.slice(i, i + 500)))
          counts.set(r.machine_id, Number(r.n));
      return counts;
    },

    /** A machine's most recent commands, newest first. */
    async recentForMachine(machineId: string, limit: number): Promise<CommandView[]> {
      return (await repo.listRecentForMachine(machineId, limit)).map(toCommandView);
    },

    /** Dispenses that failed or never got a result, finished since `since` (ISO time). */
    unsuccessfulSince: (since: string) => repo.listUnsuccessfulSince(since),

    listForOrder(orderId: string) {
      return db.selectFrom('commands').selectAll().where('order_id', '=', orderId).execute();
    },
  };
}

const toCommandView = (c: CommandRow): CommandView => ({
  id: c.id,
  orderId: c.order_id,
  status: c.status,
  protocol: c.protocol,
  attempts: Number(c.attempts),
  queuedAt: c.queued_at,
  sentAt: c.sent_at,
  acceptedAt: c.accepted_at,
  finishedAt: c.finished_at,
  result: c.result,
  failureCode: c.failure_code,
});

export type CommandsService = ReturnType<typeof createCommandsService>;
