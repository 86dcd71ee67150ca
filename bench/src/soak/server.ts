// The server under soak: the real composition root (server/src/main.ts) as a child process on
// an embedded SQLite file that outlives the process, so it can be killed with SIGKILL and
// started again on the same data, as a power cut and a reboot would do.
import { ADMIN_TOKEN, BENCH_LIMITS_ENV, WEBHOOK_SECRET } from '../lib/kioskhub.js';
import { startChild, waitForHttp, type Child } from '../lib/child.js';
import { repoPath } from '../lib/paths.js';
import { freePort } from '../lib/ports.js';

export interface SoakServer {
  url: string;
  dataDir: string;
  /** The process serving now (a new one after `killAndRestart`). */
  child(): Child;
  /** Warn-or-worse log lines, across every life of the server. */
  warnings: string[];
  killAndRestart(): Promise<{ downMs: number }>;
  stop(): Promise<void>;
}

export async function startSoakServer(dataDir: string, env: Record<string, string>): Promise<SoakServer> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const warnings: string[] = [];
  let lives = 0;
  const spawnOne = async (): Promise<Child> => {
    lives++;
    const child = startChild({
      name: `kioskhub (soak, life ${lives})`,
      script: repoPath('server/src/main.ts'),
      env: {
        HOST: '127.0.0.1',
        PORT: String(port),
        DATA_DIR: dataDir,
        ADMIN_TOKEN,
        RAZORPAY_WEBHOOK_SECRET: WEBHOOK_SECRET,
        LOG_LEVEL: 'warn',
        DATABASE_URL: undefined,
        REDIS_URL: undefined,
        NODE_ENV: 'production',
        ...BENCH_LIMITS_ENV,
        ...env,
      },
      onLine: (line) => {
        if (/"level":(40|50|60)/.test(line) && warnings.length < 5_000) warnings.push(line);
      },
    });
    await waitForHttp(child, `${url}/healthz`);
    return child;
  };
  let current = await spawnOne();
  return {
    url,
    dataDir,
    child: () => current,
    warnings,
    async killAndRestart() {
      const started = Date.now();
      current.process.kill('SIGKILL');
      await current.exited;
      current = await spawnOne();
      return { downMs: Date.now() - started };
    },
    stop: () => current.stop(),
  };
}
