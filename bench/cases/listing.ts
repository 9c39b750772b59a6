// `ls -lR` and `find` over a seeded tree of single-file items in many folders, each on a fresh mount
// (nothing cached) that talks to Girder through a counting proxy, vs curl fetching the same
// listings through the same proxy: the listing pages only (GET /folder, GET /item, each page once,
// one after the other), and every request the mount made, repeats included (the listing pages plus
// one GET /item/{id}/files per item), 16 in flight as the mount does.
import path from 'node:path';
import type { ProxiedRequest } from '../../test/helpers/counting-proxy.js';
import type { BenchContext } from '../lib/context.js';
import { curlReplay } from '../lib/curl.js';
import { Measured } from '../lib/measured.js';
import { ProxiedServer } from '../lib/proxied-server.js';
import { RequestTally } from '../lib/requests.js';
import { countListed, seedTree } from '../lib/seed.js';
import type { Row } from '../lib/report.js';
import { median } from '../lib/stats.js';

const SEED_IN_FLIGHT = 8;
/** What the mount keeps in flight for the per-item file lists (src/vfs/tree.ts). */
const CURL_PARALLEL = 16;

function isListingPage(r: ProxiedRequest): boolean {
  return r.pattern === 'GET /folder' || r.pattern === 'GET /item';
}

export async function listing(ctx: BenchContext): Promise<void> {
  const { items, folders } = ctx.opts;
  const server = await ProxiedServer.start(ctx); // its own server: 10,000 items would slow every other case on mongomock
  const { started } = server;
  ctx.log(`seeding ${items} items in ${folders} folders (${SEED_IN_FLIGHT} requests in flight)`);
  const tree = await seedTree(started.admin, started.server.info.folders.adminPrivate, 'bench-tree', folders, items, SEED_IN_FLIGHT);
  ctx.note(`listing case: seeded ${items} single-file items in ${folders} folders in ${tree.seconds.toFixed(0)} s (${(items / tree.seconds).toFixed(0)} items/s)`);

  const ls = new Measured();
  const find = new Measured();
  // the tree's root and its folders
  const lsTally = new RequestTally(folders + 1, items);
  const findTally = new RequestTally(folders + 1, items);
  const curlPages: number[] = [];
  const curlSame: number[] = [];
  const pageRequests: number[] = [];
  let breakdown = '';
  const what = `${items} items / ${folders} folders`;
  const lsRow = (refName: string, ref: number[]): Row => ls.row({ name: `ls -lR, ${what}`, unit: 's', refName, ref, target: { kind: 'max', ratio: 1.5 } });
  // the rows go in first and fill up as runs finish, so an interrupted run still reports them
  const lsVsPages = lsRow('curl, listing pages once each, sequential', curlPages);
  const lsVsSame = lsRow(`curl, the mount's requests, ${CURL_PARALLEL} in flight`, curlSame);
  const findRow = (): Row => find.row({ name: `find, ${what}`, unit: 's', refName: 'curl, listing pages once each, sequential', ref: curlPages });
  const findVsPages = findRow();
  for (const row of [lsVsPages, lsVsSame, findVsPages]) ctx.addRow(row);
  const update = (): void => {
    Object.assign(lsVsPages, lsRow(`curl, ${median(pageRequests)} listing pages once each, sequential`, curlPages), lsTally.fields());
    Object.assign(lsVsSame, lsRow(`curl, the mount's ${lsTally.fields().requests} requests, ${CURL_PARALLEL} in flight`, curlSame), lsTally.fields());
    if (find.samples.length > 0) Object.assign(findVsPages, findRow(), findTally.fields());
  };
  for (const run of ctx.runs(ctx.opts.listingRuns)) {
    // ls -lR on a fresh mount
    let m = await server.mount(tree.rootId, `listing-ls-${run.run}`);
    const lsOut = path.join(ctx.work, 'ls-lR.txt');
    await server.step(ls.samples, async () => (await m.timed(`ls -lR "$M" > "${lsOut}"`)).seconds, lsTally, { measured: ls, mount: m });
    const made = lsTally.last;
    breakdown = lsTally.breakdown;
    const listed = await countListed(lsOut, 'ls');
    if (listed !== items) throw new Error(`ls -lR listed ${listed} files, expected ${items}`);
    await m.release();

    // the same listings with curl, through the same proxy
    // each listing page once (the mount may fetch a folder's pages again when its TTL ran out)
    const pages = [...new Map(made.filter(isListingPage).map((r) => [`${r.path}?${r.query}`, r])).values()];
    pageRequests.push(pages.length);
    curlPages.push(await curlReplay(server.curl, pages, 1, 'curl-pages.conf'));
    curlSame.push(await curlReplay(server.curl, made.filter((r) => r.method === 'GET'), CURL_PARALLEL, 'curl-same.conf'));
    update();
    ctx.log(`listing run ${run.run}: ls -lR ${ls.samples.at(-1)?.toFixed(1)} s (${made.length} requests: ${breakdown}), curl pages ${curlPages.at(-1)?.toFixed(1)} s, curl same requests ${curlSame.at(-1)?.toFixed(1)} s`);

    // find on another fresh mount
    m = await server.mount(tree.rootId, `listing-find-${run.run}`);
    const findOut = path.join(ctx.work, 'find.txt');
    await server.step(find.samples, async () => (await m.timed(`find "$M" > "${findOut}"`)).seconds, findTally, { measured: find, mount: m });
    const found = await countListed(findOut, 'find');
    if (found !== items) throw new Error(`find found ${found} files, expected ${items}`);
    await m.release(run.last);
    update();
    ctx.log(`listing run ${run.run}: find ${find.samples.at(-1)?.toFixed(1)} s (${findTally.last.length} requests)`);
  }
  ctx.note(`listing case: ${items} items in ${folders} folders; requests of one ls -lR: ${breakdown}`);
}
