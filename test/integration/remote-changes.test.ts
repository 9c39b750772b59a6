// Changes made by another Girder client (REST) under a running mount: after the attribute TTL the
// mount shows them, and a replaced file never reads back its old (cached) bytes.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { rest, type RawFolder } from '../helpers/girder-rest.js';
import { startGirder } from '../helpers/girder-server.js';
import { run, shellQuote as q, startMount, type Mount } from '../helpers/mount.js';
import { replaceContents } from '../helpers/server-files.js';
import { waitFor } from '../helpers/wait.js';

const TTL_S = 1;
const MiB = 1024 * 1024;
/** How late after the TTL a change may show (a busy machine, the kernel's own caches of TTL_S). */
const SLACK_MS = 4_000;

const girder = await startGirder();
t.teardown(() => girder.stop());
const info = girder.info;
const admin = rest(girder, 'admin');

let seq = 0;
async function setup(tt: { teardown(fn: () => unknown): void }, name: string): Promise<{ folder: RawFolder; m: Mount }> {
  const folder = await admin.createFolder(info.folders.adminPrivate, `${name}-${process.pid}-${seq++}`);
  const m = await startMount({ server: girder, folderId: folder._id, args: ['--attr-ttl', String(TTL_S)] });
  tt.teardown(() => m.cleanup());
  return { folder, m };
}

async function sh(cmd: string): Promise<{ code: number | null; stdout: string; stderr: string; startedAt: number }> {
  const startedAt = Date.now();
  return { ...(await run(cmd, { timeoutMs: 120_000 })), startedAt };
}

/** Reads through the mount until `done` holds; each look is checked by `allowed`; resolves with the number of looks. */
async function watch<R extends { startedAt: number }>(
  look: () => Promise<R>,
  done: (r: R) => boolean,
  allowed: (r: R, lateMs: number) => string | undefined,
  changedAt: number,
): Promise<{ looks: R[]; problems: string[] }> {
  const looks: R[] = [];
  const problems: string[] = [];
  await waitFor(
    async () => {
      const r = await look();
      looks.push(r);
      const problem = allowed(r, r.startedAt - (changedAt + TTL_S * 1000));
      if (problem !== undefined) problems.push(problem);
      return done(r);
    },
    { timeoutMs: TTL_S * 1000 + SLACK_MS + 30_000, intervalMs: 100, what: 'the mount to show the change' },
  );
  return { looks, problems };
}

t.test('a replaced file: the new bytes after the TTL, never the old cached ones', async (tt) => {
  const { folder, m } = await setup(tt, 'replace');
  const cases = [
    { name: 'same-size.bin', before: randomBytes(200_000), after: randomBytes(200_000) },
    { name: 'grows.bin', before: randomBytes(10_000), after: randomBytes(3_000_000) },
    { name: 'shrinks.txt', before: Buffer.from('a longer first version of the file\n'), after: Buffer.from('short\n') },
  ];
  const ids = new Map<string, string>();
  for (const c of cases) ids.set(c.name, (await admin.uploadBytes({ type: 'folder', id: folder._id }, c.name, c.before))._id);

  for (const c of cases) {
    const file = path.join(m.mountpoint, c.name);
    const first = await run(`cat ${q(file)} | base64 -w0`);
    tt.equal(Buffer.from(first.stdout, 'base64').equals(c.before), true, `${c.name}: read once (now cached)`);
    const again = await run(`cat ${q(file)} | base64 -w0`);
    tt.equal(Buffer.from(again.stdout, 'base64').equals(c.before), true, `${c.name}: read twice`);
  }

  const changedAt = Date.now();
  for (const c of cases) await replaceContents(admin, ids.get(c.name) as string, c.after);

  for (const c of cases) {
    const file = path.join(m.mountpoint, c.name);
    const { looks, problems } = await watch(
      async () => {
        const r = await sh(`cat ${q(file)} | base64 -w0`);
        return { ...r, bytes: Buffer.from(r.stdout, 'base64') };
      },
      (r) => r.bytes.equals(c.after),
      (r, late) => {
        if (r.bytes.equals(c.after)) return undefined;
        if (!r.bytes.equals(c.before)) return `a read gave ${r.bytes.length} bytes that are neither version (code ${r.code}: ${r.stderr})`;
        return late > SLACK_MS ? `the old bytes ${late} ms after the TTL` : undefined;
      },
      changedAt,
    );
    tt.same(problems, [], `${c.name}: only the old bytes before the TTL, then the new ones (${looks.length} reads)`);
    for (let i = 0; i < 3; i++) {
      const r = await run(`cat ${q(file)} | base64 -w0`);
      tt.ok(Buffer.from(r.stdout, 'base64').equals(c.after), `${c.name}: the new bytes stay (read ${i + 1})`);
    }
    const size = await run(`stat -c %s ${q(file)}`);
    tt.equal(Number(size.stdout), c.after.length, `${c.name}: the new size`);
  }
});

