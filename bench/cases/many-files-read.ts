// The read side of many-files, on one seeded server (with or without the listing plugin): cold
// `ls -lR` of a fresh mount, `ls -lR` again after the TTL, `find -type f | xargs -P16 cat`, and
// `cp -r` out of a fresh mount; against curl making the minimal requests (the listing pages of
// every folder; each item's file list; one download per file) and `girder-client download`.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sleep } from '../../test/helpers/wait.js';
import type { BenchContext } from '../lib/context.js';
import { curlReplay, type CurlRequest } from '../lib/curl.js';
import { girderClient } from '../lib/girder-client.js';
import type { MountUnderTest } from '../lib/mount-under-test.js';
import { ProxiedServer } from '../lib/proxied-server.js';
import { RequestTally } from '../lib/requests.js';
import { countListed, seedTree, type SeededTree } from '../lib/seed.js';
import { MOUNT_ARGS, MountRows, PARALLEL, TTL_S, type ManyFilesTree } from './many-files-tree.js';

const SEED_IN_FLIGHT = 8;
/** Entries per listing page, as the mount asks for them (src/girder/rest-store.ts). */
const PAGE_SIZE = 5000;

function page(offset: number, extra: Record<string, string> = {}): string {
  return new URLSearchParams({ ...extra, limit: String(PAGE_SIZE), offset: String(offset), sort: '_id', sortdir: '1' }).toString();
}

/** Every page of `count` entries (at least one page, which may be empty). */
function pages(path: string, count: number, extra: Record<string, string>): CurlRequest[] {
  return Array.from({ length: Math.max(1, Math.ceil(count / PAGE_SIZE)) }, (_, i) => ({ path, query: page(i * PAGE_SIZE, extra) }));
}

/** The fewest requests that list the whole tree with Girder's own routes: each folder's sub-folder and item pages. */
function listingPages(tree: ManyFilesTree, seeded: SeededTree): CurlRequest[] {
  const inDir = (i: number): number => tree.layout.files.filter((f) => f.dir === i).length;
  return [
    ...pages('/folder', seeded.folderIds.length, { parentType: 'folder', parentId: seeded.rootId }),
    ...pages('/item', 0, { folderId: seeded.rootId }),
    ...seeded.folderIds.flatMap((id, i) => [...pages('/folder', 0, { parentType: 'folder', parentId: id }), ...pages('/item', inDir(i), { folderId: id })]),
  ];
}

/** `ls -lR` of the mount into a file, checked to list every file; its seconds. */
async function lsLR(ctx: BenchContext, m: MountUnderTest, tree: ManyFilesTree): Promise<number> {
  const out = path.join(ctx.work, 'many-ls-lR.txt');
  const { seconds } = await m.timed(`ls -lR "$M" > "${out}"`);
  const listed = await countListed(out, 'ls');
  if (listed !== tree.items) throw new Error(`ls -lR listed ${listed} files, expected ${tree.items}`);
  return seconds;
}

/** Seconds of `cmd`, which copies the tree to $W/`dir`; the copy must equal the local tree, then goes. */
async function copyOut(ctx: BenchContext, tree: ManyFilesTree, cmd: () => Promise<number>, dir: string): Promise<number> {
  const seconds = await cmd();
  await ctx.timed(`diff -r "$L" "$W/${dir}" && rm -r "$W/${dir}"`, { L: tree.local });
  return seconds;
}

/** The rows of the bytes (without the plugin only): the parallel read and `cp -r` out, and their references. */
function byteRows(ctx: BenchContext, tree: ManyFilesTree, downloads: number) {
  const curlDownloads: number[] = [];
  const gcDownload: number[] = [];
  return {
    curlDownloads,
    gcDownload,
    gcTally: new RequestTally(tree.folders, tree.items),
    read: new MountRows(ctx, tree, `find -type f | xargs -P${PARALLEL} cat, after the re-listing`).against(
      `curl: ${downloads} downloads, one per file, ${PARALLEL} in parallel`,
      curlDownloads,
      { kind: 'max', ratio: 1.3 },
    ),
    out: new MountRows(ctx, tree, 'cp -r out, fresh mount').against('girder-client download', gcDownload, { kind: 'max', ratio: 0.5 }),
  };
}

