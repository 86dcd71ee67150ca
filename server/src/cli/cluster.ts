// `npm run cluster -- --nodes 3`: several Kioskhub processes on one PostgreSQL and one Redis
// (DATABASE_URL and REDIS_URL from the environment) behind a local TCP balancer on PORT.
// A process that dies is started again after a second, as a process manager would, unless it
// exited with code 2 (its configuration is wrong: a restart cannot help); when every process has,
// the cluster stops with exit code 2.
// Ports are checked and the database prepared (admin token printed) before anything starts.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { startBalancer } from '../cluster/balancer.js';
import { ConfigError, loadConfig } from '../platform/config.js';
import { DatabaseNewerError, DatabaseUnreachableError, openDatabase } from '../platform/db/database.js';
import { createTenantsService } from '../modules/tenants/tenants.service.js';

/** Whether host:port can be listened on now (taken, or not allowed: false with the reason). */
function portFree(host: string, port: number): Promise<true | string> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** Creates the schema and the default tenant once, here, so a generated admin token is shown. */
async function prepareDatabase(): Promise<string[]> {
  const config = loadConfig();
  const schema = config.databaseSchema ? { schema: config.databaseSchema } : {};
  const database = await openDatabase(config.database, schema);
  try {
    const secrets = await createTenantsService(database.db).bootstrap({
      ...(config.adminToken ? { adminToken: config.adminToken } : {}),
      ...(config.jwtSecret ? { jwtSecret: config.jwtSecret } : {}),
    });
    if (secrets.generatedAdminToken) {
      return [
        'First start: an admin token was generated. It is shown this once; keep it safe.',
        `  ADMIN_TOKEN=${secrets.generatedAdminToken}`,
      ];
    }
    return [
      secrets.adminTokenSource === 'environment'
        ? 'Admin token: ADMIN_TOKEN from the environment.'
        : 'Admin token: the one generated at first start (ADMIN_TOKEN is not set).',
    ];
  } finally {
    await database.close();
  }
}

const USAGE = `Usage: npm run cluster -- [--nodes N] [--base-port P]

Starts N Kioskhub processes on one PostgreSQL and one Redis behind a local TCP balancer on
HOST:PORT (default 127.0.0.1:8080); the nodes listen on 127.0.0.1:P, P+1, …

  --nodes N       how many processes, 1..16 (default 3)
  --base-port P   the first node's port (default 8081)
  -h, --help      this text

Needs DATABASE_URL=postgres://… and REDIS_URL=redis://… in the environment. A node that crashes
is started again after a second; one that exits with code 2 (its configuration is wrong) is not,
and when every node has, the cluster stops with exit code 2. Ctrl-C stops every node.`;

/** The exit code of a node (or of the cluster) whose configuration is wrong: no restart helps. */
const CONFIGURATION_ERROR = 2;

