// Issue 2, "Tests count HTTP requests": a counting proxy between the mount and Girder shows what
// `ls -lR` of 2,000 items in 20 folders costs, that cached listings cost nothing within the TTL,
// that reading one block of a file is one or two ranged GETs, not a download, and that a sequential
// read streams a big file in a few long GETs, closed when the reader seeks away or closes the file.
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { CountingProxy, type ProxiedRequest } from '../helpers/counting-proxy.js';
import { rest, type Rest } from '../helpers/girder-rest.js';
import { startGirder } from '../helpers/girder-server.js';
import { run, shellQuote as q, startMount, type RunResult } from '../helpers/mount.js';
import { sleep, waitFor } from '../helpers/wait.js';

const FOLDERS = 20;
const ITEMS_PER_FOLDER = 100;
const SEED_IN_FLIGHT = 8;
/** Requests `ls -lR` may make beyond the formula (none are expected today). */
const SMALL_CONSTANT = 3;
const MiB = 1024 * 1024;

function ran(r: RunResult, what: string): string {
  if (r.code === 0) return what;
  return `${what}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstderr: ${r.stderr.slice(0, 2000)}`;
}

/** Runs `work` over `inputs`, at most `limit` at a time. */
async function eachLimit<T>(inputs: T[], limit: number, work: (input: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < inputs.length) await work(inputs[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, inputs.length) }, worker));
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

function limitOf(r: ProxiedRequest): number {
  return Number(new URLSearchParams(r.query).get('limit') ?? 50);
}

t.test('request counts of listings and reads through the mount', { timeout: 800_000 }, async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());
  const admin = rest(server, 'admin');

  // ---- seed 2,000 single-file items in 20 folders, plus one 4 MiB file to read a block of ----
  const seedStart = Date.now();
  const root = await admin.createFolder(server.info.folders.adminPrivate, `listing-cost-${process.pid}`);
  const folderIds: string[] = [];
  await eachLimit([...Array(FOLDERS).keys()], SEED_IN_FLIGHT, async (i) => {
    folderIds[i] = (await admin.createFolder(root._id, `folder-${String(i).padStart(2, '0')}`))._id;
  });
  const jobs = folderIds.flatMap((id) => Array.from({ length: ITEMS_PER_FOLDER }, (_, j) => ({ id, name: `item-${String(j).padStart(4, '0')}.txt` })));
  await eachLimit(jobs, SEED_IN_FLIGHT, ({ id, name }) => smallFile(admin, id, name));
  const big = Buffer.alloc(4 * MiB);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) % 256;
  await admin.uploadBytes({ type: 'folder', id: folderIds[0] as string }, 'big.bin', big);
  // files for the streamed reads
  const streamed = randomBytes(128 * MiB);
  await admin.uploadBytes({ type: 'folder', id: folderIds[0] as string }, 'streamed.bin', streamed);
  await admin.uploadBytes({ type: 'folder', id: folderIds[0] as string }, 'head.bin', randomBytes(32 * MiB));
  await admin.uploadBytes({ type: 'folder', id: folderIds[0] as string }, 'seek.bin', randomBytes(32 * MiB));
  const seconds = (Date.now() - seedStart) / 1000;
  const items = FOLDERS * ITEMS_PER_FOLDER + 4;
  let seeded = 0;
  for (const id of folderIds) seeded += (await admin.listItems(id)).length;
  t.equal(seeded, items, `seeded ${items} items in ${FOLDERS} folders`);
  t.comment(`seeding took ${seconds.toFixed(1)} s`);

  // ---- mount through the counting proxy ----
  const proxy = await CountingProxy.start({ target: server.info.apiUrl });
  t.teardown(() => proxy.close());
  // a TTL far longer than the slowest first `ls -lR`, so the repeats below are within it
  const mount = await startMount({ server: { ...server.info, apiUrl: proxy.apiUrl }, folderId: root._id, args: ['--attr-ttl', '900'] });
  t.teardown(() => mount.cleanup());
  const inMount = (cmd: string): Promise<RunResult> => run(`cd ${q(mount.mountpoint)} && ${cmd}`, { timeoutMs: 600_000 });
  await quiet(proxy);
  t.comment(`mounting took ${proxy.mark()} requests:\n${proxy.describe()}`);

  const folders = FOLDERS + 1; // the mounted folder and its sub-folders

  t.test('ls -lR: one folder page and one item page per folder, one file list per item', async (t) => {
    const mark = proxy.mark();
    const ls = await inMount('ls -lR');
    t.equal(ls.code, 0, ran(ls, 'ls -lR succeeds'));
    t.equal((ls.stdout.match(/^-.* item-\d{4}\.txt$/gm) ?? []).length, FOLDERS * ITEMS_PER_FOLDER, 'it lists every item as a file');
    await quiet(proxy);
    const made = proxy.since(mark);
    const listings = made.filter((r) => r.pattern === 'GET /folder' || r.pattern === 'GET /item');
    const fileLists = made.filter((r) => r.pattern === 'GET /item/{id}/files');
    const counts = `requests made:\n${proxy.describe(mark)}`;
    t.equal(proxy.count('GET /folder', mark), folders, `one GET /folder page per folder (${folders})\n${counts}`);
    t.equal(proxy.count('GET /item', mark), folders, `one GET /item page per folder (${folders})`);
    t.equal(fileLists.length, items, `one GET /item/{id}/files per item (${items})`);
    t.equal(new Set(fileLists.map((r) => r.path)).size, items, 'no item has its files listed twice');
    t.same(listings.filter((r) => !(limitOf(r) === 0 || limitOf(r) >= 1000)).map((r) => r.query), [], 'listings ask for large pages');
    const others = made.length - listings.length - fileLists.length;
    t.ok(others <= SMALL_CONSTANT, `at most ${SMALL_CONSTANT} other requests (made ${others})\n${counts}`);
    t.equal(made.length, 2 * folders + items + others, `total: 2 x ${folders} folders + ${items} items + ${others}`);
    t.equal(made.filter((r) => r.status !== 200).length, 0, 'every request succeeded');
  });

  t.test('ls -lR, find and du -b again within the TTL cost no request', async (t) => {
    const mark = proxy.mark();
    for (const cmd of ['ls -lR', 'find .', 'du -b .']) {
      const r = await inMount(`${cmd} > /dev/null`);
      t.equal(r.code, 0, ran(r, `${cmd} succeeds`));
    }
    await quiet(proxy);
    t.equal(proxy.mark() - mark, 0, `no request\n${proxy.describe(mark)}`);
  });

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
