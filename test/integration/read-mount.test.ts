// Issue 2, "How it is checked": a real Girder seeded over REST, the built CLI mounting it as a child
// process, and ordinary tools (ls, find, du, stat, cat, sha512sum, dd, cp -r, diff -r) on the mount.
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { rest, type RawFile } from '../helpers/girder-rest.js';
import { startGirder } from '../helpers/girder-server.js';
import { isMounted, run, shellQuote as q, startMount, type RunResult } from '../helpers/mount.js';
import { writeRandomFile } from '../helpers/random-file.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const BIG_SIZE = 200 * MiB;
const NFC = 'caf\u00e9.txt';
const NFD = 'cafe\u0301.txt';

/** The assertion message `what`, with the command's output when it failed. */
function ran(r: RunResult, what: string): string {
  if (r.code === 0) return what;
  return `${what}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`;
}

/** Bytes [offset, offset+length) of a local file (clamped at its end). */
async function localSlice(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** `find` of a tree as sorted `d path` / `f size path` lines (types, names and sizes, not times). */
const SHAPE = `find . -mindepth 1 \\( -type d -printf 'd %P\\n' \\) -o \\( -type f -printf 'f %s %P\\n' \\) -o -printf '? %P\\n' | LC_ALL=C sort`;

t.test('a seeded Girder folder, mounted and read with ordinary tools', { timeout: 800_000 }, async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());
  const admin = rest(server, 'admin');
  const work = await mkdtemp(path.join(tmpdir(), 'girder-read-mount-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const expected = path.join(work, 'expected'); // the seeded bytes under their local names
  await mkdir(expected);

  // ---- seed through the REST API (never the mount) ----
  const seedStart = Date.now();
  const root = await admin.createFolder(server.info.folders.adminPrivate, `read-mount-${process.pid}`);
  const files = new Map<string, RawFile>(); // local path -> Girder file
  const small = async (parent: { type: 'folder' | 'item'; id: string }, girderName: string, local: string, data: Buffer): Promise<void> => {
    files.set(local, await admin.uploadBytes(parent, girderName, data));
    await mkdir(path.dirname(path.join(expected, local)), { recursive: true });
    await writeFile(path.join(expected, local), data);
  };
  const folder = async (parentId: string, girderName: string, local: string): Promise<string> => {
    await mkdir(path.join(expected, local), { recursive: true });
    return (await admin.createFolder(parentId, girderName))._id;
  };

  // three levels of folders, with files at each level and a `/` in a file name at the bottom
  const level1 = await folder(root._id, 'level 1', 'level 1');
  await small({ type: 'folder', id: level1 }, 'one.txt', 'level 1/one.txt', Buffer.from('level one\n'));
  const level2 = await folder(level1, 'level 2', 'level 1/level 2');
  const level3 = await folder(level2, 'level 3', 'level 1/level 2/level 3');
  await small({ type: 'folder', id: level3 }, 'deep.txt', 'level 1/level 2/level 3/deep.txt', Buffer.from('deep inside\n'));
  await small({ type: 'folder', id: level3 }, 'x/y.txt', 'level 1/level 2/level 3/x_y.txt', Buffer.from('slash at depth\n'));

  // an item with several files (one of them with `/` in its name): a directory
  const multi = await admin.createItem(root._id, 'multi');
  await small({ type: 'item', id: multi._id }, 'a.txt', 'multi/a.txt', Buffer.from('file a of multi\n'));
  const binary = Buffer.alloc(100_003);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 7919 + 13) % 256;
  await small({ type: 'item', id: multi._id }, 'b.bin', 'multi/b.bin', binary);
  await small({ type: 'item', id: multi._id }, 'c d.txt', 'multi/c d.txt', Buffer.from('spaced\n'));
  await small({ type: 'item', id: multi._id }, 'sub/file.txt', 'multi/sub_file.txt', Buffer.from('slash in a file of an item\n'));

  // an item whose one file has another name: a directory holding that file
  const renamed = await admin.createItem(root._id, 'renamed');
  await small({ type: 'item', id: renamed._id }, 'other-name.txt', 'renamed/other-name.txt', Buffer.from('not the item name\n'));

  // an empty item: an empty directory
  await admin.createItem(root._id, 'empty item');
  await mkdir(path.join(expected, 'empty item'));

  await small({ type: 'folder', id: root._id }, 'empty.txt', 'empty.txt', Buffer.alloc(0));
  await small({ type: 'folder', id: root._id }, 'name with spaces.txt', 'name with spaces.txt', Buffer.from('spaces\n'));
  await small({ type: 'folder', id: root._id }, NFC, NFC, Buffer.from('composed (NFC)\n'));
  await small({ type: 'folder', id: root._id }, NFD, NFD, Buffer.from('decomposed (NFD)\n'));
  await small({ type: 'folder', id: root._id }, 'slash/name.txt', 'slash_name.txt', Buffer.from('slash in an item name\n'));
  const unicodeDir = await folder(root._id, '日本語 データ', '日本語 データ');
  await small({ type: 'folder', id: unicodeDir }, 'ünïcödé ✓.txt', '日本語 データ/ünïcödé ✓.txt', Buffer.from('unicode\n'));
  const slashDir = await folder(root._id, 'a/b', 'a_b');
  await small({ type: 'folder', id: slashDir }, 'inside.txt', 'a_b/inside.txt', Buffer.from('in a folder named a/b\n'));

  // 200 MiB of random bytes, generated to disk and uploaded from disk (bounded memory)
  const bigLocal = path.join(expected, 'big.bin');
  const bigSha = await writeRandomFile(bigLocal, BIG_SIZE);
  const big = await admin.uploadFileFromDisk({ type: 'folder', id: root._id }, 'big.bin', bigLocal, 16 * MiB); // 16 MiB chunks: a smaller test process
  files.set('big.bin', big);
  const seedEnd = Date.now();
  t.equal(big.size, BIG_SIZE, 'the big file is on the server');
  t.equal(await admin.fileSha512(big._id), bigSha, 'Girder has the hash of the seeded bytes');
  t.comment(`seeded in ${((seedEnd - seedStart) / 1000).toFixed(1)} s`);

  // ---- mount with the built CLI ----
  const mount = await startMount({ server, folderId: root._id });
  t.teardown(() => mount.cleanup());
  const mnt = mount.mountpoint;
  const inMount = (cmd: string, timeoutMs = 120_000): Promise<RunResult> => run(`cd ${q(mnt)} && ${cmd}`, { timeoutMs });

  t.test('ls -lR lists every entry with its size', async (t) => {
    const r = await inMount('ls -lR');
    t.equal(r.code, 0, ran(r, `ls -lR succeeds`));
    t.equal(r.stderr, '', 'ls -lR prints no error');
    for (const local of [...files.keys(), 'level 1/level 2', 'empty item', 'a_b']) {
      t.ok(r.stdout.includes(path.basename(local)), `ls -lR shows ${local}`);
    }
    t.match(r.stdout, new RegExp(` ${BIG_SIZE} .* big\\.bin\\n`), 'with the size of big.bin');
    t.match(r.stdout, /^\.\/level 1\/level 2\/level 3:\n/m, 'and recurses three levels down');
  });

  t.test('find shows the tree of the seeded bytes: names, types, sizes', async (t) => {
    const onMount = await inMount(SHAPE);
    const local = await run(`cd ${q(expected)} && ${SHAPE}`);
    t.equal(onMount.code, 0, ran(onMount, `find on the mount succeeds`));
    t.equal(local.code, 0, 'find on the local tree succeeds');
    t.equal(onMount.stdout, local.stdout, 'the same entries, types and sizes');
    t.notMatch(onMount.stdout, /^\? /m, 'nothing but files and directories');
  });

  t.test('the mapping of items and names', async (t) => {
    const r = await inMount(
      `stat -c '%F|%s|%n' multi renamed renamed/other-name.txt 'empty item' empty.txt slash_name.txt a_b ` +
        `'level 1/level 2/level 3/x_y.txt' multi/sub_file.txt ${q(NFC)} ${q(NFD)} && ls -A 'empty item' | wc -l`,
    );
    t.equal(r.code, 0, ran(r, `stat succeeds`));
    const lines = r.stdout.trim().split('\n');
    const size = (local: string): number => files.get(local)?.size ?? -1;
    t.same(lines, [
      'directory|4096|multi',
      'directory|4096|renamed',
      `regular file|${size('renamed/other-name.txt')}|renamed/other-name.txt`,
      'directory|4096|empty item',
      'regular empty file|0|empty.txt',
      `regular file|${size('slash_name.txt')}|slash_name.txt`,
      'directory|4096|a_b',
      `regular file|${size('level 1/level 2/level 3/x_y.txt')}|level 1/level 2/level 3/x_y.txt`,
      `regular file|${size('multi/sub_file.txt')}|multi/sub_file.txt`,
      `regular file|${size(NFC)}|${NFC}`,
      `regular file|${size(NFD)}|${NFD}`,
      '0',
    ], 'several files or another name make a directory; `/` becomes `_`; NFC and NFD stay distinct');
    const names = await inMount('ls -1');
    t.ok(names.stdout.split('\n').includes(NFC) && names.stdout.split('\n').includes(NFD), 'both unicode forms are listed as they are');
  });

  t.test('du -b adds up the sizes', async (t) => {
    const du = await inMount('du -ab .');
    t.equal(du.code, 0, ran(du, `du -ab succeeds`));
    const sizes = new Map(
      du.stdout.trim().split('\n').map((line) => {
        const tab = line.indexOf('\t');
        return [line.slice(tab + 1).replace(/^\.\//, ''), Number(line.slice(0, tab))] as const;
      }),
    );
    for (const [local, file] of files) t.equal(sizes.get(local), file.size, `du -b of ${local}`);
    const dirs = await inMount(`find . -type d -printf '%s\\n'`);
    const dirBytes = dirs.stdout.trim().split('\n').reduce((sum, n) => sum + Number(n), 0);
    const fileBytes = [...files.values()].reduce((sum, f) => sum + f.size, 0);
    t.equal(sizes.get('.'), fileBytes + dirBytes, 'the total is the files plus the directories');
    const total = await inMount('du -sb .');
    t.equal(Number(total.stdout.split('\t')[0]), fileBytes + dirBytes, 'du -sb agrees');
  });

  t.test('stat: sizes and sane times', async (t) => {
    const r = await inMount(`stat -c '%s %Y %Z %a' big.bin`);
    t.equal(r.code, 0, ran(r, `stat succeeds`));
    const [size, mtime, ctime, mode] = r.stdout.trim().split(' ');
    t.equal(Number(size), BIG_SIZE, 'size of big.bin');
    t.ok(Math.abs(Number(mtime) - Date.parse(big.created) / 1000) <= 1, `mtime ${mtime} is the file's Girder time ${big.created}`);
    t.ok(Math.abs(Number(ctime) - Date.parse(big.created) / 1000) <= 1, 'ctime too');
    t.equal(mode, '644', 'an admin can write: mode 644');

    // every entry's mtime lies within the seeding (Girder runs on this machine's clock)
    const times = await inMount(`find . -printf '%T@ %p\\n'`);
    t.equal(times.code, 0, ran(times, `find -printf %T@ succeeds`));
    const low = seedStart / 1000 - 2;
    const high = seedEnd / 1000 + 2;
    const insane = times.stdout.trim().split('\n').filter((line) => {
      const when = Number(line.slice(0, line.indexOf(' ')));
      return !(when >= low && when <= high);
    });
    t.same(insane, [], `every mtime lies between the start and the end of the seeding (${low}..${high})`);

    const fs = await inMount('stat -f -c %b .');
    t.equal(fs.code, 0, ran(fs, `statfs (stat -f) answers`));
  });

  t.test('cat of small files', async (t) => {
    for (const local of ['level 1/level 2/level 3/deep.txt', 'multi/a.txt', 'renamed/other-name.txt', 'empty.txt', NFC, NFD, '日本語 データ/ünïcödé ✓.txt']) {
      const r = await inMount(`cat ${q(local)}`);
      const want = await localSlice(path.join(expected, local), 0, 1024);
      t.equal(r.code, 0, ran(r, `cat ${local} succeeds`));
      t.equal(r.stdout, want.toString(), `cat ${local}`);
    }
    const bin = await inMount('sha512sum multi/b.bin');
    const binWant = await run(`cd ${q(expected)} && sha512sum multi/b.bin`);
    t.equal(bin.stdout, binWant.stdout, 'a binary file in an item directory');
  });

  t.test('sha512sum of the 200 MiB file is the seeded hash', async (t) => {
    const r = await inMount('sha512sum big.bin', 600_000);
    t.equal(r.code, 0, ran(r, `sha512sum succeeds`));
    t.equal(r.stdout.split(' ')[0], bigSha, 'the hash read through the mount');
  });

  t.test('dd at unaligned offsets reads the same bytes as the local copy', async (t) => {
    const cases: Array<{ args: string; offset: number; length: number }> = [
      { args: 'bs=1 skip=12345 count=100000', offset: 12345, length: 100_000 },
      { args: 'bs=4096 skip=12347 count=33', offset: 12347 * 4096, length: 33 * 4096 },
      { args: 'bs=65536 iflag=skip_bytes,count_bytes skip=104857599 count=1000001', offset: 104_857_599, length: 1_000_001 },
      { args: 'bs=1000 iflag=skip_bytes,count_bytes skip=3 count=7777', offset: 3, length: 7777 },
      // past the end: a short read, then EOF
      { args: `bs=4096 iflag=skip_bytes,count_bytes skip=${BIG_SIZE - 777} count=5000`, offset: BIG_SIZE - 777, length: 777 },
    ];
    for (const c of cases) {
      const out = path.join(work, 'dd.out');
      const r = await inMount(`dd if=big.bin of=${q(out)} ${c.args} status=none`, 300_000);
      t.equal(r.code, 0, ran(r, `dd ${c.args} succeeds`));
      const got = await localSlice(out, 0, c.length + 1);
      const want = await localSlice(bigLocal, c.offset, c.length);
      t.equal(got.length, c.length, `dd ${c.args}: ${c.length} bytes`);
      t.ok(got.equals(want), `dd ${c.args}: the bytes at ${c.offset}`);
      await rm(out, { force: true });
    }
    const item = await inMount(`dd if=multi/b.bin bs=7 skip=1001 count=1000 status=none | od -An -tx1 | tr -d ' \\n'`);
    t.equal(item.stdout, binary.subarray(7007, 14007).toString('hex'), 'dd in a file of an item directory');
  });

  t.test('cp -r out of the mount, then diff -r against the seeded bytes', async (t) => {
    const out = path.join(work, 'copied');
    await mkdir(out);
    const cp = await run(`cp -r ${q(mnt)}/. ${q(out)}/`, { timeoutMs: 600_000 });
    t.equal(cp.code, 0, ran(cp, `cp -r succeeds`));
    const diff = await run(`diff -r ${q(expected)} ${q(out)}`, { timeoutMs: 300_000 });
    t.equal(diff.code, 0, ran(diff, `diff -r finds no difference`));
    await rm(out, { recursive: true, force: true });
  });

  t.test('SIGTERM unmounts cleanly and exits 0', async (t) => {
    mount.process.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 120_000)));
    const code = await Promise.race([mount.waitExit(), hung]);
    clearTimeout(timer);
    t.equal(code, 0, code === 0 ? 'the daemon exits 0 after SIGTERM' : `the daemon exits 0 after SIGTERM\n${mount.stderr().slice(-2000)}`);
    t.notOk(await isMounted(mnt), 'nothing is left in /proc/mounts');
    const empty = await waitFor(async () => (await run(`ls -A ${q(mnt)}`)).code === 0, { what: 'the mountpoint to answer' });
    t.ok(empty, 'the mountpoint is a plain directory again');
  });
});
