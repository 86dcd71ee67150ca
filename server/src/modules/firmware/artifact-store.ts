// Firmware images on disk, by their sha256 (content-addressed, immutable): an upload streams to a
// temporary file while it is hashed, and is renamed into place only once it has been accepted.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface StagedImage {
  sha256: string;
  size: number;
  /** Moves the image to its final name (a no-op when the same bytes are already stored). */
  commit(): Promise<void>;
  discard(): Promise<void>;
}

export function createArtifactStore(dir: string) {
  const tmpDir = join(dir, 'tmp');
  const ensure = () => {
    if (!existsSync(tmpDir)) mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
  };
  const pathOf = (sha256: string) => {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error('not a sha256');
    return join(dir, sha256);
  };

  return {
    /** The folder (FIRMWARE_DIR), for messages that name it. */
    dir,
    pathOf,
    /** Streams an upload to a temporary file, hashing it on the way. */
    async stage(source: Readable): Promise<StagedImage> {
      ensure();
      const tmp = join(tmpDir, `${Date.now()}-${randomBytes(6).toString('hex')}.part`);
      const hash = createHash('sha256');
      let size = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          size += chunk.length;
          done(null, chunk);
        },
      });
      const out = createWriteStream(tmp, { mode: 0o600 });
      try {
        await pipeline(source, meter, out);
      } catch (err) {
        // The file is opened lazily: an upload cut short at once may fail before it exists, and
        // the open would then create it after the unlink. Wait for the stream to close first.
        if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
      const sha256 = hash.digest('hex');
      return {
        sha256,
        size,
        commit: async () => {
          if (existsSync(pathOf(sha256))) return unlink(tmp);
          await rename(tmp, pathOf(sha256));
        },
        discard: () => unlink(tmp).catch(() => undefined),
      };
    },
    async size(sha256: string): Promise<number | undefined> {
      try {
        return (await stat(pathOf(sha256))).size;
      } catch {
        return undefined;
      }
    },
    open(sha256: string, range?: { start: number; end: number }): Readable {
      return createReadStream(pathOf(sha256), range ?? {});
    },
  };
}

export type ArtifactStore = ReturnType<typeof createArtifactStore>;
