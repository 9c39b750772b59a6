// Girder away, and Girder silent, between a real mount and a real Girder (the fault proxy in
// between): what is cached keeps being served while the server is away, what is not fails at once,
// and an operation the server does not answer fails within --timeout plus the documented 2 s.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { faultRig, timed, type Timed } from '../helpers/fault-rig.js';
import type { RawFolder } from '../helpers/girder-rest.js';
import { cliPath, run, shellQuote as q, startMount, type Mount } from '../helpers/mount.js';
import { mountStatus, waitUploadsDone } from '../helpers/mount-status.js';
import { sha512, writeRandomFile } from '../helpers/random-file.js';
import { sha512sumOf, waitForServerFile } from '../helpers/server-files.js';
import { sleep, waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
/** How long the server stays away in the outage test, checks running all along. */
const OUTAGE_MS = 25_000;
/** An operation the server does not answer fails within --timeout plus this (OP_GRACE_MS in src/daemon.ts). */
const GRACE_MS = 2_000;

const { info, admin, proxy, viaProxy, work } = await faultRig(t, 'girder-offline');


function sh(cmd: string, timeoutMs = 120_000): Promise<Timed> {
  return timed(cmd, timeoutMs);
}

let seq = 0;
async function freshFolder(name: string): Promise<RawFolder> {
  return admin.createFolder(info.folders.adminPrivate, `${name}-${process.pid}-${seq++}`);
}

async function mountOn(tt: { teardown(fn: () => unknown): void }, folderId: string, args: string[]): Promise<Mount> {
  const m = await startMount({ server: viaProxy, folderId, args });
  tt.teardown(() => m.cleanup());
  return m;
}

interface LogRecord {
  level: number;
  msg: string;
  op?: string;
  path?: string;
  err?: string;
  [key: string]: unknown;
}

/** The daemon's log records (JSON lines on stderr). */
function records(m: Mount): LogRecord[] {
  const out: LogRecord[] = [];
  for (const line of m.stderr().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogRecord);
    } catch {
      // a line cut by the log buffer's limit
    }
  }
  return out;
}

const WARN = 40;

