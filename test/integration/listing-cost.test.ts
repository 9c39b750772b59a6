// Issues 2 and 13, "Tests count HTTP requests": a counting proxy between the mount and Girder shows
// the exact cost of listings, with and without the listing plugin: a cold `ls -lR` of N items in F
// folders, the same again after the TTL (folder and item pages only, nothing per item), nothing
// within the TTL, a `cat` of every file (one download each), a `cp -r` of new small files (one
// request per file and per folder); and that reading one block of a file
// is one or two ranged GETs, and a sequential read streams a big file in a few long GETs, closed
// when the reader seeks away or closes the file.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { eachLimit } from '../../src/vfs/each-limit.js';
import { CountingProxy, type ProxiedRequest } from '../helpers/counting-proxy.js';
import { rest, type Rest } from '../helpers/girder-rest.js';
import { startGirder } from '../helpers/girder-server.js';
import { run, shellQuote as q, startMount, type RunResult } from '../helpers/mount.js';
import { waitUploadsDone } from '../helpers/mount-status.js';
import { sleep, waitFor } from '../helpers/wait.js';

const FOLDERS = 8;
const ITEMS_PER_FOLDER = 50;
const SEED_IN_FLIGHT = 8;
const NEW_FOLDERS = 3;
const NEW_FILES_PER_FOLDER = 40;
const MiB = 1024 * 1024;

function ran(r: RunResult, what: string): string {
  if (r.code === 0) return what;
  return `${what}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstderr: ${r.stderr.slice(0, 2000)}`;
}

/** One small file as a new item of the same name: a single POST /file whose body completes it. */
async function smallFile(admin: Rest, folderId: string, name: string): Promise<void> {
  const data = Buffer.from(`${name}\n`);
  const doc = await admin.post<{ _modelType?: string }>('/file', { parentType: 'folder', parentId: folderId, name, size: data.length }, data);
  if (doc._modelType !== 'file') throw new Error(`POST /file for ${name} did not finish the upload: ${JSON.stringify(doc)}`);
}

/** Waits until the proxy has seen no request for `quietMs` and none is in flight. */
async function quiet(proxy: CountingProxy, quietMs = 1000): Promise<void> {
  await waitFor(
    async () => {
      const before = proxy.mark();
      await sleep(quietMs);
      return proxy.mark() === before && proxy.inFlight() === 0;
    },
    { timeoutMs: 60_000, intervalMs: 0, what: 'the mount to stop sending requests' },
  );
}

/** How many of `requests` match `pattern` (e.g. `POST /file`). */
function countOf(requests: readonly ProxiedRequest[], pattern: string): number {
  return requests.filter((r) => r.pattern === pattern).length;
}

function limitOf(r: ProxiedRequest): number {
  return Number(new URLSearchParams(r.query).get('limit') ?? 50);
}

