// Baseline server for `dispatch` and `memory`: bare Fastify + Socket.IO with the same Socket.IO
// options as Kioskhub, no storage. /machines accepts any {machineId} and acks heartbeats;
// POST /dispatch {machineId, orderId} emits machine:dispense to that machine's socket.
// Run as a child process: PORT from env.
import Fastify from 'fastify';
import { Server, type Socket } from 'socket.io';

const port = Number(process.env['PORT'] ?? 0);
const app = Fastify({ logger: false });
const io = new Server(app.server, {
  serveClient: false,
  maxHttpBufferSize: 100_000,
  cors: { origin: true, credentials: true },
});
const sockets = new Map<string, Socket>();

const machines = io.of('/machines');
machines.use((socket, next) => {
  const auth = socket.handshake.auth as { machineId?: unknown };
  if (typeof auth.machineId !== 'string') return next(new Error('unauthorized'));
  socket.data.machineId = auth.machineId;
  next();
});
machines.on('connection', (socket) => {
  const id = socket.data.machineId as string;
  sockets.get(id)?.disconnect(true);
  sockets.set(id, socket);
  socket.once('disconnect', () => {
    if (sockets.get(id) === socket) sockets.delete(id);
  });
  socket.on('machine:heartbeat', (_payload: unknown, ack?: unknown) => {
    if (typeof ack === 'function') ack({ ok: true, serverTime: new Date().toISOString() });
  });
});

app.get('/healthz', async () => ({ ok: true, sockets: sockets.size }));
app.post<{ Body: { machineId: string; orderId: string } }>('/dispatch', async (request, reply) => {
  const socket = sockets.get(request.body.machineId);
  if (!socket)
    return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'machine not connected' } });
  socket.emit('machine:dispense', {
    commandId: request.body.orderId,
    orderId: request.body.orderId,
    amountMinor: 2000,
    currency: 'INR',
    issuedAt: new Date().toISOString(),
  });
  return { ok: true, orderId: request.body.orderId };
});

await app.listen({ host: '127.0.0.1', port });
console.log(`bare socket.io listening on ${port}`);
const stop = () => {
  io.disconnectSockets(true);
  void app.close().then(() => process.exit(0));
  setTimeout(() => process.exit(0), 3_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