function parseArgs(argv: string[]): { nodes: number; basePort: number } {
  let nodes = 3;
  let basePort = 8081;
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2);
    const value = inline ?? argv[++i];
    if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (flag === '--nodes') nodes = Number(value);
    else if (flag === '--base-port') basePort = Number(value);
    else {
      console.error(`cluster: unknown option ${flag}\n\n${USAGE}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) {
    console.error('cluster: --nodes must be a whole number from 1 to 16');
    process.exit(2);
  }
  if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65_000) {
    console.error('cluster: --base-port must be a port number');
    process.exit(2);
  }
  return { nodes, basePort };
}

async function main(): Promise<void> {
  const { nodes, basePort } = parseArgs(process.argv.slice(2));
  const databaseUrl = process.env['DATABASE_URL'];
  const redisUrl = process.env['REDIS_URL'];
  if (!databaseUrl?.startsWith('postgres') || !redisUrl?.startsWith('redis')) {
    console.error(
      `cluster: several processes share PostgreSQL and Redis; set both, e.g.\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/kioskhub REDIS_URL=redis://127.0.0.1:6379 npm run cluster -- --nodes ${nodes}`,
    );
    process.exit(2);
  }
  // The balancer's HOST and PORT read as the server reads them (an empty value is unset; a bad
  // one is named), so `npm start` and `npm run cluster` agree on where the service listens.
  let listen: { host: string; port: number };
  try {
    listen = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`cluster: bad configuration: ${err.message}`);
    process.exit(2);
  }
  const { host, port } = listen;
  const nodePorts = Array.from({ length: nodes }, (_, i) => ({
    host: '127.0.0.1',
    port: basePort + i,
    what: `node ${i + 1} (--base-port ${basePort} + ${i})`,
  }));
  const wanted = [{ host, port, what: 'the balancer (PORT)' }, ...nodePorts];
  const clash = wanted.find((w, i) => wanted.findIndex((o) => o.port === w.port) !== i);
  if (clash) {
    console.error(
      `cluster: port ${clash.port} is both the balancer's (PORT) and a node's (--base-port ${basePort}); ` +
        'choose ports that do not overlap',
    );
    process.exit(2);
  }
  for (const w of wanted) {
    const free = await portFree(w.host, w.port);
    if (free !== true) {
      const how = w.what.startsWith('the balancer')
        ? 'set PORT=<another port>'
        : 'pass --base-port <another port>';
      const why = free === 'EADDRINUSE' ? 'already in use' : free;
      console.error(
        `cluster: ${w.host}:${w.port}, for ${w.what}, cannot be used (${why}); ${how}. Nothing was started.`,
      );
      process.exit(2);
    }
  }
  let tokenLines: string[];
  try {
    tokenLines = await prepareDatabase();
  } catch (err) {
    if (!(
      err instanceof ConfigError ||
      err instanceof DatabaseUnreachableError ||
      err instanceof DatabaseNewerError
    ))
      throw err;
    console.error(`cluster: ${err instanceof ConfigError ? 'bad configuration: ' : ''}${err.message}`);
    process.exit(2);
  }
  console.log(tokenLines.join('\n'));
  const main = fileURLToPath(new URL('../main.ts', import.meta.url));
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const children = new Map<number, ChildProcess>();
  // Nodes that exited with code 2 (a configuration error: a bad variable, PostgreSQL refusing, a
  // port taken): starting them again would only fail the same way.
  const givenUp = new Set<number>();
  let balancer: Server | undefined;
  let stopping = false;

  const stop = (exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    balancer?.close();
    for (const child of children.values()) child.kill('SIGTERM');
    setTimeout(() => process.exit(exitCode), 3000).unref();
    Promise.all(
      [...children.values()].map(
        (c) =>
          new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r))),
      ),
    ).then(
      () => process.exit(exitCode),
      () => process.exit(1),
    );
  };

  const start = (i: number) => {
    const nodePort = basePort + i;
    // node --import tsx rather than the tsx CLI, whose signal relay SIGKILLs a child that is slow
    // to confirm a SIGTERM: each node must get the chance to shut down cleanly.
    const child = spawn(process.execPath, ['--import', 'tsx', main], {
      cwd: root,
      env: { ...process.env, PORT: String(nodePort), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.set(i, child);
    const prefix = `[node${i + 1}:${nodePort}]`;
    const relay = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) console.log(`${prefix} ${line}`);
    };
    child.stdout?.on('data', relay);
    child.stderr?.on('data', relay);
    child.once('exit', (code, signal) => {
      if (stopping) return;
      if (code === CONFIGURATION_ERROR) {
        givenUp.add(i);
        const running = nodes - givenUp.size;
        console.log(
          `${prefix} exited with code 2: a configuration error (its lines above say what), which a ` +
            `restart cannot fix, so it is not started again` +
            (running > 0 ? ` (${running} of ${nodes} nodes still running)` : ''),
        );
        if (running === 0) {
          console.error(
            `cluster: every node exited with code 2 (a configuration error); stopping. ` +
              'Fix what their lines above say and start the cluster again.',
          );
          stop(CONFIGURATION_ERROR);
        }
        return;
      }
      console.log(`${prefix} exited (${signal ?? code}); starting it again in 1 s`);
      setTimeout(() => {
        if (!stopping) start(i);
      }, 1000).unref();
    });
  };
  process.on('SIGINT', () => stop());
  process.on('SIGTERM', () => stop());
  for (let i = 0; i < nodes; i++) start(i);
  let started: Server;
  try {
    started = await startBalancer({
      host,
      port,
      backends: Array.from({ length: nodes }, (_, i) => ({ host: '127.0.0.1', port: basePort + i })),
      log: console.log,
    });
  } catch (err) {
    // Taken since the check above: stop the nodes rather than leave them running.
    console.error(`cluster: the balancer cannot listen on ${host}:${port} (${(err as Error).message})`);
    stop(CONFIGURATION_ERROR);
    return;
  }
  if (stopping) started.close();
  else balancer = started;

  // The address is printed once the nodes answer: before that the balancer has nobody to pass a
  // request to, and a curl copied from the banner would get an empty reply.
  console.log(`Starting ${nodes} processes (tsx compiles the server first: 5–30 s)…`);
  const nodeIndex = (nodePort: number) => nodePort - basePort;
  const notReady = await waitForReady(
    nodePorts.map((n) => n.port),
    NODES_READY_TIMEOUT_MS,
    () => stopping,
    (nodePort) => givenUp.has(nodeIndex(nodePort)),
  );
  if (stopping) return;
  const address = `http://${host}:${port}`;
  const stopped = nodePorts.filter((n) => givenUp.has(nodeIndex(n.port))).map((n) => n.port);
  const running = nodes - stopped.length;
  console.log(
    [
      '',
      `Kioskhub cluster: ${running === nodes ? nodes : `${running} of ${nodes}`} processes behind the ` +
        `balancer at ${address}; use that address, not a node's (Ctrl-C stops all)`,
      `  curl -H "Authorization: Bearer $ADMIN_TOKEN" ${address}/v1/machines`,
      ...(stopped.length > 0
        ? [
            `  stopped with a configuration error (exit code 2, not restarted): ` +
              (stopped.length === 1
                ? `the node on ${stopped[0]} (its lines above say why)`
                : `the nodes on ${stopped.join(', ')} (their lines above say why)`),
          ]
        : []),
      ...(notReady.length > 0
        ? [`  not answering yet: the nodes on ${notReady.join(', ')} (their lines above say why)`]
        : []),
      '',
    ].join('\n'),
  );
}

const NODES_READY_TIMEOUT_MS = 180_000;

/**
 * Waits until every node answers /readyz; returns the ports of those that did not in time.
 * A node given up on (`gone`) is not waited for, nor returned.
 */
async function waitForReady(
  ports: number[],
  timeoutMs: number,
  stopped: () => boolean,
  gone: (port: number) => boolean,
): Promise<number[]> {
  const waiting = new Set(ports);
  const deadline = Date.now() + timeoutMs;
  while (waiting.size > 0 && Date.now() < deadline && !stopped()) {
    for (const port of [...waiting]) {
      if (gone(port)) {
        waiting.delete(port);
        continue;
      }
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`, {
        signal: AbortSignal.timeout(2_000),
      }).then(
        (res) => res.ok,
        () => false,
      );
      if (ready) waiting.delete(port);
    }
    if (waiting.size > 0) await new Promise((r) => setTimeout(r, 250));
  }
  return [...waiting];
}

main().catch((err: unknown) => {
  console.error('cluster:', err instanceof Error ? err.message : err);
  process.exit(1);
});