t.test('Girder away for minutes: the cached tree stays readable and listable, the rest fails at once, new files wait', async (tt) => {
  const folder = await freshFolder('away');
  const sub = await admin.createFolder(folder._id, 'sub');
  const deep = await admin.createFolder(sub._id, 'deep');
  const drop = await admin.createFolder(folder._id, 'drop');
  const multi = await admin.createItem(folder._id, 'multi');
  const small = Buffer.from('a small file, cached before the outage\n');
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'a.txt', small);
  const bigSrc = path.join(work, 'big.bin');
  const bigSum = await writeRandomFile(bigSrc, 3 * MiB + 123);
  await admin.uploadFileFromDisk({ type: 'folder', id: folder._id }, 'big.bin', bigSrc);
  await admin.uploadBytes({ type: 'folder', id: sub._id }, 'inner.txt', Buffer.from('inner\n'));
  await admin.uploadBytes({ type: 'folder', id: deep._id }, 'd.txt', Buffer.from('deep\n'));
  await admin.uploadBytes({ type: 'item', id: multi._id }, 'm1.txt', Buffer.from('one\n'));
  await admin.uploadBytes({ type: 'item', id: multi._id }, 'm2.txt', Buffer.from('two\n'));
  await admin.uploadBytes({ type: 'folder', id: drop._id }, 'old.txt', Buffer.from('old\n'));
  // Over 1 MiB: never fetched ahead of the reads below (files-ahead.ts fetches only small files).
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'never-read.bin', Buffer.alloc(2 * MiB, 7));
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'doomed.txt', Buffer.from('removed while away\n'));

  const m = await mountOn(tt, folder._id, ['--attr-ttl', '1', '--timeout', '5', '--retries', '3', '--drain-timeout', '5']);
  const M = m.mountpoint;
  const cached = ['a.txt', 'big.bin', 'sub/inner.txt', 'sub/deep/d.txt', 'multi/m1.txt', 'multi/m2.txt', 'drop/old.txt'];
  const sums = new Map<string, string>();
  for (const f of cached) {
    const r = await sha512sumOf(path.join(M, f));
    tt.equal(r.code, 0, `${f} reads before the outage ${r.stderr}`);
    sums.set(f, r.sha512 ?? '');
  }
  tt.equal(sums.get('big.bin'), bigSum);
  const tree = `cd ${q(M)} && find . -printf '%y %s %TY-%Tm-%Td %TT %p\\n' | sort`;
  const before = await sh(tree);
  tt.equal(before.code, 0, before.stderr);
  tt.equal((await mountStatus(M)).server?.reachable, true, 'status: the server is reachable');

  await proxy.down();
  const downAt = Date.now();

  // Bytes never cached fail, and fast: no request is retried while the server is away.
  const uncached = await sh(`cat ${q(path.join(M, 'never-read.bin'))} > /dev/null`);
  tt.not(uncached.code, 0, 'uncached bytes: the read fails');
  tt.match(uncached.stderr, /Input\/output error/, 'with EIO');
  tt.ok(uncached.ms < 2_000, `at once (${uncached.ms} ms)`);
  tt.ok(records(m).some((r) => r.level === WARN && r.path === '/never-read.bin' && /unreachable|cannot reach|ECONNREFUSED/.test(String(r.err))),
    'the failed read is logged at warn with its path and why');

  const status = await mountStatus(M);
  tt.equal(status.server?.reachable, false, 'status --json: the server is unreachable');
  const since = Date.parse(status.server?.unreachableSince ?? '');
  tt.ok(since >= downAt - 1_000 && since <= Date.now(), `since the outage began (${status.server?.unreachableSince})`);
  const human = await sh(`${q(process.execPath)} ${q(cliPath())} status ${q(M)}`);
  tt.match(human.stdout, /server unreachable since \d{4}-/, `girder-mount status says so: ${human.stdout}`);

  // A new file in a folder whose listing expired during the outage: accepted from the last listing.
  await sleep(1_500);
  const created = await sh(`printf 'written while Girder was away\\n' > ${q(path.join(M, 'drop', 'new.txt'))}`);
  tt.equal(created.code, 0, `a new file is accepted while the server is away ${created.stderr}`);
  tt.ok(created.ms < 2_000, `at once (${created.ms} ms)`);
  tt.equal((await sh(`cat ${q(path.join(M, 'drop', 'new.txt'))}`)).stdout, 'written while Girder was away\n', 'and reads back');
  tt.match((await sh(`ls ${q(path.join(M, 'drop'))}`)).stdout, /new\.txt\n(.|\n)*old\.txt|old\.txt\n(.|\n)*new\.txt/, 'and is listed');

  // Changes that need the server fail with EIO, at once.
  for (const cmd of [`mkdir ${q(path.join(M, 'newdir'))}`, `mv ${q(path.join(M, 'a.txt'))} ${q(path.join(M, 'b.txt'))}`]) {
    const r = await sh(cmd);
    tt.not(r.code, 0, `${cmd.split(' ')[0]} fails while the server is away`);
    tt.match(r.stderr, /Input\/output error/, `${cmd.split(' ')[0]}: EIO`);
    tt.ok(r.ms < 2_000, `${cmd.split(' ')[0]}: at once (${r.ms} ms)`);
  }
  // A removal is written back as uploads are: gone from the mount at once, from Girder once it is back.
  const rm = await sh(`rm ${q(path.join(M, 'doomed.txt'))} && ls ${q(M)}`);
  tt.equal(rm.code, 0, `rm is accepted while the server is away ${rm.stderr}`);
  tt.ok(rm.ms < 2_000, `at once (${rm.ms} ms)`);
  tt.notMatch(rm.stdout, /doomed/, 'and the file is gone from the mount');
  const removedLocally = (line: string): boolean => line.endsWith(' ./drop/new.txt') || line.endsWith(' ./doomed.txt');

  // A file added on the server meanwhile (not through the proxy): seen once the server is back.
  await admin.uploadBytes({ type: 'folder', id: sub._id }, 'added-while-away.txt', Buffer.from('added\n'));

  let rounds = 0;
  const wanted = before.stdout.split('\n').filter(Boolean);
  while (Date.now() - downAt < OUTAGE_MS) {
    rounds++;
    await sleep(1_100); // every listing and attribute is past --attr-ttl again
    for (const f of cached) {
      const r = await sha512sumOf(path.join(M, f));
      tt.equal(r.sha512, sums.get(f), `round ${rounds}: ${f} reads byte-exact ${r.stderr}`);
    }
    const now = await sh(tree);
    tt.equal(now.code, 0, `round ${rounds}: find succeeds ${now.stderr}`);
    tt.same(now.stdout.split('\n').filter((l) => l !== '' && !removedLocally(l)), wanted.filter((l) => !removedLocally(l)),
      `round ${rounds}: find shows the tree as before (types, sizes, mtimes)`);
    const ls = await sh(`ls -lR ${q(M)} > /dev/null && stat -c '%s' ${q(path.join(M, 'big.bin'))}`);
    tt.equal(ls.code, 0, `round ${rounds}: ls -lR and stat succeed ${ls.stderr}`);
    tt.equal(ls.stdout.trim(), String(3 * MiB + 123), `round ${rounds}: stat shows the size`);
  }
  tt.ok(rounds >= 5, `${rounds} rounds of checks over ${Math.round((Date.now() - downAt) / 1000)} s with the server away`);
  tt.equal((await mountStatus(M)).server?.reachable, false, 'still shown unreachable');

  await proxy.up();
  const upAt = Date.now();
  await waitFor(async () => (await mountStatus(M)).server?.reachable === true, { timeoutMs: 20_000, what: 'the mount to find Girder back' });
  tt.comment(`the mount found Girder back ${Date.now() - upAt} ms after it was`);
  await waitFor(async () => /added-while-away\.txt/.test((await sh(`ls ${q(path.join(M, 'sub'))}`)).stdout), {
    timeoutMs: 10_000, what: 'the listing fetched again, with the file added meanwhile',
  });
  tt.pass('listings are fetched again once the server is back');
  const file = await waitForServerFile(admin, drop._id, 'new.txt', sha512(Buffer.from('written while Girder was away\n')), 180_000);
  tt.ok(file, 'the file written while away reached Girder');
  await waitUploadsDone(M, 60_000);
  tt.notOk((await admin.listItems(folder._id)).some((i) => i.name === 'doomed.txt'), 'the file removed while away is gone from Girder');
  tt.equal((await sha512sumOf(path.join(M, 'a.txt'))).sha512, sums.get('a.txt'), 'reads go on');

  const recs = records(m);
  tt.equal(recs.filter((r) => /^Girder is unreachable/.test(r.msg)).length, 1, 'one log line when it went away');
  tt.equal(recs.filter((r) => r.msg === 'Girder is reachable again').length, 1, 'one when it came back');
  const away = recs.find((r) => /^Girder is unreachable/.test(r.msg));
  const back = recs.find((r) => r.msg === 'Girder is reachable again');
  tt.equal(away?.level, WARN, 'the first at warn');
  tt.equal(back?.level, 30, 'the second at info');
  tt.ok(typeof back?.downMs === 'number' && (back.downMs as number) >= OUTAGE_MS - 2_000, `with how long it was away (${String(back?.downMs)} ms)`);
});

