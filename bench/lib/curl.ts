// The references made with curl against the same server: a plain download, ranged GETs, a
// chunked upload, a batch of requests, and a tree uploaded one request per file. Each is a child
// process timed from outside.
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { shellQuote as q } from '../../test/helpers/mount.js';
import { runCommand } from './command.js';
import { CHUNK_SIZE } from '../../test/helpers/girder-rest.js';
import type { TreeLayout } from './seed.js';

export interface CurlTarget {
  apiUrl: string;
  token: string;
  /** A directory for curl config files (they hold the token: mode 0600). */
  work: string;
}

async function curl(args: string, timeoutMs = 3_600_000): Promise<{ seconds: number; stdout: string }> {
  const started = performance.now();
  const r = await runCommand(`curl -sS --fail ${args}`, {}, timeoutMs);
  const seconds = (performance.now() - started) / 1000;
  if (r.code !== 0) throw new Error(`curl ${args.slice(0, 300)} exited ${r.code}: ${r.stderr.slice(-2000)}`);
  return { seconds, stdout: r.stdout };
}

function header(t: CurlTarget): string {
  return `-H ${q(`Girder-Token: ${t.token}`)}`;
}

/**
 * Seconds curl takes to download the file to /dev/null; checks the byte count. When Girder answers
 * 303 (an S3 assetstore), a second curl follows the Location as the mount does: without the token.
 */
export async function curlDownload(t: CurlTarget, fileId: string, expectBytes: number): Promise<number> {
  const r = await curl(`-o /dev/null -w '%{http_code} %{size_download} %{redirect_url}' ${header(t)} ${q(`${t.apiUrl}/file/${fileId}/download`)}`);
  const [status, size, location] = r.stdout.split(' ');
  let seconds = r.seconds;
  let got = Number(size);
  if (status === '303' && location !== undefined && location !== '') {
    const s3 = await curl(`-o /dev/null -w '%{size_download}' ${q(location)}`);
    seconds += s3.seconds;
    got = Number(s3.stdout);
  }
  if (got !== expectBytes) throw new Error(`curl downloaded ${got} bytes, expected ${expectBytes}`);
  return seconds;
}

/** One curl process, one connection, a ranged GET of `length` bytes per offset; each GET's time in ms. */
export async function curlRangedLatencies(t: CurlTarget, fileId: string, offsets: readonly number[], length: number): Promise<number[]> {
  const url = `${t.apiUrl}/file/${fileId}/download`;
  const blocks = offsets.map((o) =>
    [`url = "${url}"`, `header = "Girder-Token: ${t.token}"`, `range = "${o}-${o + length - 1}"`, 'output = "/dev/null"', 'write-out = "%{time_total} %{size_download}\\n"'].join('\n'),
  );
  const config = path.join(t.work, 'curl-ranges.conf');
  await writeFile(config, blocks.join('\nnext\n') + '\n', { mode: 0o600 });
  const r = await curl(`-K ${q(config)}`);
  const lines = r.stdout.trim().split('\n');
  if (lines.length !== offsets.length) throw new Error(`curl made ${lines.length} ranged GETs, expected ${offsets.length}`);
  return lines.map((line) => {
    const [time, size] = line.split(' ');
    if (Number(size) !== length) throw new Error(`a ranged GET returned ${size} bytes, expected ${length}`);
    return Number(time) * 1000;
  });
}

/**
 * A chunked upload as a shell user would script it: POST /file, then POST /file/chunk of 64 MiB
 * slices cut by dd. Resolves with the seconds it took and the new file's id.
 */
export async function curlChunkedUpload(t: CurlTarget, folderId: string, name: string, localPath: string, size: number): Promise<{ seconds: number; fileId: string }> {
  const started = performance.now();
  const query = new URLSearchParams({ parentType: 'folder', parentId: folderId, name, size: String(size) });
  const init = await curl(`-X POST -H 'Content-Length: 0' ${header(t)} ${q(`${t.apiUrl}/file?${query}`)}`);
  let doc = JSON.parse(init.stdout) as { _id: string; _modelType?: string };
  const uploadId = doc._id;
  const chunkMiB = CHUNK_SIZE / 2 ** 20;
  for (let offset = 0, index = 0; offset < size; offset += CHUNK_SIZE, index++) {
    const slice = `dd if=${q(localPath)} bs=1M skip=${index * chunkMiB} count=${chunkMiB} status=none`;
    const chunkUrl = `${t.apiUrl}/file/chunk?uploadId=${uploadId}&offset=${offset}`;
    const r = await runCommand(
      `set -o pipefail; ${slice} | curl -sS --fail -X POST ${header(t)} -H 'Content-Type: application/octet-stream' --data-binary @- ${q(chunkUrl)}`,
      {},
      3_600_000,
    );
    if (r.code !== 0) throw new Error(`chunk at ${offset} failed (${r.code}): ${r.stderr.slice(-2000)}`);
    doc = JSON.parse(r.stdout) as { _id: string; _modelType?: string };
  }
  if (doc._modelType !== 'file') throw new Error(`the curl upload of ${name} did not finish: ${JSON.stringify(doc).slice(0, 500)}`);
  return { seconds: (performance.now() - started) / 1000, fileId: doc._id };
}

