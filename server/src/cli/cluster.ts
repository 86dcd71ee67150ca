// `npm run cluster -- --nodes 3`: several Kioskhub processes on one PostgreSQL and one Redis
// (DATABASE_URL and REDIS_URL from the environment) behind a local TCP balancer on PORT.
// A process that dies is started again after a second, as a process manager would.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startBalancer } from '../cluster/balancer.js';

const USAGE = 'usage: npm run cluster -- [--nodes N] [--base-port P]   (needs DATABASE_URL=postgres://… and REDIS_URL=redis://…)';

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
      console.error(`cluster: unknown option ${flag}\n${USAGE}`);
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
    console.error(`cluster: several processes share PostgreSQL and Redis; set both, e.g.\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/kioskhub REDIS_URL=redis://127.0.0.1:6379 npm run cluster -- --nodes ${nodes}`);
    process.exit(2);
  }
  const host = process.env['HOST'] ?? '127.0.0.1';
  const port = Number(process.env['PORT'] ?? 8080);
  const main = fileURLToPath(new URL('../main.ts', import.meta.url));
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const children = new Map<number, ChildProcess>();
  let stopping = false;

  const start = (i: number) => {
    const nodePort = basePort + i;
    // node --import tsx rather than the tsx CLI, whose signal relay SIGKILLs a child that is slow
    // to confirm a SIGTERM: each node must get the chance to shut down cleanly.
    const child = spawn(process.execPath, ['--import', 'tsx', main], { cwd: root, env: { ...process.env, PORT: String(nodePort), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.set(i, child);
    const prefix = `[node${i + 1}:${nodePort}]`;
    const relay = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) console.log(`${prefix} ${line}`);
    };
    child.stdout?.on('data', relay);
    child.stderr?.on('data', relay);
    child.once('exit', (code, signal) => {
      if (stopping) return;
      console.log(`${prefix} exited (${signal ?? code}); starting it again in 1 s`);
      setTimeout(() => start(i), 1000).unref();
    });
  };
  for (let i = 0; i < nodes; i++) start(i);
  const balancer = await startBalancer({ host, port, backends: Array.from({ length: nodes }, (_, i) => ({ host: '127.0.0.1', port: basePort + i })), log: console.log });
  console.log(`Kioskhub cluster: ${nodes} processes; use http://${host}:${port} (Ctrl-C stops all)`);

  const stop = () => {
    if (stopping) return;
    stopping = true;
    balancer.close();
    for (const child of children.values()) child.kill('SIGTERM');
    setTimeout(() => process.exit(0), 3000).unref();
    Promise.all([...children.values()].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r))))).then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error('cluster:', err instanceof Error ? err.message : err);
  process.exit(1);
});
