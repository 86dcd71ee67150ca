// The platform's scheduler: the one place periodic timers live. A module registers a named task
// and a period; the app starts the scheduler when ready and stops it (waiting for runs in
// progress) on close. Tasks never overlap themselves; a task that throws is logged and runs again
// at its next period. Durable work belongs in the job table: tasks usually just enqueue a job.
import type { Logger } from 'pino';

export interface ScheduledTask {
  name: string;
  everyMs: number;
  run(): Promise<void>;
}

export function createScheduler(deps: { logger: Logger }) {
  const tasks: ScheduledTask[] = [];
  const timers: NodeJS.Timeout[] = [];
  const running = new Map<string, Promise<void>>();
  let started = false;

  function tick(task: ScheduledTask): void {
    if (running.has(task.name)) return; // a slow run is not stacked up behind itself
    const run = task
      .run()
      .catch((err: unknown) =>
        deps.logger.warn({ err, task: task.name }, 'scheduled task failed; will retry'),
      )
      .finally(() => running.delete(task.name));
    running.set(task.name, run);
  }

  return {
    /** Registers a task; before start() (a task added later starts with the next start()). */
    every(name: string, everyMs: number, run: () => Promise<void>): void {
      if (tasks.some((t) => t.name === name)) throw new Error(`scheduled task "${name}" already exists`);
      tasks.push({ name, everyMs, run });
    },
    start(): void {
      if (started) return;
      started = true;
      for (const task of tasks) {
        tick(task);
        const timer = setInterval(() => tick(task), task.everyMs);
        timer.unref();
        timers.push(timer);
      }
    },
    async stop(): Promise<void> {
      started = false;
      for (const t of timers.splice(0)) clearInterval(t);
      await Promise.all(running.values());
    },
  };
}

export type Scheduler = ReturnType<typeof createScheduler>;
