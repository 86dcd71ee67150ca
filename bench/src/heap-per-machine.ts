// What one connected machine costs in the server's heap, by kind of object: the real app in this
// process on a SQLite file (or, with --bare, the bare Socket.IO baseline), a V8 heap snapshot
// after GC before N light v2 machines connect (in client processes) and one after, and the
// difference per machine grouped by node type and constructor.
//
//   node --expose-gc --import tsx bench/src/heap-per-machine.ts [machines] [--bare]
//
// This is how the machine link's dictionary-mode object literal and the per-socket `once`
// wrappers showed up (bench/README.md, "One table for every goal").
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import v8 from 'node:v8';
import { buildApp } from '../../server/src/app.js';
import { loadConfig } from '../../server/src/platform/config.js';
import { ADMIN_TOKEN, BENCH_LIMITS_ENV, seedMachines } from './lib/kioskhub.js';
import { connectMachineClients } from './lib/machine-clients.js';
import { freePort } from './lib/ports.js';
import { fmt, printTable } from './lib/table.js';
import { tempDir } from './lib/temp.js';

const machines = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 2_000);
const bare = process.argv.includes('--bare');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run it with node --expose-gc --import tsx bench/src/heap-per-machine.ts');
  process.exit(2);
}

type Groups = Map<string, { count: number; bytes: number }>;

/** Self sizes of a snapshot's nodes, summed by node type and name (strings as one group). */
function groups(file: string): Groups {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const result: Groups = new Map();
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const type = types[snapshot.nodes[i + typeAt]!]!;
    const name = type.includes('string') ? '' : snapshot.strings[snapshot.nodes[i + nameAt]!]!.slice(0, 60);
    const key = `${type}${name ? ` ${name}` : ''}`;
    const group = result.get(key) ?? { count: 0, bytes: 0 };
    group.count += 1;
    group.bytes += snapshot.nodes[i + sizeAt]!;
    result.set(key, group);
  }
  return result;
}

async function snapshot(path: string): Promise<string> {
  gc!();
  gc!();
  await new Promise((resolve) => setTimeout(resolve, 500));
  return v8.writeHeapSnapshot(path);
}

const dir = tempDir('heap-per-machine');
let close = async (): Promise<void> => {};
try {
  let url: string;
  let clients: { url: string; machineId: string; key: string }[];
  if (bare) {
    const port = await freePort();
    process.env['PORT'] = String(port);
    // The baseline listens as it is imported (it is a child process script).
    await import('./baselines/bare-socketio.js');
    url = `http://127.0.0.1:${port}`;
    clients = Array.from({ length: machines }, (_, i) => ({ url, machineId: `HB${i}`, key: 'none' }));
  } else {
    const credentials = await seedMachines(dir.path, machines, 'HP');
    const app = await buildApp(
      loadConfig({
        DATA_DIR: dir.path,
        ADMIN_TOKEN,
        LOG_LEVEL: 'warn',
        PORT: '0',
        HOST: '127.0.0.1',
        MACHINE_HEARTBEAT_TIMEOUT_MS: '3600000',
        ...BENCH_LIMITS_ENV,
      }),
      { quiet: true },
    );
    url = await app.listen();
    close = () => app.close();
    clients = credentials.map((c) => ({ url, machineId: c.machineId, key: c.key }));
  }
  const before = groups(await snapshot(join(dir.path, 'before.heapsnapshot')));
  const fleet = await connectMachineClients(clients, { heartbeatMs: 30_000, label: 'machines' });
  // Every machine has connected and sent its first heartbeat; its registration is written.
  await new Promise((resolve) => setTimeout(resolve, 8_000));
  const after = groups(await snapshot(join(dir.path, 'after.heapsnapshot')));
  const rows = [...after]
    .map(([key, a]) => {
      const b = before.get(key) ?? { count: 0, bytes: 0 };
      return {
        key,
        count: (a.count - b.count) / fleet.connected,
        bytes: (a.bytes - b.bytes) / fleet.connected,
      };
    })
    .sort((x, y) => y.bytes - x.bytes);
  const total = rows.reduce((sum, r) => sum + r.bytes, 0);
  printTable(
    `Heap per connected machine, ${bare ? 'bare Socket.IO' : 'Kioskhub'}: ${fmt(total, 0)} bytes (${fleet.connected} machines, snapshots after GC)`,
    ['bytes per machine', 'objects per machine', 'node type and name'],
    rows.slice(0, 30).map((r) => [fmt(r.bytes, 0), fmt(r.count, 2), r.key]),
  );
  await fleet.close();
} finally {
  await close();
  await dir.remove();
}
process.exit(0);
