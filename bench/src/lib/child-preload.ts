// Loaded with --import into every child server the bench starts: the child shuts down when
// the bench process goes away (IPC channel closed), and with --expose-gc it collects garbage
// on SIGUSR2 and, when BENCH_MEMORY_FILE is set, writes process.memoryUsage() there right
// after (memory readings). Server code is untouched.
import { writeFileSync } from 'node:fs';

if (process.send) {
  process.channel?.unref();
  process.on('disconnect', () => {
    process.kill(process.pid, 'SIGTERM');
    setTimeout(() => process.exit(1), 12_000).unref();
  });
}
const gc = (globalThis as { gc?: () => void }).gc;
const memoryFile = process.env['BENCH_MEMORY_FILE'];
if (gc) {
  process.on('SIGUSR2', () => {
    gc();
    if (memoryFile) writeFileSync(memoryFile, JSON.stringify(process.memoryUsage()));
  });
}
