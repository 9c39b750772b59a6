// The data the read and write cases share: one Girder server, a folder (and fresh mounts of it),
// and a big random file both on the server and as a local copy in the work dir.
import path from 'node:path';
import { writeRandomFile } from '../../test/helpers/random-file.js';
import type { BenchContext, StartedServer } from './context.js';
import type { MountUnderTest } from './mount-under-test.js';
import type { CurlTarget } from './curl.js';
import { MiB } from './stats.js';

export interface DataSet {
  server: StartedServer;
  /** The folder every data case mounts. */
  folderId: string;
  bigName: string;
  bigLocal: string;
  bigFileId: string;
  bigSize: number;
  curl: CurlTarget;
  /** A fresh mount of the folder (through `apiUrl` when given, e.g. a proxy). */
  mount(label: string, extra?: { apiUrl?: string }): Promise<MountUnderTest>;
  /** Before a timed step: dirty pages written back, the server idle (BenchContext.quiesce). */
  settle(): Promise<void>;
}

export async function makeDataSet(ctx: BenchContext): Promise<DataSet> {
  const server = await ctx.startServer();
  const folder = await server.admin.createFolder(server.server.info.folders.adminPrivate, 'bench-data');
  const bigName = 'big.bin';
  const bigLocal = path.join(ctx.work, bigName);
  const bigSize = ctx.opts.sizeMiB * MiB;
  ctx.log(`writing ${ctx.opts.sizeMiB} MiB of random bytes to ${bigLocal}`);
  await writeRandomFile(bigLocal, bigSize);
  const started = Date.now();
  const doc = await server.admin.uploadFileFromDisk({ type: 'folder', id: folder._id }, bigName, bigLocal);
  ctx.log(`uploaded ${bigName} through REST in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return {
    server,
    folderId: folder._id,
    bigName,
    bigLocal,
    bigFileId: doc._id,
    bigSize,
    curl: { apiUrl: server.server.info.apiUrl, token: server.token, work: ctx.work },
    mount: (label, extra) => ctx.mount(server.server, folder._id, label, extra),
    settle: () => ctx.quiesce(server.server.info.pid),
  };
}