export async function manyFilesRead(ctx: BenchContext, tree: ManyFilesTree, plugin: boolean): Promise<void> {
  const tag = plugin ? ' [listing plugin]' : '';
  const server = await ProxiedServer.start(ctx, plugin);
  ctx.log(`many-files${tag}: seeding ${tree.what} (${SEED_IN_FLIGHT} POST /file in flight)`);
  const seedParent = server.started.server.info.folders.adminPrivate;
  const seeded = await seedTree(server.started.admin, seedParent, 'many', tree.layout.dirs.length, tree.items, SEED_IN_FLIGHT, (dir, file) => readFile(path.join(tree.local, dir, file)));
  ctx.note(`many-files${tag}: seeded ${tree.what} in ${seeded.seconds.toFixed(0)} s (${(tree.items / seeded.seconds).toFixed(0)} files/s)`);
  const listing = listingPages(tree, seeded);
  const fileLists = seeded.files.map((f): CurlRequest => ({ path: `/item/${f.itemId}/files`, query: page(0) }));
  const downloads = seeded.files.map((f): CurlRequest => ({ path: `/file/${f._id}/download`, query: '' }));

  const curlPages: number[] = [];
  const curlPagesAndFiles: number[] = [];
  const pagesName = `curl: the ${listing.length} listing pages, one after the other`;
  const cold = new MountRows(ctx, tree, `ls -lR, cold, ${tree.what}${tag}`).against(pagesName, curlPages, plugin ? { kind: 'max', ratio: 2 } : undefined);
  if (!plugin) cold.against(`curl: the listing pages, then ${fileLists.length} GET /item/{id}/files, ${PARALLEL} in parallel`, curlPagesAndFiles, { kind: 'max', ratio: 1.1 });
  const relist = new MountRows(ctx, tree, `ls -lR again after the TTL (${TTL_S} s)${tag}`).against(pagesName, curlPages, { kind: 'max', ratio: plugin ? 2 : 1.5 });
  const bytes = plugin ? undefined : byteRows(ctx, tree, downloads.length);

  for (const run of ctx.runs(ctx.opts.listingRuns)) {
    const m = await server.mount(seeded.rootId, `many-ls${plugin ? '-plugin' : ''}-${run.run}`, MOUNT_ARGS);
    await server.step(cold.samples, () => lsLR(ctx, m, tree), cold.tally, cold.watching(m));
    await sleep(TTL_S * 1000); // every listing the cold ls fetched is now older than the TTL
    await server.step(relist.samples, () => lsLR(ctx, m, tree), relist.tally, relist.watching(m));
    if (bytes !== undefined) {
      // right after the re-listing: the bytes are what is left to fetch (a folder whose listing
      // passes the TTL on the way is listed again, as for any walk)
      const cat = `find "$M" -type f -print0 | xargs -0 -P${PARALLEL} -n 32 cat > /dev/null`;
      await server.step(bytes.read.samples, async () => (await m.timed(cat)).seconds, bytes.read.tally, bytes.read.watching(m));
    }
    await m.release(plugin && run.last);
    await server.step(curlPages, () => curlReplay(server.curl, listing, 1, 'many-pages.conf'));

    if (bytes !== undefined) {
      const filesSeconds = await server.step([], () => curlReplay(server.curl, fileLists, PARALLEL, 'many-file-lists.conf'));
      curlPagesAndFiles.push((curlPages.at(-1) as number) + filesSeconds);
      await server.step(bytes.curlDownloads, () => curlReplay(server.curl, downloads, PARALLEL, 'many-downloads.conf'));

      const fresh = await server.mount(seeded.rootId, `many-out-${run.run}`, MOUNT_ARGS);
      const cp = async (): Promise<number> => (await fresh.timed('cp -r "$M" "$W/many-out"')).seconds;
      await server.step(bytes.out.samples, () => copyOut(ctx, tree, cp, 'many-out'), bytes.out.tally, bytes.out.watching(fresh));
      await fresh.release(run.last);
      const gc = ['download', '--parent-type', 'folder', seeded.rootId, path.join(ctx.work, 'many-gc')];
      await server.step(bytes.gcDownload, () => copyOut(ctx, tree, () => girderClient(ctx, server.apiUrl, server.apiKey, gc), 'many-gc'), bytes.gcTally);
      bytes.read.update();
      bytes.out.update(`girder-client download, ${bytes.gcTally.summary()} requests`);
    }
    cold.update();
    relist.update();
    ctx.log(`many-files${tag} run ${run.run}: ls -lR cold ${cold.samples.at(-1)?.toFixed(1)} s, after TTL ${relist.samples.at(-1)?.toFixed(1)} s, curl pages ${curlPages.at(-1)?.toFixed(1)} s`);
  }
  ctx.note(`many-files${tag}: requests of a cold ls -lR: ${cold.tally.breakdown}`);
  ctx.note(`many-files${tag}: requests of ls -lR after the TTL: ${relist.tally.breakdown}`);
  if (bytes !== undefined) {
    ctx.note(`many-files: requests of find | xargs cat: ${bytes.read.tally.breakdown}`);
    ctx.note(`many-files: requests of cp -r out: ${bytes.out.tally.breakdown}; of girder-client download: ${bytes.gcTally.breakdown}`);
  }
  if (!ctx.opts.keep) await server.stop();
}
