// Read queries on the commands table (owned by the commands module) that other modules need
// through the commands service; the claim and result transactions keep theirs in the service.
import type { Db } from '../../platform/db/database.js';
import type { CommandRow } from '../../platform/db/schema.js';

/** Commands still to be executed: waiting, or sent and not yet answered. */
export const PENDING_COMMANDS = ['QUEUED', 'SENT', 'ACCEPTED'] as const;

export function createCommandsRepo(db: Db) {
  return {
    countPending(): Promise<{ n: number }> {
      return db
        .selectFrom('commands')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('status', 'in', PENDING_COMMANDS)
        .executeTakeFirstOrThrow();
    },
    /** Machines with a command queued or in flight since before `olderThan` (ISO time). */
    listMachinesWithWork(
      machineIds: readonly string[],
      olderThan: string,
    ): Promise<{ machine_id: string }[]> {
      return db
        .selectFrom('commands')
        .select('machine_id')
        .distinct()
        .where('machine_id', 'in', machineIds)
        .where('status', 'in', PENDING_COMMANDS)
        .where('queued_at', '<', olderThan)
        .execute();
    },
    countPendingByMachine(machineIds: readonly string[]): Promise<{ machine_id: string; n: number }[]> {
      return db
        .selectFrom('commands')
        .select(['machine_id', (eb) => eb.fn.countAll<number>().as('n')])
        .where('machine_id', 'in', machineIds)
        .where('status', 'in', PENDING_COMMANDS)
        .groupBy('machine_id')
        .execute();
    },
    listRecentForMachine(machineId: string, limit: number): Promise<CommandRow[]> {
      return db
        .selectFrom('commands')
        .selectAll()
        .where('machine_id', '=', machineId)
        .orderBy('queued_at', 'desc')
        .orderBy('id', 'desc')
        .limit(limit)
        .execute();
    },
    /** Dispenses that ended badly (failed, or no result) since `since` (ISO time). */
    listUnsuccessfulSince(since: string) {
      return db
        .selectFrom('commands')
        .select(['order_id', 'machine_id', 'tenant_id', 'status', 'failure_code'])
        .where((eb) =>
          eb.or([
            eb.and([eb('status', '=', 'DONE'), eb('result', '=', 'FAILED')]),
            eb('status', '=', 'NEEDS_REVIEW'),
          ]),
        )
        .where('finished_at', '>=', since)
        .execute();
    },
  };
}

export type CommandsRepo = ReturnType<typeof createCommandsRepo>;
