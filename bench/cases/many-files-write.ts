// The write side of many-files: `cp -r` of the local tree into a mount, timed until the mount has
// no upload pending, against curl making one POST /file per file (16 in parallel) and against
// `girder-client upload`. Each upload starts on a new, empty server: on mongomock every query
// scans every document, so a server already holding an earlier copy would slow the later ones.
import type { BenchContext } from '../lib/context.js';
import { curlUploadTree } from '../lib/curl.js';
import { girderClient } from '../lib/girder-client.js';
import { ProxiedServer } from '../lib/proxied-server.js';
import { RequestTally } from '../lib/requests.js';
import { FILE_SIZE, MOUNT_ARGS, MountRows, PARALLEL, type ManyFilesTree } from './many-files-tree.js';

/** A new empty server and a folder `in` on it to upload into. */
async function emptyServer(ctx: BenchContext): Promise<{ server: ProxiedServer; parentId: string }> {
  const server = await ProxiedServer.start(ctx);
  const parent = await server.started.admin.createFolder(server.started.server.info.folders.adminPrivate, 'in');
  return { server, parentId: parent._id };
}

/** Throws unless folder `many` under `parentId` holds the tree: its folders, and each file as an item of its size. */
async function checkUploaded(server: ProxiedServer, parentId: string, tree: ManyFilesTree, by: string): Promise<void> {
  const { admin } = server.started;
  const root = (await admin.listFolders(parentId)).find((f) => f.name === 'many');
  if (root === undefined) throw new Error(`${by} made no folder many`);
  const dirs = await admin.listFolders(root._id);
  const items = (await Promise.all(dirs.map((d) => admin.listItems(d._id)))).flat();
  const right = items.filter((item) => item.size === FILE_SIZE).length;
  if (dirs.length !== tree.layout.dirs.length || right !== tree.items) {
    throw new Error(`${by} uploaded ${dirs.length} folders and ${right} items of ${FILE_SIZE} bytes, expected ${tree.layout.dirs.length} and ${tree.items}`);
  }
}

export async function manyFilesWrite(ctx: BenchContext, tree: ManyFilesTree): Promise<void> {
  const curlUpload: number[] = [];
  const gcUpload: number[] = [];
  const curlTally = new RequestTally(tree.folders, tree.items);
  const gcTally = new RequestTally(tree.folders, tree.items);
  const curlName = `curl: one POST /file per file, ${PARALLEL} in parallel`;
  const copyIn = new MountRows(ctx, tree, 'cp -r in, until uploaded')
    .against(curlName, curlUpload, { kind: 'max', ratio: 1.5 })
    .against('girder-client upload', gcUpload, { kind: 'max', ratio: 1 / 3 });
  for (const run of ctx.runs(ctx.opts.listingRuns)) {
    const mine = await emptyServer(ctx);
    const m = await mine.server.mount(mine.parentId, `many-in-${run.run}`, MOUNT_ARGS);
    await m.timed('ls "$M" > /dev/null');
    const cpIn = async (): Promise<number> => (await m.untilUploaded(`cp -r "${tree.local}" "$M/many"`)).uploaded;
    await mine.server.step(copyIn.samples, cpIn, copyIn.tally, copyIn.watching(m));
    const kept = ctx.keeps(run);
    await m.release(run.last);
    await checkUploaded(mine.server, mine.parentId, tree, 'cp -r');
    if (!kept) await mine.server.stop();

    const forCurl = await emptyServer(ctx);
    const upload = (): Promise<number> => curlUploadTree(forCurl.server.curl, forCurl.parentId, 'many', tree.local, tree.layout, PARALLEL);
    await forCurl.server.step(curlUpload, upload, curlTally);
    await checkUploaded(forCurl.server, forCurl.parentId, tree, 'curl');
    await forCurl.server.stop();

    const forGc = await emptyServer(ctx);
    const gc = ['upload', '--parent-type', 'folder', forGc.parentId, tree.local];
    await forGc.server.step(gcUpload, () => girderClient(ctx, forGc.server.apiUrl, forGc.server.apiKey, gc), gcTally);
    await checkUploaded(forGc.server, forGc.parentId, tree, 'girder-client upload');
    await forGc.server.stop();

    copyIn.update(`${curlName}, ${curlTally.summary()} requests`, `girder-client upload, ${gcTally.summary()} requests`);
    ctx.log(`many-files run ${run.run}: cp -r in ${copyIn.samples.at(-1)?.toFixed(1)} s, curl ${curlUpload.at(-1)?.toFixed(1)} s, girder-client ${gcUpload.at(-1)?.toFixed(1)} s`);
  }
  ctx.note(`many-files: requests of cp -r in: ${copyIn.tally.breakdown}; of girder-client upload: ${gcTally.breakdown}`);
}
