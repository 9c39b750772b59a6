// Seeding the server through REST with a few requests in flight.
import type { Rest } from '../../test/helpers/girder-rest.js';

/** Runs `work` over `inputs`, at most `limit` at a time. */
export async function eachLimit<T>(inputs: readonly T[], limit: number, work: (input: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < inputs.length) {
      const i = next++;
      await work(inputs[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, inputs.length) }, worker));
}

/** A new item holding one small file of the same name: one POST /file whose body completes the upload. */
export async function smallFile(admin: Rest, folderId: string, name: string, data: Buffer): Promise<void> {
  const doc = await admin.post<{ _modelType?: string }>('/file', { parentType: 'folder', parentId: folderId, name, size: data.length }, data);
  if (doc._modelType !== 'file') throw new Error(`POST /file for ${name} did not finish the upload: ${JSON.stringify(doc)}`);
}

export interface SeededTree {
  rootId: string;
  folderIds: string[];
  items: number;
  seconds: number;
}

/** `items` single-file items spread evenly over `folders` folders under a new folder `name`. */
export async function seedTree(admin: Rest, parentId: string, name: string, folders: number, items: number, inFlight: number): Promise<SeededTree> {
  const started = Date.now();
  const root = await admin.createFolder(parentId, name);
  const folderIds: string[] = new Array<string>(folders);
  const width = String(folders - 1).length;
  await eachLimit([...Array(folders).keys()], inFlight, async (i) => {
    folderIds[i] = (await admin.createFolder(root._id, `dir-${String(i).padStart(width, '0')}`))._id;
  });
  const jobs = Array.from({ length: items }, (_, k) => ({ folder: folderIds[k % folders] as string, name: `file-${String(k).padStart(6, '0')}.txt` }));
  await eachLimit(jobs, inFlight, ({ folder, name: file }) => smallFile(admin, folder, file, Buffer.from(`${file}\n`)));
  return { rootId: root._id, folderIds, items, seconds: (Date.now() - started) / 1000 };
}
