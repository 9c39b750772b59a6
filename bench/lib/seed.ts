// Trees of small files: seeding the server through REST with a few requests in flight, and the
// same layout on local disk.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { eachLimit } from '../../src/vfs/each-limit.js';
import type { RawFile, Rest } from '../../test/helpers/girder-rest.js';

/** A new item holding one small file of the same name: one POST /file whose body completes the upload. */
export async function smallFile(admin: Rest, folderId: string, name: string, data: Buffer): Promise<RawFile> {
  const doc = await admin.post<RawFile>('/file', { parentType: 'folder', parentId: folderId, name, size: data.length }, data);
  if (doc._modelType !== 'file') throw new Error(`POST /file for ${name} did not finish the upload: ${JSON.stringify(doc)}`);
  return doc;
}

/** Where each file of a tree of `items` files in `folders` folders goes: `dir-NN/file-NNNNNN.txt`, round robin. */
export interface TreeLayout {
  dirs: string[];
  files: Array<{ dir: number; name: string }>;
}

export function treeLayout(folders: number, items: number): TreeLayout {
  const width = String(folders - 1).length;
  return {
    dirs: Array.from({ length: folders }, (_, i) => `dir-${String(i).padStart(width, '0')}`),
    files: Array.from({ length: items }, (_, k) => ({ dir: k % folders, name: `file-${String(k).padStart(6, '0')}.txt` })),
  };
}

/** How many files named as the layout names them an `ls -l` output (`-` lines) or a `find` output (paths) in `file` holds. */
export async function countListed(file: string, format: 'ls' | 'find'): Promise<number> {
  const pattern = format === 'ls' ? /^-.* file-\d{6}\.txt$/ : /\/file-\d{6}\.txt$/;
  return (await readFile(file, 'utf8')).split('\n').filter((line) => pattern.test(line)).length;
}

export interface SeededTree {
  rootId: string;
  folderIds: string[];
  items: number;
  /** The file documents, in the layout's order. */
  files: RawFile[];
  seconds: number;
}

/**
 * `items` single-file items spread evenly over `folders` folders under a new folder `name`; each
 * file holds `content(dir, name)` (default: its name and a newline).
 */
export async function seedTree(
  admin: Rest,
  parentId: string,
  name: string,
  folders: number,
  items: number,
  inFlight: number,
  content: (dir: string, file: string) => Promise<Buffer> = (_dir, file) => Promise.resolve(Buffer.from(`${file}\n`)),
): Promise<SeededTree> {
  const started = Date.now();
  const layout = treeLayout(folders, items);
  const root = await admin.createFolder(parentId, name);
  const folderIds: string[] = new Array<string>(folders);
  await eachLimit(layout.dirs, inFlight, async (dir, i) => {
    folderIds[i] = (await admin.createFolder(root._id, dir))._id;
  });
  const files: RawFile[] = new Array<RawFile>(items);
  await eachLimit(layout.files, inFlight, async ({ dir, name: file }, k) => {
    files[k] = await smallFile(admin, folderIds[dir] as string, file, await content(layout.dirs[dir] as string, file));
  });
  return { rootId: root._id, folderIds, items, files, seconds: (Date.now() - started) / 1000 };
}

/** Writes the layout under `root` on local disk, each file `size` random bytes. */
export async function writeLocalTree(root: string, layout: TreeLayout, size: number): Promise<void> {
  for (const dir of layout.dirs) await mkdir(path.join(root, dir), { recursive: true });
  await eachLimit(layout.files, 16, ({ dir, name }) => writeFile(path.join(root, layout.dirs[dir] as string, name), randomBytes(size)));
}
