// `npm run soak -- --fuzz N`: N generated inputs (≥ 100,000 for the long run) across every HTTP
// route the server declares in /openapi.json and every socket event, with the same generators as
// the fuzz test (server/test/fuzz-kit.ts), against the real server on its embedded database.
// The rule: never a 5xx, every 4xx in the error shape, every socket ack an {ok} object, and the
// server still healthy at the end.
import fc from 'fast-check';
import { io, type Socket } from 'socket.io-client';
import {
  answerProblem,
  FUZZ_SERVER_ENV,
  payloadArb,
  routesFromOpenApi,
  shotArb,
  type Shot,
} from '../../../server/test/fuzz-kit.js';
import { ADMIN_TOKEN, createMachines, startKioskhub } from '../lib/kioskhub.js';
import { int, printTable } from '../lib/table.js';

export async function runFuzz(total: number): Promise<boolean> {
  const server = await startKioskhub({
    engine: 'sqlite',
    name: 'kioskhub (fuzz)',
    env: FUZZ_SERVER_ENV,
  });
  const byStatus: Record<number, number> = {};
  const problems: string[] = [];
  let sent = 0;
  let emits = 0;
  let acks = 0;
  const sockets: Socket[] = [];
  let beat: NodeJS.Timeout | undefined;
  try {
    // One machine for the fuzzed HTTP calls (its id and key are what they use), another one only
    // for the socket: a fuzzed admin call may rightly rotate or delete the first one's key.
    const [machine, socketMachine] = await createMachines(server.url, 2, { prefix: 'FZ' });
    const doc = await (await fetch(`${server.url}/openapi.json`)).json();
    const routes = routesFromOpenApi(doc as { paths: Record<string, Record<string, any>> });
    const arb = fc
      .constantFrom(...routes)
      .chain((r) =>
        shotArb(r, { adminToken: ADMIN_TOKEN, machineId: machine!.machineId, machineKey: machine!.key }),
      );
    const open = (nsp: string, auth: Record<string, unknown>) =>
      new Promise<Socket>((resolve, reject) => {
        const s = io(`${server.url}${nsp}`, { transports: ['websocket'], forceNew: true, auth });
        s.once('connect', () => resolve(s));
        s.once('connect_error', reject);
      });
    const v2 = await open('/machines', { machineId: socketMachine!.machineId, key: socketMachine!.key });
    v2.on('machine:dispense', (_c: unknown, ack?: unknown) => {
      if (typeof ack === 'function') (ack as (a: unknown) => void)({ accepted: false, reason: 'BUSY' });
    });
    const live = await open('/live', { token: ADMIN_TOKEN });
    sockets.push(v2, live);
    // A real machine heartbeats: without a valid one for MACHINE_HEARTBEAT_TIMEOUT_MS the server
    // rightly drops its socket as silent (the fuzzed heartbeats are mostly refused).
    beat = setInterval(() => v2.emit('machine:heartbeat', { status: 'BUSY' }, () => {}), 5_000);
    // Why a socket went away, if it does.
    const drops: string[] = [];
    for (const [name, s] of [
      ['/machines', v2],
      ['/live', live],
    ] as const) {
      s.on('disconnect', (reason) => drops.push(`${name} disconnected at input ${sent}: ${reason}`));
      s.on('connect_error', (err) => {
        if (drops.length < 20) drops.push(`${name} could not reconnect at input ${sent}: ${err.message}`);
      });
    }
    const eventArb = fc.tuple(
      fc.constantFrom<[Socket, string]>(
        [v2, 'machine:heartbeat'],
        [v2, 'machine:done'],
        [live, 'subscribe'],
        [live, 'unsubscribe'],
      ),
      payloadArb,
    );

    const fire = async (shot: Shot) => {
      try {
        const res = await fetch(server.url + shot.url, {
          method: shot.method,
          headers: shot.headers,
          signal: AbortSignal.timeout(30_000),
          ...(shot.body !== undefined ? { body: shot.body } : {}),
        });
        const text = await res.text();
        byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
        const problem = answerProblem(shot, { status: res.status, text });
        if (problem && problems.length < 50) problems.push(problem);
      } catch (err) {
        // undici's "fetch failed" says nothing; its cause is what happened (a reset, a refusal).
        const cause = (err as { cause?: unknown }).cause;
        if (problems.length < 50)
          problems.push(
            `no answer: ${shot.method} ${shot.url.slice(0, 120)} (${JSON.stringify(shot.headers).slice(0, 200)}, body ${shot.body?.length ?? 0} bytes): ${String(err)}${cause ? ` (${String(cause)})` : ''}`,
          );
      }
      sent++;
    };
    const emit = async ([[socket, event], args]: [[Socket, string], unknown[]]) => {
      emits++;
      sent++;
      if (!socket.connected) return;
      try {
        const ack: any = await socket.timeout(10_000).emitWithAck(event, ...args);
        acks++;
        if (typeof ack?.ok !== 'boolean' || (ack.ok === false && ack.error?.code === 'INTERNAL'))
          problems.push(`bad ack for ${event}: ${JSON.stringify(ack).slice(0, 200)}`);
      } catch (err) {
        if (socket.connected && problems.length < 50) problems.push(`no ack for ${event}: ${String(err)}`);
      }
    };

    const started = Date.now();
    let lastPrint = started;
    let seed = 1;
    console.log(`[fuzz] ${routes.length} routes, ${int(total)} inputs (about one in ten a socket event)…`);
    while (sent < total) {
      const batch = Math.min(1_000, total - sent);
      const shots = fc.sample(arb, { numRuns: Math.ceil(batch * 0.9), seed: seed++ });
      const events = fc.sample(eventArb, { numRuns: batch - shots.length, seed: seed++ });
      // 16 at a time, sockets interleaved.
      const work: (() => Promise<void>)[] = [
        ...shots.map((s) => () => fire(s)),
        ...events.map((e) => () => emit(e)),
      ];
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < work.length) await work[next++]!();
        }),
      );
      if (Date.now() - lastPrint > 10_000) {
        lastPrint = Date.now();
        const rate = (sent * 1000) / (Date.now() - started);
        const fivexx = Object.entries(byStatus)
          .filter(([status]) => Number(status) >= 500)
          .reduce((a, [, n]) => a + n, 0);
        console.log(
          `  ${int(sent)}/${int(total)} (${int(rate)}/s), ${int(fivexx)} answers of 5xx, ${problems.length} problems`,
        );
      }
    }
    const health = {
      healthz: (await fetch(`${server.url}/healthz`)).ok,
      readyz: (await fetch(`${server.url}/readyz`)).ok,
      machineSocket: v2.connected,
      liveSocket: live.connected,
    };
    const healthy = Object.values(health).every(Boolean);
    const seconds = (Date.now() - started) / 1000;
    printTable(
      `Fuzz — ${int(sent)} inputs over ${routes.length} routes and 4 socket events in ${Math.round(seconds)} s`,
      ['answers', 'count'],
      [
        ...Object.entries(byStatus)
          .sort(([a], [b]) => Number(a) - Number(b))
          .map(([status, n]) => [`HTTP ${status}`, int(n)]),
        ['socket emits (acks)', `${int(emits)} (${int(acks)})`],
        ['problems (5xx, bad error shape, missing ack)', int(problems.length)],
        [
          'healthy afterwards',
          `${healthy ? 'yes' : 'NO'} (${Object.entries(health)
            .map(([k, v]) => `${k} ${v ? 'ok' : 'DOWN'}`)
            .join(', ')})`,
        ],
      ],
    );
    for (const d of drops.slice(0, 10)) console.log(`  ${d}`);
    for (const p of problems.slice(0, 10)) console.log(`  ${p}`);
    return problems.length === 0 && healthy;
  } finally {
    clearInterval(beat);
    for (const s of sockets) s.disconnect();
    await server.stop();
  }
}