t.test('Girder silent: an operation fails within --timeout + 2 s, once, with one warn line naming its path', async (tt) => {
  const folder = await freshFolder('silent');
  const sub = await admin.createFolder(folder._id, 'sub');
  await admin.uploadBytes({ type: 'folder', id: sub._id }, 's.txt', Buffer.from('s'));
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'small.txt', Buffer.alloc(100_000, 1));
  const bigSrc = path.join(work, 'stream.bin');
  await writeRandomFile(bigSrc, 48 * MiB);
  await admin.uploadFileFromDisk({ type: 'folder', id: folder._id }, 'stream.bin', bigSrc);
  const download = /\/file\/[0-9a-f]{24}\/download/;
  const listingOfSub = new RegExp(`/folder(\\?.*parentId=${sub._id}|/${sub._id}/listing)`);

  for (const retries of ['0', '3']) {
    const m = await mountOn(tt, folder._id, ['--timeout', '5', '--retries', retries, '--attr-ttl', '60']);
    const M = m.mountpoint;
    tt.equal((await sh(`ls -l ${q(M)}`)).code, 0, 'the top listing is cached');
    const warnsFor = (p: string): LogRecord[] => records(m).filter((r) => r.level === WARN && r.path === p);

    // a read the server does not answer
    const hang = proxy.on('GET', download, { kind: 'hang' }, Infinity);
    const cat = await sh(`cat ${q(path.join(M, 'small.txt'))} > /dev/null`);
    tt.not(cat.code, 0, `--retries ${retries}: a stalled read fails`);
    tt.match(cat.stderr, /Input\/output error/, 'with EIO');
    tt.ok(cat.ms >= 4_500 && cat.ms < 5_000 + GRACE_MS, `after --timeout, within --timeout + ${GRACE_MS} ms (${cat.ms} ms)`);
    await sleep(1_500); // a retry would have been sent by now
    tt.equal(hang.hits, 1, 'the request that got no answer was not sent again');
    tt.equal(warnsFor('/small.txt').length, 1, `one warn line with the path: ${JSON.stringify(warnsFor('/small.txt'))}`);
    tt.match(warnsFor('/small.txt')[0]?.err, /no answer .* within 5 s/, 'saying why');
    proxy.clear();

    // a listing the server does not answer
    const hangList = proxy.on('GET', listingOfSub, { kind: 'hang' }, Infinity);
    const ls = await sh(`ls ${q(path.join(M, 'sub'))}`);
    tt.not(ls.code, 0, `--retries ${retries}: a stalled listing fails`);
    tt.match(ls.stderr, /Input\/output error/, 'with EIO');
    tt.ok(ls.ms >= 4_500 && ls.ms < 5_000 + GRACE_MS, `after --timeout, within --timeout + ${GRACE_MS} ms (${ls.ms} ms)`);
    await sleep(1_500);
    tt.equal(hangList.hits, 1, 'the listing request was not sent again');
    tt.equal(warnsFor('/sub').length, 1, `one warn line with the path: ${JSON.stringify(warnsFor('/sub'))}`);
    proxy.clear();

    tt.equal(records(m).filter((r) => /^Girder is unreachable/.test(r.msg)).length, 0, 'a silent route is not an outage: the probe answered');
    tt.equal((await sh(`ls ${q(path.join(M, 'sub'))}`)).stdout, 's.txt\n', 'the listing works once answered');
    await m.cleanup();
  }

  // a sequential read that stalls past the part cached (read-ahead running: range requests and a stream)
  const m = await mountOn(tt, folder._id, ['--timeout', '5', '--retries', '0', '--attr-ttl', '60']);
  const M = m.mountpoint;
  const warm = await sh(`dd if=${q(path.join(M, 'stream.bin'))} of=/dev/null bs=1M count=4 status=none`);
  tt.equal(warm.code, 0, `the first 4 MiB read ${warm.stderr}`);
  proxy.on('GET', download, { kind: 'hang' }, Infinity);
  const cat = await sh(`cat ${q(path.join(M, 'stream.bin'))} > /dev/null`);
  tt.not(cat.code, 0, 'a stalled sequential read fails');
  tt.match(cat.stderr, /Input\/output error/, 'with EIO');
  tt.ok(cat.ms < 5_000 + GRACE_MS, `within --timeout + ${GRACE_MS} ms (${cat.ms} ms)`);
  await sleep(1_000);
  const warns = records(m).filter((r) => r.level === WARN);
  tt.ok(warns.length >= 1 && warns.every((r) => r.path === '/stream.bin'), `warn lines name the path: ${JSON.stringify(warns)}`);
  tt.comment(`${warns.length} warn line(s) for the stalled sequential read`);
});
