// Test helper: two linked pseudo-terminals made by socat stand in for a USB serial cable, so
// agents open a real serial device. Tests skip (with a visible notice) when socat is missing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ReadlineParser, SerialPort } from 'serialport';

let noticeShown = false;

/** True when socat is installed; otherwise prints a notice once. */
export function socatAvailable(): boolean {
  const found = spawnSync('sh', ['-c', 'command -v socat'], { stdio: 'ignore' }).status === 0;
  if (!found && !noticeShown) {
    noticeShown = true;
    console.warn(
      'NOTICE: socat is not installed; the serial-line integration tests of the device agents are SKIPPED (apt-get install socat).',
    );
  }
  return found;
}

export interface VirtualSerialPair {
  /** The end the device (Arduino, printer) holds. */
  devicePath: string;
  /** The end the agent opens. */
  agentPath: string;
  close(): Promise<void>;
}

export async function virtualSerialPair(dir: string, name: string): Promise<VirtualSerialPair> {
  const devicePath = join(dir, `${name}-device`);
  const agentPath = join(dir, `${name}-agent`);
  const socat: ChildProcess = spawn(
    'socat',
    ['-d', '-d', `pty,raw,echo=0,link=${devicePath}`, `pty,raw,echo=0,link=${agentPath}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  socat.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => socat.once('exit', () => resolve()));
  const deadline = Date.now() + 5000;
  while (!(existsSync(devicePath) && existsSync(agentPath))) {
    if (socat.exitCode !== null || Date.now() > deadline) {
      socat.kill('SIGTERM');
      throw new Error(`socat did not create the pty pair: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    devicePath,
    agentPath,
    async close() {
      if (socat.exitCode === null) socat.kill('SIGTERM');
      await exited;
    },
  };
}

export interface FakeDevice {
  write(text: string): Promise<void>;
  /** Lines the agent sent to the device. */
  received: string[];
  /** Every byte the agent sent. */
  bytes(): Buffer;
  close(): Promise<void>;
}

/** Opens the device end; `answer` may reply to each line the agent sends (e.g. PING → PONG). */
export async function openFakeDevice(
  path: string,
  answer?: (line: string) => string | undefined,
): Promise<FakeDevice> {
  const port = new SerialPort({ path, baudRate: 9600, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  const received: string[] = [];
  const chunks: Buffer[] = [];
  port.on('data', (chunk: Buffer) => chunks.push(chunk));
  port.pipe(new ReadlineParser({ delimiter: '\n', encoding: 'latin1' })).on('data', (line: string) => {
    received.push(line);
    const reply = answer?.(line.trim());
    if (reply !== undefined) port.write(reply);
  });
  return {
    received,
    bytes: () => Buffer.concat(chunks),
    write: (text) =>
      new Promise<void>((resolve, reject) =>
        port.write(text, (err) => (err ? reject(err) : port.drain(() => resolve()))),
      ),
    close: () => new Promise<void>((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve())),
  };
}