t.test('a file replaced while a reader streams it: the old bytes, then an error, never other bytes', async (tt) => {
  const { folder, m } = await setup(tt, 'stream-replace');
  const before = randomBytes(64 * MiB);
  const id = (await admin.uploadBytes({ type: 'folder', id: folder._id }, 'moving.bin', before))._id;
  const work = await mkdtemp(path.join(os.tmpdir(), 'stream-replace-'));
  tt.teardown(() => rm(work, { recursive: true, force: true }));
  const [got, ready, go] = ['got', 'ready', 'go'].map((n) => path.join(work, n)) as [string, string, string];
  // one open file (fd 3): 4 MiB in order, a pause while the file is replaced, then on to the end
  const reader = run(
    `exec 3< ${q(path.join(m.mountpoint, 'moving.bin'))} && dd bs=128K count=32 <&3 > ${q(got)} 2>/dev/null && touch ${q(ready)} && ` +
      `while [ ! -e ${q(go)} ]; do sleep 0.05; done; dd bs=128K <&3 >> ${q(got)}`,
    { timeoutMs: 120_000 },
  );
  await waitFor(() => run(`test -e ${q(ready)}`).then((r) => r.code === 0), { timeoutMs: 60_000, intervalMs: 50, what: 'the reader to read 4 MiB' });
  await replaceContents(admin, id, randomBytes(3 * MiB));
  await writeFile(go, '');
  const r = await reader;
  const bytes = await readFile(got);
  tt.not(r.code, 0, `the read fails (read ${bytes.length} bytes)`);
  tt.match(r.stderr, /Stale file handle|Input\/output error/, 'with ESTALE or EIO');
  tt.ok(bytes.length >= 4 * MiB && bytes.length < before.length, `it stopped part way (${bytes.length} bytes)`);
  tt.ok(bytes.equals(before.subarray(0, bytes.length)), 'every byte read is of the version that was opened');
});

t.test('a file deleted elsewhere disappears after the TTL', async (tt) => {
  const { folder, m } = await setup(tt, 'delete');
  const gone = await admin.uploadBytes({ type: 'folder', id: folder._id }, 'gone.txt', Buffer.from('soon gone\n'));
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'stays.txt', Buffer.from('stays\n'));
  const file = path.join(m.mountpoint, 'gone.txt');
  tt.equal((await run(`cat ${q(file)}`)).stdout, 'soon gone\n', 'read once (cached)');

  const changedAt = Date.now();
  await admin.delete(`/item/${gone.itemId}`);
  const { problems } = await watch(
    () => sh(`ls ${q(m.mountpoint)}`),
    (r) => r.code === 0 && !r.stdout.includes('gone.txt'),
    (r, late) => (r.code !== 0 ? `ls failed: ${r.stderr}` : late > SLACK_MS && r.stdout.includes('gone.txt') ? `still listed ${late} ms after the TTL` : undefined),
    changedAt,
  );
  tt.same(problems, [], 'ls drops it after the TTL');
  const cat = await run(`cat ${q(file)}`);
  tt.not(cat.code, 0, 'cat fails');
  tt.match(cat.stderr, /No such file or directory/, 'ENOENT, not the cached bytes');
  tt.equal((await run(`cat ${q(path.join(m.mountpoint, 'stays.txt'))}`)).stdout, 'stays\n', 'its neighbour is untouched');
});

