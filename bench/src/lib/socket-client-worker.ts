// A child process holding many light v2 machine connections (plain socket.io-client): each
// connects to /machines with its {machineId, key} and sends one heartbeat. Driven over IPC
// by socket-clients.ts; exits when told to or when the bench goes away.
import { io, type Socket } from 'socket.io-client';
import { rssKb } from './proc.js';

export type WorkerCommand =
  | { type: 'connect'; url: string; clients: { machineId: string; key: string }[]; concurrency: number }
  | { type: 'close' };
export type WorkerReport =
  | { type: 'progress'; connected: number; failed: number }
  | { type: 'ready'; connected: number; failed: number; rssKb: number; errors: string[] }
  | { type: 'closed'; disconnectsWhileHeld: number };

const sockets: Socket[] = [];
let held = false;
let disconnectsWhileHeld = 0;
const send = (report: WorkerReport) => process.send?.(report);

function connectOne(url: string, auth: { machineId: string; key: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = io(`${url}/machines`, {
      transports: ['websocket'],
      auth,
      forceNew: true,
      reconnection: false,
      timeout: 60_000,
    });
    sockets.push(socket);
    socket.once('connect_error', (err) => reject(err));
    socket.once('connect', () => {
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
    socket.on('disconnect', () => {
      if (held) disconnectsWhileHeld += 1;
    });
  });
}

async function connectAll(command: Extract<WorkerCommand, { type: 'connect' }>): Promise<void> {
  let next = 0;
  let connected = 0;
  let failed = 0;
  const errors: string[] = [];
  let lastReport = 0;
  const worker = async () => {
    while (next < command.clients.length) {
      const client = command.clients[next++]!;
      try {
        await connectOne(command.url, client);
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

process.on('message', (message: WorkerCommand) => {
  if (message.type === 'connect') void connectAll(message);
  else if (message.type === 'close') {
    held = false;
    for (const s of sockets) s.disconnect();
    send({ type: 'closed', disconnectsWhileHeld });
    setTimeout(() => process.exit(0), 200);
  }
});
process.on('disconnect', () => process.exit(0));
