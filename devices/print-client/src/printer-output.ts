// Where receipt bytes go: a serial printer (serialport), a USB printer's character device
// (/dev/usb/lp0) or a plain file (tests, debugging). Each job opens, writes and closes, so an
// unplugged printer shows up as a failed job and a replugged one works on the next.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { SerialPort } from 'serialport';

export type OutputKind = 'file' | 'serial';

export interface PrinterOutput {
  readonly description: string;
  write(bytes: Buffer): Promise<void>;
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(tooLong(what, ms)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

const tooLong = (what: string, ms: number) =>
  new Error(`${what} took longer than ${ms} ms (printer offline or out of paper?)`);

/**
 * Writes every byte to a device opened non-blocking, or fails once `timeoutMs` has passed. A
 * blocking write to a stuck printer cannot be abandoned: its file cannot close while the write
 * waits, so the job would hang, and print later after being reported failed (printed twice).
 */
async function writeBefore(
  handle: FileHandle,
  bytes: Buffer,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += (await handle.write(bytes, offset, bytes.length - offset)).bytesWritten;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      if (Date.now() >= deadline) throw tooLong(what, timeoutMs);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** A file, or a device node under /dev (never created: a missing printer is an error). */
function fileOutput(path: string, timeoutMs: number): PrinterOutput {
  const isDevice = path.startsWith('/dev/');
  return {
    description: `${isDevice ? 'device' : 'file'} ${path}`,
    async write(bytes) {
      const flags = isDevice ? constants.O_WRONLY | constants.O_APPEND | constants.O_NONBLOCK : 'a';
      const handle = await open(path, flags);
      try {
        if (isDevice) await writeBefore(handle, bytes, timeoutMs, `writing to ${path}`);
        else await withTimeout(handle.write(bytes), timeoutMs, `writing to ${path}`);
        if (!isDevice) await handle.sync();
      } finally {
        await handle.close();
      }
    },
  };
}

function serialOutput(path: string, baudRate: number, timeoutMs: number): PrinterOutput {
  return {
    description: `serial ${path} at ${baudRate} baud`,
    async write(bytes) {
      const port = new SerialPort({ path, baudRate, autoOpen: false });
      await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
      try {
        await withTimeout(
          new Promise<void>((resolve, reject) =>
            port.write(bytes, (err) => (err ? reject(err) : port.drain((e) => (e ? reject(e) : resolve())))),
          ),
          timeoutMs,
          `writing to ${path}`,
        );
      } finally {
        await new Promise<void>((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve()));
      }
    },
  };
}

export function createPrinterOutput(options: {
  kind: OutputKind;
  path: string;
  baudRate: number;
  timeoutMs: number;
}): PrinterOutput {
  return options.kind === 'serial'
    ? serialOutput(options.path, options.baudRate, options.timeoutMs)
    : fileOutput(options.path, options.timeoutMs);
}

/** serial for /dev/tty* and /dev/serial/*, file for everything else (including /dev/usb/lp*). */
export const guessOutputKind = (path: string): OutputKind =>
  /^\/dev\/(tty|serial\/)/.test(path) ? 'serial' : 'file';
