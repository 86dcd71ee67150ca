// Group commit: one write in progress at a time, everything submitted meanwhile in the next.
import { describe, expect, it } from 'vitest';
import { createGroupWriter } from './group-writer.js';

function deferred() {
  let release!: () => void;
  const promise = new Promise<void>((r) => (release = r));
  return { promise, release };
}

describe('group writer', () => {
  it('writes one submission at once, then everything that arrived meanwhile as one group', async () => {
    const groups: string[][] = [];
    const gate = deferred();
    const writer = createGroupWriter<number, number>(async (batch) => {
      groups.push([...batch.keys()]);
      if (groups.length === 1) await gate.promise;
      return new Map([...batch].map(([k, v]) => [k, v * 10]));
    });
    const first = writer.submit('a', 1);
    await Promise.resolve();
    await Promise.resolve();
    const rest = ['b', 'c', 'd'].map((k, i) => writer.submit(k, i + 2));
    gate.release();
    expect(await first).toBe(10);
    expect(await Promise.all(rest)).toEqual([20, 30, 40]);
    expect(groups).toEqual([['a'], ['b', 'c', 'd']]);
  });

  it('joins submissions of the same tick, and a later value for a key replaces an unwritten one', async () => {
    const groups: [string, number][][] = [];
    const writer = createGroupWriter<number, void>(async (batch) => void groups.push([...batch]));
    await Promise.all([writer.submit('m1', 1), writer.submit('m2', 2), writer.submit('m1', 3)]);
    expect(groups).toEqual([
      [
        ['m1', 3],
        ['m2', 2],
      ],
    ]);
  });

  it('splits a storm into groups of at most maxBatch', async () => {
    const sizes: number[] = [];
    const writer = createGroupWriter<number, void>(async (batch) => void sizes.push(batch.size), 100);
    await Promise.all(Array.from({ length: 250 }, (_, i) => writer.submit(`k${i}`, i)));
    expect(sizes).toEqual([100, 100, 50]);
  });

  it('rejects every submitter of a failed group, and the next group is written normally', async () => {
    let fail = true;
    const writer = createGroupWriter<number, void>(async () => {
      if (fail) throw new Error('database away');
    });
    const failed = await Promise.allSettled([writer.submit('a', 1), writer.submit('b', 2)]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    await expect(writer.submit('a', 1)).resolves.toBeUndefined();
  });

  it('drain waits for everything submitted', async () => {
    const written: string[] = [];
    const writer = createGroupWriter<number, void>(async (batch) => {
      await new Promise((r) => setTimeout(r, 5));
      written.push(...batch.keys());
    });
    void writer.submit('x', 1);
    void writer.submit('y', 2);
    await writer.drain();
    expect(written).toEqual(['x', 'y']);
  });
});
