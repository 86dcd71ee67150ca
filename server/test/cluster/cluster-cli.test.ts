// `npm run cluster` as an operator starts it: ports are checked before anything starts (no
// schema is created when one is taken), the admin token generated for a fresh schema is printed
// once, and the address to use is the balancer's. A node that exits with code 2 (its
// configuration is wrong) is not restarted, a crashed one is, and when every node has exited
// with code 2 the cluster stops with exit code 2.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, freePort, freePortRun, ROOT, sharedServices, START_TIMEOUT_MS } from './helpers.js';
import { dropSchema, newSchemaName } from '../harness.js';

const services = sharedServices('the npm run cluster start-up tests');

function cluster(args: string[], env: Record<string, string>) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(PORT|HOST|ADMIN_TOKEN|JWT_SECRET|DATABASE_.*|REDIS_URL|DATA_DIR)$/.test(k),
    ),
  );
  // As `npm run cluster` runs it (node --import tsx: the tsx CLI would SIGKILL a supervisor slow to
  // confirm a SIGTERM, leaving its nodes behind).
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/cli/cluster.ts', ...args], {
    cwd: ROOT,
    env: { ...clean, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, output: () => out, exited };
}

/** The pid of the cluster's child process that runs with PORT=`port` (Linux /proc). */
function nodePid(clusterPid: number, port: number): number | undefined {
  const children = readFileSync(`/proc/${clusterPid}/task/${clusterPid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  return children.find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`PORT=${port}`);
    } catch {
      return false; // gone meanwhile
    }
  });
}

/** Resolves with the exit code, or undefined if the process is still running after `ms`. */
const exitWithin = (run: { exited: Promise<number | null> }, ms: number) =>
  Promise.race([run.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms))]);

async function schemaExists(url: string, schema: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (
      (await client.query('select 1 from information_schema.schemata where schema_name = $1', [schema]))
        .rowCount === 1
    );
  } finally {
    await client.end();
  }
}

describe.skipIf(!services)('npm run cluster start-up', { timeout: START_TIMEOUT_MS }, () => {
  const schemas: string[] = [];
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(
      children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))),
    );
    for (const s of schemas) await dropSchema(s);
  });

  it('a port in use stops it before anything starts, naming the port and what to change', async () => {
    const schema = newSchemaName();
    schemas.push(schema);
    const env = {
      DATABASE_URL: services!.databaseUrl,
      DATABASE_SCHEMA: schema,
      REDIS_URL: services!.redisUrl,
    };
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const balancer = cluster(['--nodes', '2', '--base-port', String(await freePortRun(2))], {
        ...env,
        PORT: String(port),
      });
      expect(await balancer.exited).toBe(2);
      expect(balancer.output()).toContain(
        `cluster: 127.0.0.1:${port}, for the balancer (PORT), cannot be used (already in use); set PORT=<another port>. Nothing was started.`,
      );
      const node = cluster(['--nodes', '1', '--base-port', String(port)], {
        ...env,
        PORT: String(await freePort()),
      });
      expect(await node.exited).toBe(2);
      expect(node.output()).toContain(
        `127.0.0.1:${port}, for node 1 (--base-port ${port} + 0), cannot be used (already in use); pass --base-port`,
      );
      expect(node.output()).not.toMatch(/EADDRINUSE|\n\s+at /);
      // A PORT the server would refuse is refused here too, by name (it used to become NaN, and
      // an empty one a random port).
      const word = cluster(['--nodes', '1', '--base-port', String(port)], { ...env, PORT: 'eighty' });
      expect(await word.exited).toBe(2);
      expect(word.output()).toContain('cluster: bad configuration: PORT:');
      expect(await schemaExists(services!.databaseUrl, schema)).toBe(false);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it('a node that exits with code 2 (a configuration error) is not started again; the other runs, and is restarted when it crashes', async () => {
    const schema = newSchemaName();
    schemas.push(schema);
    const basePort = await freePortRun(2);
    // One MQTT_PORT for every node: the first to bind it runs, the other is refused (exit 2).
    const run = cluster(['--nodes', '2', '--base-port', String(basePort)], {
      DATABASE_URL: services!.databaseUrl,
      DATABASE_SCHEMA: schema,
      REDIS_URL: services!.redisUrl,
      PORT: String(await freePort()),
      MQTT_PORT: String(await freePort()),
      ADMIN_TOKEN: 'cluster-cli-admin-token-0123456789',
    });
    children.push(run.child);
    const stoppedLine =
      /^\[node(\d):(\d+)\] exited with code 2: a configuration error \(its lines above say what\), which a restart cannot fix, so it is not started again \(1 of 2 nodes still running\)$/m;
    const [, stoppedNode, stoppedPort] = await eventually(
      () => stoppedLine.exec(run.output()),
      START_TIMEOUT_MS - 10_000,
      'a node stopped with code 2',
      100,
    );
    const runningPort = Number(stoppedPort) === basePort ? basePort + 1 : basePort;
    const running = `[node${Number(stoppedNode) === 1 ? 2 : 1}:${runningPort}]`;
    const stopped = `[node${stoppedNode}:${stoppedPort}]`;
    expect(run.output()).toContain(`${stopped} kioskhub: 127.0.0.1:`);
    expect(run.output()).toContain('is already in use; stop what listens there or set MQTT_PORT');
    await eventually(
      () => run.output().includes('Kioskhub cluster: 1 of 2 processes behind the balancer at'),
      START_TIMEOUT_MS - 10_000,
      'the address line',
      100,
    );
    expect(run.output()).toContain(
      `  stopped with a configuration error (exit code 2, not restarted): the node on ${stoppedPort} (its lines above say why)`,
    );
    expect(run.output()).not.toContain('not answering yet');

    // The running node crashes (SIGKILL): it is started again, as before.
    const pid = nodePid(run.child.pid!, runningPort);
    expect(pid, `no child with PORT=${runningPort}`).toBeDefined();
    process.kill(pid!, 'SIGKILL');
    await eventually(
      () => run.output().includes(`${running} exited (SIGKILL); starting it again in 1 s`),
      30_000,
      'the crash to be noticed',
      100,
    );
    await eventually(
      () => run.output().split(`${running} Kioskhub listening on`).length === 3,
      START_TIMEOUT_MS - 10_000,
      'the crashed node to listen again',
      100,
    );
    // The one stopped with code 2 was never started again.
    expect(run.output().split(`${stopped} exited`)).toHaveLength(2);
    expect(run.output()).not.toContain(`${stopped} Kioskhub listening on`);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('when every node exits with code 2 the cluster stops with exit code 2, naming each', async () => {
    const schema = newSchemaName();
    schemas.push(schema);
    const basePort = await freePortRun(2);
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const mqttPort = (taken.address() as { port: number }).port;
    try {
      const run = cluster(['--nodes', '2', '--base-port', String(basePort)], {
        DATABASE_URL: services!.databaseUrl,
        DATABASE_SCHEMA: schema,
        REDIS_URL: services!.redisUrl,
        PORT: String(await freePort()),
        MQTT_PORT: String(mqttPort),
        ADMIN_TOKEN: 'cluster-cli-admin-token-0123456789',
      });
      children.push(run.child);
      expect(await exitWithin(run, START_TIMEOUT_MS - 10_000), run.output()).toBe(2);
      for (const node of [`[node1:${basePort}]`, `[node2:${basePort + 1}]`]) {
        expect(run.output()).toContain(
          `${node} kioskhub: 127.0.0.1:${mqttPort} is already in use; stop what listens there or set MQTT_PORT`,
        );
        expect(run.output()).toContain(`${node} exited with code 2: a configuration error`);
      }
      expect(run.output()).toContain(
        'cluster: every node exited with code 2 (a configuration error); stopping. ' +
          'Fix what their lines above say and start the cluster again.',
      );
      expect(run.output()).not.toContain('starting it again');
      expect(run.output()).not.toContain('behind the balancer at');
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it('a fresh schema: the generated admin token is printed once and works through the balancer’s address', async () => {
    const schema = newSchemaName();
    schemas.push(schema);
    const port = await freePort();
    const run = cluster(['--nodes', '1', '--base-port', String(await freePortRun(1))], {
      DATABASE_URL: services!.databaseUrl,
      DATABASE_SCHEMA: schema,
      REDIS_URL: services!.redisUrl,
      PORT: String(port),
    });
    children.push(run.child);
    const address = `http://127.0.0.1:${port}`;
    await eventually(
      () => run.output().includes(`behind the balancer at ${address}`),
      START_TIMEOUT_MS - 10_000,
      'cluster line',
      100,
    );
    const token = /^\s*ADMIN_TOKEN=(\S+)$/m.exec(run.output())?.[1];
    expect(token, run.output()).toBeDefined();
    expect(run.output().match(/ADMIN_TOKEN=/g)).toHaveLength(1);
    expect(run.output()).toContain(`curl -H "Authorization: Bearer $ADMIN_TOKEN" ${address}/v1/machines`);
    const me = await eventually(
      async () => {
        const res = await fetch(`${address}/v1/auth/me`, {
          headers: { authorization: `Bearer ${token}` },
        }).catch(() => undefined);
        return res?.status === 200 ? res : undefined;
      },
      START_TIMEOUT_MS - 10_000,
      'a node behind the balancer',
      200,
    );
    expect(await me.json()).toMatchObject({ kind: 'admin' });
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });
});