for (const plugin of [false, true]) {
  const config = plugin ? 'with the listing plugin' : 'without the listing plugin';
  t.test(`request counts of listings and small reads, ${config}`, { timeout: 600_000 }, async (t) => {
    const server = await startGirder({ listingPlugin: plugin });
    t.teardown(() => server.stop());
    const admin = rest(server, 'admin');
    const root = await admin.createFolder(server.info.folders.adminPrivate, `listing-cost-${process.pid}`);
    const folderIds: string[] = [];
    await eachLimit([...Array(FOLDERS).keys()], SEED_IN_FLIGHT, async (i) => {
      folderIds[i] = (await admin.createFolder(root._id, `folder-${i}`))._id;
    });
    const jobs = folderIds.flatMap((id) => Array.from({ length: ITEMS_PER_FOLDER }, (_, j) => ({ id, name: `item-${String(j).padStart(4, '0')}.txt` })));
    await eachLimit(jobs, SEED_IN_FLIGHT, ({ id, name }) => smallFile(admin, id, name));
    const items = FOLDERS * ITEMS_PER_FOLDER;
    const folders = FOLDERS + 1; // the mounted folder and its sub-folders

    const proxy = await CountingProxy.start({ target: server.info.apiUrl });
    t.teardown(() => proxy.close());
    /** A fresh mount of the tree through the proxy, and a shell in it. */
    const mountWith = async (ttlS: number): Promise<(cmd: string) => Promise<RunResult>> => {
      const mount = await startMount({ server: { ...server.info, apiUrl: proxy.apiUrl }, folderId: root._id, args: ['--attr-ttl', String(ttlS)] });
      t.teardown(() => mount.cleanup());
      await quiet(proxy);
      return (cmd) => run(`cd ${q(mount.mountpoint)} && ${cmd}`, { timeoutMs: 600_000 });
    };
    /** The requests since `mark`, checked to be only listing pages of large size, then counted by kind. */
    const listingsSince = (t: Test, mark: number): { pages: number; fileLists: number; other: number } => {
      const made = proxy.since(mark);
      const pages = made.filter((r) => r.pattern === 'GET /folder' || r.pattern === 'GET /item' || r.pattern === 'GET /folder/{id}/listing');
      const fileLists = made.filter((r) => r.pattern === 'GET /item/{id}/files');
      t.same(pages.filter((r) => limitOf(r) < 1000).map((r) => r.query), [], 'listings ask for large pages');
      t.equal(made.filter((r) => r.status !== 200).length, 0, 'every request succeeded');
      return { pages: pages.length, fileLists: fileLists.length, other: made.length - pages.length - fileLists.length };
    };
    const pagesPerFolder = plugin ? 1 : 2;

    t.test(`cold ls -lR: ${plugin ? 'one listing page per folder, nothing per item' : 'a folder and an item page per folder, one file list per item'}`, async (t) => {
      const inMount = await mountWith(900);
      let mark = proxy.mark();
      const ls = await inMount('ls -lR');
      t.equal(ls.code, 0, ran(ls, 'ls -lR succeeds'));
      t.equal((ls.stdout.match(/^-.* item-\d{4}\.txt$/gm) ?? []).length, items, 'it lists every item as a file');
      await quiet(proxy);
      const cold = listingsSince(t, mark);
      const counts = `requests made:\n${proxy.describe(mark)}`;
      t.same(cold, { pages: pagesPerFolder * folders, fileLists: plugin ? 0 : items, other: 0 },
        `${pagesPerFolder} x ${folders} folders${plugin ? '' : ` + ${items} items`}\n${counts}`);

      mark = proxy.mark();
      for (const cmd of ['ls -lR', 'find .', 'du -b .']) {
        const r = await inMount(`${cmd} > /dev/null`);
        t.equal(r.code, 0, ran(r, `${cmd} succeeds`));
      }
      await quiet(proxy);
      t.equal(proxy.mark() - mark, 0, `ls -lR, find and du within the TTL: no request\n${proxy.describe(mark)}`);

      mark = proxy.mark();
      const cat = await inMount('find . -type f -print0 | xargs -0 cat | wc -l');
      t.equal(cat.stdout.trim(), String(items), ran(cat, 'cat reads every file'));
      await quiet(proxy);
      const made = proxy.since(mark);
      const downloads = made.filter((r) => r.pattern === 'GET /file/{id}/download');
      t.equal(downloads.length, items, `cat of every file: one download each (${items})\n${proxy.describe(mark)}`);
      t.equal(new Set(downloads.map((r) => r.path)).size, items, 'no file downloaded twice');
      t.equal(made.length - downloads.length, 0, 'and no other request while the listings are fresh');
    });

    t.test('ls -lR again after the TTL: the folder and item pages only, nothing per item', async (t) => {
      const ttlS = 4;
      const inMount = await mountWith(ttlS);
      const first = await inMount('ls -lR > /dev/null');
      t.equal(first.code, 0, ran(first, 'the first ls -lR'));
      await quiet(proxy);
      await sleep((ttlS + 1) * 1000);
      const mark = proxy.mark();
      const again = await inMount('ls -lR > /dev/null');
      t.equal(again.code, 0, ran(again, 'ls -lR after the TTL'));
      await quiet(proxy);
      // with the plugin too: Girder's own pages send no file again, the plugin's would send them all
      t.same(listingsSince(t, mark), { pages: 2 * folders, fileLists: 0, other: 0 },
        `2 x ${folders} folders, 0 per item\n${proxy.describe(mark)}`);
    });

    t.test(`many new items in a folder after the TTL: ${plugin ? 'the plugin lists it once more' : 'one file list per new item'}`, async (t) => {
      const ttlS = 4;
      const inMount = await mountWith(ttlS);
      const first = await inMount('ls -lR > /dev/null');
      t.equal(first.code, 0, ran(first, 'the first ls -lR'));
      await quiet(proxy);
      const added = 20; // more than the file lists the mount fetches at once
      await eachLimit([...Array(added).keys()], SEED_IN_FLIGHT, (i) => smallFile(admin, folderIds[0]!, `new-${i}.txt`));
      await sleep((ttlS + 1) * 1000);
      const mark = proxy.mark();
      const again = await inMount('ls -lR');
      t.equal(again.code, 0, ran(again, 'ls -lR after the TTL'));
      t.equal((again.stdout.match(/^-.* new-\d+\.txt$/gm) ?? []).length, added, 'the new files are listed');
      await quiet(proxy);
      t.same(listingsSince(t, mark), { pages: 2 * folders + (plugin ? 1 : 0), fileLists: plugin ? 0 : added, other: 0 },
        `2 x ${folders} folders${plugin ? ' + 1 plugin page' : ` + ${added} new items`}\n${proxy.describe(mark)}`);
    });

    // Last: it adds folders to the tree the tests above count.
    t.test('cp -r of new small files: one POST /file each, one POST /folder per folder', async (t) => {
      const mount = await startMount({ server: { ...server.info, apiUrl: proxy.apiUrl }, folderId: root._id, args: ['--attr-ttl', '900'] });
      t.teardown(() => mount.cleanup());
      const local = await mkdtemp(path.join(os.tmpdir(), 'listing-cost-cp-'));
      t.teardown(() => rm(local, { recursive: true, force: true }));
      const contents = new Map<string, Buffer>();
      for (let d = 0; d < NEW_FOLDERS; d++) {
        await mkdir(path.join(local, 'new', `d${d}`), { recursive: true });
        for (let f = 0; f < NEW_FILES_PER_FOLDER; f++) {
          const rel = `d${d}/f${f}.bin`;
          const bytes = randomBytes(1 + ((d * 7919 + f * 104_729) % (64 * 1024)));
          contents.set(rel, bytes);
          await writeFile(path.join(local, 'new', rel), bytes);
        }
      }
      const listed = await run(`ls ${q(mount.mountpoint)} > /dev/null`);
      t.equal(listed.code, 0, ran(listed, 'ls of the mount root'));
      await quiet(proxy);
      const mark = proxy.mark();
      const cp = await run(`cp -r ${q(path.join(local, 'new'))} ${q(mount.mountpoint)}/`, { timeoutMs: 300_000 });
      t.equal(cp.code, 0, ran(cp, 'cp -r succeeds'));
      await waitUploadsDone(mount.mountpoint);
      await quiet(proxy);
      const made = proxy.since(mark);
      const files = contents.size;
      t.same(
        { folders: countOf(made, 'POST /folder'), files: countOf(made, 'POST /file'), other: made.length - countOf(made, 'POST /folder') - countOf(made, 'POST /file') },
        { folders: NEW_FOLDERS + 1, files, other: 0 },
        `${NEW_FOLDERS + 1} folders and ${files} files: one request each\n${proxy.describe(mark)}`,
      );
      t.equal(made.filter((r) => r.status !== 200).length, 0, 'every request succeeded');
      const top = (await admin.listFolders(root._id)).find((f) => f.name === 'new');
      if (top === undefined) return t.fail('the new folder is on the server');
      for (const sub of await admin.listFolders(top._id)) {
        for (const item of await admin.listItems(sub._id)) {
          const [file] = await admin.listFiles(item._id);
          const want = contents.get(`${sub.name}/${item.name}`);
          if (file === undefined || want === undefined) return t.fail(`${sub.name}/${item.name}: an expected file`);
          if (!(await admin.download(file._id)).equals(want)) return t.fail(`${sub.name}/${item.name}: the bytes copied`);
          contents.delete(`${sub.name}/${item.name}`);
        }
      }
      t.same([...contents.keys()], [], 'every file is on the server with its bytes');

      // rsync -a writes each file under a temp name, sets its times, renames it into place.
      const rsyncMark = proxy.mark();
      const rsync = await run(`rsync -a ${q(path.join(local, 'new'))}/ ${q(mount.mountpoint)}/synced/`, { timeoutMs: 300_000 });
      t.equal(rsync.code, 0, ran(rsync, 'rsync -a succeeds'));
      await waitUploadsDone(mount.mountpoint);
      await quiet(proxy);
      const synced = proxy.since(rsyncMark);
      t.same(
        { folders: countOf(synced, 'POST /folder'), files: countOf(synced, 'POST /file'), times: countOf(synced, 'PUT /item/{id}/metadata'), other: synced.length - countOf(synced, 'POST /folder') - countOf(synced, 'POST /file') - countOf(synced, 'PUT /item/{id}/metadata') },
        { folders: NEW_FOLDERS + 1, files, times: files, other: 0 },
        `rsync -a: one POST /file and one metadata update (the mtime) per file\n${proxy.describe(rsyncMark)}`,
      );
    });
  });
}