/** One request of a curl batch: a path and query below the API root. */
export interface CurlRequest {
  path: string;
  query: string;
  /** Default GET. */
  method?: string;
  /** A local file sent as the body, as application/octet-stream. */
  bodyFile?: string;
  /** Where the answer goes (default /dev/null). */
  output?: string;
}

function configBlock(t: CurlTarget, r: CurlRequest): string {
  const method = r.method ?? 'GET';
  const lines = [`url = "${t.apiUrl}${r.path}${r.query ? `?${r.query}` : ''}"`, `header = "Girder-Token: ${t.token}"`];
  if (method !== 'GET') lines.push(`request = "${method}"`);
  if (r.bodyFile !== undefined) lines.push('header = "Content-Type: application/octet-stream"', `data-binary = "@${r.bodyFile}"`);
  else if (method !== 'GET') lines.push('header = "Content-Length: 0"');
  lines.push(`output = "${r.output ?? '/dev/null'}"`, 'write-out = "%{http_code}\\n"');
  return lines.join('\n');
}

/**
 * Sends every request with one curl process, `parallel` at a time over kept-alive connections;
 * seconds it took. Every answer must be 200.
 */
export async function curlReplay(t: CurlTarget, requests: readonly CurlRequest[], parallel: number, configName: string): Promise<number> {
  if (requests.length === 0) return 0;
  const config = path.join(t.work, configName);
  await writeFile(config, requests.map((r) => configBlock(t, r)).join('\nnext\n') + '\n', { mode: 0o600 });
  const par = parallel > 1 ? `--parallel --parallel-immediate --parallel-max ${parallel}` : '';
  const r = await curl(`${par} -K ${q(config)}`);
  const codes = r.stdout.trim().split('\n');
  const bad = codes.filter((c) => c !== '200');
  if (codes.length !== requests.length || bad.length > 0) {
    throw new Error(`curl replay: ${codes.length} answers for ${requests.length} requests, ${bad.length} not 200 (${bad.slice(0, 5).join(', ')})`);
  }
  return r.seconds;
}

/**
 * Uploads a local tree laid out as `layout` under `localRoot` into a new folder `name` as a shell
 * user would script it with curl: one POST /folder per folder, then one POST /file per file with
 * the bytes as the body (Girder creates the item and the file in that request), `parallel` at a
 * time. Resolves with the seconds it took.
 */
export async function curlUploadTree(
  t: CurlTarget,
  parentId: string,
  name: string,
  localRoot: string,
  layout: TreeLayout,
  parallel: number,
): Promise<number> {
  const started = performance.now();
  const folderDoc = (i: number): string => path.join(t.work, `curl-folder-${i}.json`);
  const idOf = async (i: number): Promise<string> => (JSON.parse(await readFile(folderDoc(i), 'utf8')) as { _id: string })._id;
  const newFolder = (parent: string, folder: string, i: number): CurlRequest => ({
    method: 'POST',
    path: '/folder',
    query: new URLSearchParams({ parentType: 'folder', parentId: parent, name: folder }).toString(),
    output: folderDoc(i),
  });
  await curlReplay(t, [newFolder(parentId, name, -1)], 1, 'curl-root.conf');
  const rootId = await idOf(-1);
  await curlReplay(t, layout.dirs.map((dir, i) => newFolder(rootId, dir, i)), parallel, 'curl-folders.conf');
  const dirIds = await Promise.all(layout.dirs.map((_, i) => idOf(i)));
  const files = await Promise.all(
    layout.files.map(async ({ dir, name: file }): Promise<CurlRequest> => {
      const local = path.join(localRoot, layout.dirs[dir] as string, file);
      const size = (await stat(local)).size;
      const query = new URLSearchParams({ parentType: 'folder', parentId: dirIds[dir] as string, name: file, size: String(size) });
      return { method: 'POST', path: '/file', query: query.toString(), bodyFile: local };
    }),
  );
  await curlReplay(t, files, parallel, 'curl-files.conf');
  return (performance.now() - started) / 1000;
}
