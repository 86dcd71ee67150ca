// A child process holding many light v2 machines (plain socket.io-client, WebSocket only):
// each connects to /machines on its own server URL with {machineId, key}, sends a first
// heartbeat, then one heartbeat every `heartbeatMs` (status IDLE; 0: none after the first) at a
// random phase, as real machines do. Heartbeats can be paused and resumed (to measure the server's CPU with and
// without them). Driven over IPC by machine-clients.ts; exits when told to or when the bench
// goes away.
import { io, type Socket } from 'socket.io-client';
import { rssKb } from './proc.js';

export interface WorkerClient {
  url: string;
  machineId: string;
  key: string;
}

export type MachineWorkerCommand =
  | { type: 'connect'; clients: WorkerClient[]; concurrency: number; heartbeatMs: number }
  | { type: 'heartbeats'; on: boolean }
  | { type: 'stats' }
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
  | ({ type: 'closed' } & WorkerStats);

const sockets: Socket[] = [];
const timers: NodeJS.Timeout[] = [];
let held = false;
let heartbeatsOn = true;
const stats: WorkerStats = { acked: 0, failed: 0, disconnects: 0 };
const send = (report: MachineWorkerReport) => process.send?.(report);

function heartbeat(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket
      .timeout(60_000)
      .emit(
        'machine:heartbeat',
        { status: 'IDLE' },
        (err: Error | null, ack: { ok?: boolean } | undefined) => {
          if (err) reject(err);
          else if (ack?.ok !== true) reject(new Error(`heartbeat refused: ${JSON.stringify(ack)}`));
          else resolve();
        },
      );
  });
}

function connectOne(client: WorkerClient): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = io(`${client.url}/machines`, {
      transports: ['websocket'],
      auth: { machineId: client.machineId, key: client.key },
      forceNew: true,
      reconnection: false,
      timeout: 60_000,
    });
    sockets.push(socket);
    socket.once('connect_error', (err) => reject(err));
    socket.once('connect', () => {
      heartbeat(socket).then(() => resolve(socket), reject);
    });
    socket.on('disconnect', () => {
      if (held) stats.disconnects += 1;
    });
  });
}

function schedule(socket: Socket, heartbeatMs: number): void {
  if (heartbeatMs <= 0) return;
  const beat = () => {
    if (!heartbeatsOn || !socket.connected) return;
    heartbeat(socket).then(
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
  const worker = async () => {
    while (next < command.clients.length) {
      const client = command.clients[next++]!;
      try {
        schedule(await connectOne(client), command.heartbeatMs);
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
  else if (message.type === 'close') {
    held = false;
    for (const t of timers) clearTimeout(t);
    for (const s of sockets) s.disconnect();
    send({ type: 'closed', ...stats });
    setTimeout(() => process.exit(0), 200);
  }
});
process.on('disconnect', () => process.exit(0));
