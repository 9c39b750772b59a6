// The upload source (src/girder/source-file.ts): request bodies of exact byte ranges through two
// reused buffers, with direct reads where the file system has them (the temp dir here) and without
// (files under a block); a buffer is never overwritten before the socket took it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { SourceFile } from '../../src/girder/source-file.js';

async function fileOf(t: Test, data: Buffer, dir?: string): Promise<string> {
  const where = await mkdtemp(path.join(dir ?? tmpdir(), 'source-file-'));
  t.teardown(() => rm(where, { recursive: true, force: true }));
  const p = path.join(where, 'f');
  await writeFile(p, data);
  return p;
}

/**
 * Everything a body sends, checking that each buffer still holds its bytes when `send` settles
 * (late), as a slow socket would still be reading it.
 */
async function sent(t: Test, file: SourceFile, offset: number, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let counted = 0;
  let lastSent = 0;
  const body = file.body(offset, length, (n, sentSoFar) => {
    counted += n;
    lastSent = sentSoFar;
  });
  t.equal(body.length, length);
  await body.writeTo(async (bytes) => {
    const copy = Buffer.from(bytes);
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (!copy.equals(bytes)) t.fail('a buffer was overwritten while the socket had it');
    parts.push(copy);
  });
  t.equal(counted, length, 'onSent heard of every byte');
  t.equal(lastSent, length, 'and of the bytes sent so far');
  return Buffer.concat(parts);
}

t.test('byte ranges arrive exactly: aligned, unaligned, the tail, and the whole file', async (t) => {
  const data = randomBytes(5 * 1024 * 1024 + 1234);
  const file = await SourceFile.open({ path: await fileOf(t, data), size: data.length });
  t.teardown(() => file.close());
  for (const [offset, length] of [[0, data.length], [4096, 2 * 1024 * 1024], [12_345, 1_000_000], [4 * 1024 * 1024, data.length - 4 * 1024 * 1024], [data.length - 1, 1]] as const) {
    t.ok((await sent(t, file, offset, length)).equals(data.subarray(offset, offset + length)), `bytes ${offset}+${length}`);
  }
});

t.test('bodies written at once take turns with the buffers', async (t) => {
  const data = randomBytes(3 * 1024 * 1024 + 5);
  const file = await SourceFile.open({ path: await fileOf(t, data), size: data.length });
  t.teardown(() => file.close());
  const [a, b] = await Promise.all([sent(t, file, 0, data.length), sent(t, file, 100, 2 * 1024 * 1024)]);
  t.ok(a.equals(data), 'first body');
  t.ok(b.equals(data.subarray(100, 100 + 2 * 1024 * 1024)), 'second body');
});

t.test('a file under one block (read the ordinary way), and a file on tmpfs', async (t) => {
  const small = Buffer.from('a small file');
  const f1 = await SourceFile.open({ path: await fileOf(t, small), size: small.length });
  t.teardown(() => f1.close());
  t.ok((await sent(t, f1, 0, small.length)).equals(small));
  const data = randomBytes(2 * 1024 * 1024 + 3);
  const f2 = await SourceFile.open({ path: await fileOf(t, data, '/dev/shm'), size: data.length });
  t.teardown(() => f2.close());
  t.ok((await sent(t, f2, 0, data.length)).equals(data));
});

t.test('a file of another size than expected, and a range past its end, are errors', async (t) => {
  const data = randomBytes(10_000);
  const p = await fileOf(t, data);
  await t.rejects(SourceFile.open({ path: p, size: 9_999 }), /is 10000 bytes, expected 9999/);
  const file = await SourceFile.open({ path: p, size: data.length });
  t.teardown(() => file.close());
  await t.rejects(file.body(8_192, 4_000, () => undefined).writeTo(async () => undefined), /ended at byte 10000, before byte 12192/);
  t.ok((await sent(t, file, 0, data.length)).equals(data), 'the file still reads after a failed body');
});