t.test('a file renamed elsewhere shows under its new name after the TTL', async (tt) => {
  const { folder, m } = await setup(tt, 'rename-file');
  const file = await admin.uploadBytes({ type: 'folder', id: folder._id }, 'old-name.txt', Buffer.from('renamed content\n'));
  tt.equal((await run(`cat ${q(path.join(m.mountpoint, 'old-name.txt'))}`)).stdout, 'renamed content\n', 'read once (cached)');

  const changedAt = Date.now();
  // As Girder's web client renames a single-file item: the item and its file.
  await admin.put(`/item/${file.itemId}`, { name: 'new-name.txt' });
  await admin.put(`/file/${file._id}`, { name: 'new-name.txt' });
  const { problems } = await watch(
    () => sh(`ls ${q(m.mountpoint)}`),
    (r) => r.stdout === 'new-name.txt\n',
    (r, late) => {
      if (r.code !== 0) return `ls failed: ${r.stderr}`;
      if (r.stdout !== 'old-name.txt\n' && r.stdout !== 'new-name.txt\n') return `ls showed ${JSON.stringify(r.stdout)}`;
      return late > SLACK_MS && r.stdout !== 'new-name.txt\n' ? `the old name ${late} ms after the TTL` : undefined;
    },
    changedAt,
  );
  tt.same(problems, [], 'ls shows the new name after the TTL, nothing else in between');
  tt.equal((await run(`cat ${q(path.join(m.mountpoint, 'new-name.txt'))}`)).stdout, 'renamed content\n', 'readable under the new name');
  const old = await run(`cat ${q(path.join(m.mountpoint, 'old-name.txt'))}`);
  tt.match(old.stderr, /No such file or directory/, 'the old name is gone');
});

t.test('a folder renamed or moved elsewhere, and an item moved: the new places after the TTL', async (tt) => {
  const { folder, m } = await setup(tt, 'move-folder');
  const renamed = await admin.createFolder(folder._id, 'dir-a');
  await admin.uploadBytes({ type: 'folder', id: renamed._id }, 'inner.txt', Buffer.from('inner\n'));
  const mover = await admin.createFolder(folder._id, 'mover');
  await admin.uploadBytes({ type: 'folder', id: mover._id }, 'm.txt', Buffer.from('moved with its folder\n'));
  const dest = await admin.createFolder(folder._id, 'dest');
  const loose = await admin.uploadBytes({ type: 'folder', id: folder._id }, 'loose.txt', Buffer.from('moved alone\n'));
  const M = m.mountpoint;
  const read = await run(`cat ${q(path.join(M, 'dir-a', 'inner.txt'))} ${q(path.join(M, 'mover', 'm.txt'))} ${q(path.join(M, 'loose.txt'))} && ls ${q(path.join(M, 'dest'))}`);
  tt.equal(read.code, 0, `everything read once (cached) ${read.stderr}`);

  const changedAt = Date.now();
  await admin.put(`/folder/${renamed._id}`, { name: 'dir-b' });
  await admin.put(`/folder/${mover._id}`, { parentType: 'folder', parentId: dest._id });
  await admin.put(`/item/${loose.itemId}`, { folderId: dest._id });

  const wanted = { root: 'dest\ndir-b\n', dest: 'loose.txt\nmover\n' };
  const { problems } = await watch(
    () => sh(`ls ${q(M)} && echo -- && ls ${q(path.join(M, 'dest'))}`),
    (r) => r.stdout === `${wanted.root}--\n${wanted.dest}`,
    (r, late) => {
      if (r.code !== 0) return `ls failed: ${r.stderr}`;
      return late > SLACK_MS && r.stdout !== `${wanted.root}--\n${wanted.dest}` ? `still ${JSON.stringify(r.stdout)} ${late} ms after the TTL` : undefined;
    },
    changedAt,
  );
  tt.same(problems, [], 'the listings show the new places after the TTL');
  const cat = await run(`cat ${q(path.join(M, 'dir-b', 'inner.txt'))} ${q(path.join(M, 'dest', 'mover', 'm.txt'))} ${q(path.join(M, 'dest', 'loose.txt'))}`);
  tt.equal(cat.stdout, 'inner\nmoved with its folder\nmoved alone\n', 'each file reads at its new path');
  for (const old of ['dir-a/inner.txt', 'mover/m.txt', 'loose.txt']) {
    const r = await run(`cat ${q(path.join(M, old))}`);
    tt.match(r.stderr, /No such file or directory/, `${old}: gone from the old path`);
  }
});
