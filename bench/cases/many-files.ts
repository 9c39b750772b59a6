// Many small files (issue 13): a tree of --items files of 4 KiB in --folders folders, listed cold,
// listed again after the TTL, read in parallel, copied out and copied in, each beside references
// taken in the same run against the same server state: curl making the minimal requests, and
// Girder's own Python client. Every client talks to Girder through a counting proxy, which gives
// each row its requests per folder and per file: mongomock distorts times, not those counts.
import path from 'node:path';
import type { BenchContext } from '../lib/context.js';
import { treeLayout, writeLocalTree } from '../lib/seed.js';
import { manyFilesRead } from './many-files-read.js';
import { FILE_SIZE, type ManyFilesTree } from './many-files-tree.js';
import { manyFilesWrite } from './many-files-write.js';

export async function manyFiles(ctx: BenchContext): Promise<void> {
  const { items, folders } = ctx.opts;
  const tree: ManyFilesTree = {
    local: path.join(ctx.work, 'many'),
    layout: treeLayout(folders, items),
    items,
    folders: folders + 1,
    what: `${items} x 4 KiB in ${folders} folders`,
  };
  ctx.log(`many-files: writing ${tree.what} to ${tree.local}`);
  await writeLocalTree(tree.local, tree.layout, FILE_SIZE);
  await manyFilesRead(ctx, tree, false);
  await manyFilesRead(ctx, tree, true);
  await manyFilesWrite(ctx, tree);
}
