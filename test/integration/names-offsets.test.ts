// Bad input through the mount (issue 6): names from the server that no local file can carry, names
// from programs that Girder cannot hold, and reads and writes at huge offsets. Each gets a safe
// mapped name or a defined errno; nothing crashes, nothing lands outside the mount.
import { mkdir, mkdtemp, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { rest, type RawFolder } from '../helpers/girder-rest.js';
import { startGirder } from '../helpers/girder-server.js';
import { forceUnmount, run, shellQuote as q, startMount, type Mount } from '../helpers/mount.js';
import { waitUploadsDone } from '../helpers/mount-status.js';
import { sha512 } from '../helpers/random-file.js';
import { fileOf } from '../helpers/server-files.js';

const girder = await startGirder();
t.teardown(() => girder.stop());
const info = girder.info;
const admin = rest(girder, 'admin');

let seq = 0;
/** A folder, and a mount of it whose mountpoint and cache dir are the only entries of a private dir. */
async function setup(tt: { teardown(fn: () => unknown): void }, name: string): Promise<{ folder: RawFolder; m: Mount; base: string }> {
  const folder = await admin.createFolder(info.folders.adminPrivate, `${name}-${process.pid}-${seq++}`);
  const base = await mkdtemp(path.join(tmpdir(), 'girder-names-'));
  const mountpoint = path.join(base, 'mnt');
  const cacheDir = path.join(base, 'cache');
  await mkdir(mountpoint);
  tt.teardown(async () => {
    await forceUnmount(mountpoint);
    await rmdir(mountpoint).catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  });
  return { folder, base, m: await startMount({ server: girder, folderId: folder._id, mountpoint, cacheDir, args: ['--attr-ttl', '1'] }) };
}

t.test('names from the server become safe local names, each readable, nothing outside the mount', async (tt) => {
  const { folder, m, base } = await setup(tt, 'server-names');
  tt.teardown(() => m.cleanup());
  const names = [
    'tab\there.txt', 'new\nline.txt', 'esc\u001b[31mred.txt', 'bell\u0007.txt', 'del\u007f.txt',
    'a/b.txt', '/leading-slash.txt', '.', '..', '../../escape-' + process.pid, '..\\..\\back.txt',
    'x'.repeat(296) + '.txt', 'é'.repeat(150), 'caf\u00e9.txt', 'cafe\u0301.txt', 'a/b.txt'.replace('/', '_'),
  ];
  const contents = new Map<string, string>();
  for (const name of names) {
    const text = `content of ${JSON.stringify(name)}\n`;
    const file = await admin.uploadBytes({ type: 'folder', id: folder._id }, name, Buffer.from(text));
    tt.equal((await admin.get<{ name: string }>(`/item/${file.itemId}`)).name, name, `Girder keeps ${JSON.stringify(name)}`);
    contents.set(name, text);
  }
  // Folders with names that would climb out, each holding a file.
  const dotdot = await admin.createFolder(folder._id, 'holder');
  const up = await admin.createFolder(dotdot._id, '..');
  await admin.uploadBytes({ type: 'folder', id: up._id }, 'inside-dotdot.txt', Buffer.from('inside ..\n'));
  const slashes = await admin.createFolder(folder._id, '../../dir/with/slashes');
  await admin.uploadBytes({ type: 'folder', id: slashes._id }, 'inside-slashes.txt', Buffer.from('inside slashes\n'));

  const M = m.mountpoint;
  const listed = await run(`ls -1A --quoting-style=escape ${q(M)}`);
  tt.equal(listed.code, 0, `ls works ${listed.stderr}`);
  const raw = await run(`cd ${q(M)} && find . -mindepth 1 -maxdepth 1 -printf '%f\\0'`);
  const entries = raw.stdout.split('\0').filter((e) => e !== '');
  tt.equal(entries.length, names.length + 2, `one entry per item and folder, none hidden (${entries.length})`);
  for (const e of entries) {
    tt.ok(Buffer.byteLength(e) <= 255, `${JSON.stringify(e.slice(0, 30))}: at most 255 bytes`);
    tt.notMatch(e, /[\u0000-\u001f\u007f/]/, `${JSON.stringify(e.slice(0, 30))}: no control character or slash`);
    tt.ok(e !== '.' && e !== '..', `${JSON.stringify(e)}: not . or ..`);
  }
  tt.equal(new Set(entries).size, entries.length, 'all names distinct (NFC and NFD both there, clashes suffixed)');

  // Read every file through its listed name: together they must be exactly the uploaded contents.
  const read = await run(`shopt -s dotglob; cd ${q(M)} && for f in *; do [ -f "$f" ] && { cat -- "$f" || echo "FAILED: $f"; }; done`);
  tt.equal(read.code, 0, `every file reads ${read.stderr}`);
  const got = read.stdout.split(/(?<=\n)/).filter((l) => l !== '');
  tt.same(got.filter((l) => l.startsWith('FAILED')), [], 'no read failed');
  tt.same([...got].sort(), [...contents.values()].sort(), 'each item readable, with its own bytes');
  const inner = await run(`shopt -s dotglob; cd ${q(M)} && cat holder/*/inside-dotdot.txt ./*slashes/inside-slashes.txt`);
  tt.equal(inner.stdout, 'inside ..\ninside slashes\n', 'the files inside the odd folders read too');

  // Nothing resolves outside the mount, and nothing appeared beside it.
  const real = await run(`cd ${q(M)} && find . -mindepth 1 -print0 | xargs -0 realpath -e --`);
  const outside = real.stdout.split('\n').filter((p) => p !== '' && !p.startsWith(`${M}/`));
  tt.same(outside, [], 'every path resolves inside the mount');
  tt.same((await readdir(base)).sort(), ['cache', 'mnt'], 'nothing was created beside the mount and its cache');
  const stray = await run(`find ${q(path.join(base, 'cache'))} -name '*escape*' -o -name '*slash*' -o -name '*dotdot*'`);
  tt.equal(stray.stdout, '', 'no server name was used as a path in the cache');
  tt.ok(m.process.exitCode === null, 'the daemon runs');
});

t.test('names Girder cannot hold: EINVAL or ENAMETOOLONG, and nothing stored', async (tt) => {
  const { folder, m } = await setup(tt, 'user-names');
  tt.teardown(() => m.cleanup());
  const M = m.mountpoint;
  await writeFile(path.join(path.dirname(M), 'ok-src'), 'ok\n');
  const cases: Array<{ what: string; cmd: string; error: RegExp }> = [
    { what: 'a leading space', cmd: `touch ${q(`${M}/ lead`)}`, error: /Invalid argument/ },
    { what: 'a trailing space', cmd: `touch ${q(`${M}/trail `)}`, error: /Invalid argument/ },
    { what: 'mkdir with a leading space', cmd: `mkdir ${q(`${M}/ lead-dir`)}`, error: /Invalid argument/ },
    { what: 'a tab', cmd: `touch "${M}/$(printf 'a\\tb')"`, error: /Invalid argument/ },
    { what: 'a newline', cmd: `touch "${M}/$(printf 'a\\nb')x"`, error: /Invalid argument/ },
    { what: 'bytes that are not UTF-8', cmd: `touch "${M}/$(printf '\\377\\376.bin')"`, error: /Invalid argument/ },
    { what: 'a 256-byte name', cmd: `touch ${q(`${M}/${'n'.repeat(256)}`)}`, error: /File name too long/ },
    { what: 'a 300-byte UTF-8 name', cmd: `touch ${q(`${M}/${'é'.repeat(150)}`)}`, error: /File name too long/ },
    { what: 'a rename to a leading space', cmd: `cp ${q(path.join(path.dirname(M), 'ok-src'))} ${q(`${M}/ok.txt`)} && mv ${q(`${M}/ok.txt`)} ${q(`${M}/ renamed`)}`,
      // mv reports rename(2)'s EINVAL as "cannot move ... to a subdirectory of itself"
      error: /Invalid argument|subdirectory of itself/ },
  ];
  for (const c of cases) {
    const r = await run(c.cmd);
    tt.not(r.code, 0, `${c.what}: refused`);
    tt.match(r.stderr, c.error, `${c.what}: ${c.error.source}`);
  }
  const fine = await run(`touch ${q(`${M}/inner space.txt`)} && ls ${q(M)}`);
  tt.equal(fine.stdout, 'inner space.txt\nok.txt\n', 'a space inside a name is fine; nothing else was created');
  await waitUploadsDone(M, 60_000);
  const stored = (await admin.listItems(folder._id)).map((i) => i.name).sort();
  tt.same(stored, ['inner space.txt', 'ok.txt'], 'Girder holds only the two storable names');
  tt.ok(m.process.exitCode === null, 'the daemon runs');
});

t.test('huge offsets: reads past the end give 0 bytes, writes near 2^53 give EFBIG, nothing changes', async (tt) => {
  const { folder, m } = await setup(tt, 'offsets');
  tt.teardown(() => m.cleanup());
  const M = m.mountpoint;
  const small = Buffer.from('small\n');
  const original = await admin.uploadBytes({ type: 'folder', id: folder._id }, 'small.txt', small);

  for (const exp of [40, 53, 60]) {
    const r = await run(`dd if=${q(`${M}/small.txt`)} bs=1 skip=$((2**${exp})) count=16 status=none | wc -c`);
    tt.equal(r.stdout.trim(), '0', `a read at 2^${exp}: 0 bytes ${r.stderr}`);
  }
  const tail = await run(`dd if=${q(`${M}/small.txt`)} bs=1 skip=3 count=100 status=none`);
  tt.equal(tail.stdout, 'll\n', 'a read across the end stops at the end');

  const near = await run(`dd if=/dev/zero of=${q(`${M}/small.txt`)} bs=1 count=1 seek=$((2**53 - 10)) conv=notrunc status=none`);
  tt.not(near.code, 0, 'a write at 2^53 - 10 fails');
  tt.match(near.stderr, /File too large/, 'with EFBIG');
  const beyond = await run(`dd if=/dev/zero of=${q(`${M}/huge.bin`)} bs=1 count=1 seek=$((2**53 + 1000)) status=none`);
  tt.not(beyond.code, 0, 'a write past 2^53 fails');
  tt.match(beyond.stderr, /File too large/, 'with EFBIG');
  const grow = await run(`truncate -s $((2**53 + 4096)) ${q(`${M}/small.txt`)}`);
  tt.not(grow.code, 0, 'truncate past 2^53 fails');
  tt.match(grow.stderr, /File too large|Invalid argument/, `with EFBIG or EINVAL (${grow.stderr.trim()})`);

  tt.equal((await run(`cat ${q(`${M}/small.txt`)}`)).stdout, 'small\n', 'the file reads as before');
  await waitUploadsDone(M, 60_000);
  const now = await fileOf(admin, folder._id, 'small.txt');
  tt.equal(now?._id, original._id, 'the same Girder file');
  tt.equal(now?.sha512, sha512(small), 'with the same bytes');
  const huge = await fileOf(admin, folder._id, 'huge.bin');
  tt.ok(huge === undefined || huge.size === 0, `huge.bin: absent or empty on the server (${huge?.size})`);
  tt.ok(m.process.exitCode === null, 'the daemon runs');
});