t.test('request counts of reads through the mount', { timeout: 600_000 }, async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());
  const admin = rest(server, 'admin');
  const root = await admin.createFolder(server.info.folders.adminPrivate, `read-cost-${process.pid}`);
  const folder = await admin.createFolder(root._id, 'folder-00');
  const big = Buffer.alloc(4 * MiB);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) % 256;
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'big.bin', big);
  // files for the streamed reads
  const streamed = randomBytes(128 * MiB);
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'streamed.bin', streamed);
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'head.bin', randomBytes(32 * MiB));
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'seek.bin', randomBytes(32 * MiB));

  const proxy = await CountingProxy.start({ target: server.info.apiUrl });
  t.teardown(() => proxy.close());
  const mount = await startMount({ server: { ...server.info, apiUrl: proxy.apiUrl }, folderId: root._id, args: ['--attr-ttl', '900'] });
  t.teardown(() => mount.cleanup());
  const inMount = (cmd: string): Promise<RunResult> => run(`cd ${q(mount.mountpoint)} && ${cmd}`, { timeoutMs: 600_000 });
  const listed = await inMount('ls -lR > /dev/null');
  t.equal(listed.code, 0, ran(listed, 'ls -lR'));
  await quiet(proxy);

  t.test('dd bs=4096 count=1 of a file: one or two ranged GETs', async (t) => {
    const mark = proxy.mark();
    const dd = await inMount('dd if=folder-00/big.bin bs=4096 count=1 status=none | od -An -tx1 | tr -d " \\n"');
    t.equal(dd.code, 0, ran(dd, 'dd succeeds'));
    t.equal(dd.stdout, big.subarray(0, 4096).toString('hex'), 'the first block');
    await quiet(proxy);
    const made = proxy.since(mark);
    const downloads = made.filter((r) => r.pattern === 'GET /file/{id}/download');
    const counts = `requests made:\n${proxy.describe(mark)}`;
    t.ok(downloads.length >= 1 && downloads.length <= 2, `1 or 2 download requests (made ${downloads.length})\n${counts}`);
    t.ok(downloads.every((r) => r.range !== undefined && /^bytes=\d+-\d+$/.test(r.range)), `each with a Range header: ${downloads.map((r) => r.range).join(', ')}`);
    t.equal(made.length - downloads.length, 0, `nothing else\n${counts}`);
  });

  const downloadsSince = (mark: number): ProxiedRequest[] => proxy.since(mark).filter((r) => r.pattern === 'GET /file/{id}/download');
  const openDownloads = (): number => proxy.log.filter((r) => r.pattern === 'GET /file/{id}/download' && r.finishedAt === undefined).length;

  t.test('cat of a 128 MiB file: a few long GETs, not one per 8 MiB', async (t) => {
    const mark = proxy.mark();
    const sum = await inMount('cat folder-00/streamed.bin | sha256sum');
    t.equal(sum.code, 0, ran(sum, 'cat succeeds'));
    t.equal(sum.stdout.split(' ')[0], createHash('sha256').update(streamed).digest('hex'), 'the same bytes');
    await quiet(proxy);
    const downloads = downloadsSince(mark);
    const ranges = downloads.map((r) => r.range).join(', ');
    // range requests of at most 8 MiB would take 16, plus the ones made while the window grows
    t.ok(downloads.length <= 12, `at most 12 GETs for 128 MiB (made ${downloads.length}: ${ranges})`);
    const longest = Math.max(...downloads.map(rangeLength));
    t.ok(longest >= 32 * MiB, `GETs grow long (the longest asked for ${longest} bytes)`);
    t.equal(downloads.filter((r) => r.status !== 206).length, 0, 'every GET answered 206');
  });

  t.test('head -c of a big file: its stream is closed with the file', async (t) => {
    const mark = proxy.mark();
    const head = await inMount('head -c 5000000 folder-00/head.bin | wc -c');
    t.equal(head.stdout.trim(), '5000000', ran(head, 'head reads 5 MB'));
    t.ok(downloadsSince(mark).length >= 1);
    await waitFor(() => openDownloads() === 0, { timeoutMs: 5_000, intervalMs: 50, what: 'no download left open' });
    t.pass('no download left open');
  });

  t.test('a seek away closes the stream while the file stays open', async (t) => {
    const mark = proxy.mark();
    const ready = `${mount.mountpoint}.ready-${process.pid}`;
    // 8 MiB in order, then one block far away, then hold the file open for a while
    const reader = inMount(
      `exec 3< folder-00/seek.bin && dd bs=128K count=64 <&3 > /dev/null 2>&1 && dd bs=4K skip=4000 count=1 <&3 > /dev/null 2>&1 && touch ${q(ready)} && sleep 8 && exec 3<&-`,
    );
    t.teardown(() => run(`rm -f ${q(ready)}`));
    await waitFor(() => run(`test -e ${q(ready)}`).then((r) => r.code === 0), { timeoutMs: 60_000, intervalMs: 50, what: 'the reader to seek' });
    // a range request asks for 8 MiB at most; the stream's second GET for 16 MiB
    const streamedGets = downloadsSince(mark).filter((r) => rangeLength(r) >= 16 * MiB);
    t.ok(streamedGets.length >= 1, `the sequential part was streamed (${downloadsSince(mark).map((r) => r.range).join(', ')})`);
    await waitFor(() => openDownloads() === 0, { timeoutMs: 4_000, intervalMs: 50, what: 'the stream to close after the seek' });
    t.pass('no download open while the file still is');
    const r = await reader;
    t.equal(r.code, 0, ran(r, 'the reader succeeds'));
  });
});

function rangeLength(r: ProxiedRequest): number {
  const m = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
  return m === null ? 0 : Number(m[2]) - Number(m[1]) + 1;
}
