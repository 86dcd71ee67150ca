// A child process holding many light machines (light-machine.ts: v2 Socket.IO sockets, or MQTT
// clients): each connects with {machineId, key}, sends a first heartbeat (MQTT: its birth), then
// one heartbeat every `heartbeatMs` (status IDLE; 0: none after the first) at a random phase, as
// real machines do. Heartbeats can be paused and resumed (to measure the server's CPU with and
// without them). With `respond`, machines accept and finish the commands they get and report
// when each arrived. Driven over IPC by machine-clients.ts; exits when told to or when the bench
// goes away.
import {
  connectLightMachine,
  type Arrival,
  type LightClient,
  type LightMachine,
  type LightTransport,
} from './light-machine.js';
import { rssKb } from './proc.js';

export type WorkerClient = LightClient;

export type MachineWorkerCommand =
  | {
      type: 'connect';
      clients: WorkerClient[];
      concurrency: number;
      heartbeatMs: number;
      transport?: LightTransport;
      respond?: { dispenseDelayMs: number };
    }
  | { type: 'heartbeats'; on: boolean }
  | { type: 'stats' }
  | { type: 'arrivals' }
  | { type: 'close' };

export interface WorkerStats {
  acked: number;
  failed: number;
  disconnects: number;
}

export type MachineWorkerReport =
  | { type: 'progress'; connected: number; failed: number }
  | { type: 'ready'; connected: number; failed: number; rssKb: number; errors: string[] }
  | ({ type: 'stats' } & WorkerStats)
  | { type: 'arrivals'; arrivals: Arrival[] }
  | ({ type: 'closed' } & WorkerStats);

const machines: LightMachine[] = [];
const timers: NodeJS.Timeout[] = [];
const arrivals = new Map<string, Arrival>();
let held = false;
let heartbeatsOn = true;
const stats: WorkerStats = { acked: 0, failed: 0, disconnects: 0 };
const send = (report: MachineWorkerReport) => process.send?.(report);

function schedule(machine: LightMachine, heartbeatMs: number): void {
  if (heartbeatMs <= 0) return;
  const beat = () => {
    if (!heartbeatsOn || !machine.connected) return;
    machine.heartbeat().then(
      () => (stats.acked += 1),
      () => (stats.failed += 1),
    );
  };
  const first = setTimeout(() => {
    beat();
    timers.push(setInterval(beat, heartbeatMs));
  }, Math.random() * heartbeatMs);
  timers.push(first);
}

async function connectAll(command: Extract<MachineWorkerCommand, { type: 'connect' }>): Promise<void> {
  let next = 0;
  let connected = 0;
  let failed = 0;
  const errors: string[] = [];
  let lastReport = 0;
  const hooks = {
    transport: command.transport ?? 'socketio',
    ...(command.respond ? { respond: command.respond } : {}),
    arrivals,
    onDisconnect: () => {
      if (held) stats.disconnects += 1;
    },
  };
  const worker = async () => {
    while (next < command.clients.length) {
      const client = command.clients[next++]!;
      try {
        const machine = await connectLightMachine(client, hooks);
        machines.push(machine);
        schedule(machine, command.heartbeatMs);
        connected += 1;
      } catch (err) {
        failed += 1;
        if (errors.length < 5) errors.push(`${client.machineId}: ${(err as Error).message}`);
      }
      if (Date.now() - lastReport > 1_000) {
        lastReport = Date.now();
        send({ type: 'progress', connected, failed });
      }
    }
  };
  await Promise.all(Array.from({ length: command.concurrency }, worker));
  held = true;
  send({ type: 'ready', connected, failed, rssKb: rssKb(process.pid), errors });
}

process.on('message', (message: MachineWorkerCommand) => {
  if (message.type === 'connect') void connectAll(message);
  else if (message.type === 'heartbeats') heartbeatsOn = message.on;
  else if (message.type === 'stats') send({ type: 'stats', ...stats });
  else if (message.type === 'arrivals') send({ type: 'arrivals', arrivals: [...arrivals.values()] });
  else if (message.type === 'close') {
    held = false;
    for (const t of timers) clearTimeout(t);
    for (const m of machines) m.close();
    send({ type: 'closed', ...stats });
    setTimeout(() => process.exit(0), 200);
  }
});
process.on('disconnect', () => process.exit(0));
