// Issue 13, item 5: the girder-mount-listing server plugin (scripts/girder-plugin), against a real
// Girder with and without it. GET /folder/{id}/listing must give exactly what Girder's own
// GET /folder + GET /item + GET /item/{id}/files give, with the same access checks, at a constant
// number of database queries per page; a server without it must answer the probe with Girder's
// 400 "No matching route".
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { GirderClient } from '../../src/girder/client.js';
import { decodeFile, decodeFolder, decodeItem } from '../../src/girder/decode.js';
import { decodeListingPage, isListingAnswer, isNoListingRoute } from '../../src/girder/listing-page.js';
import { silentLogger } from '../../src/log.js';
import { eachLimit } from '../../src/vfs/each-limit.js';
import { rest, type Json, type RawFile, type RawFolder, type RawItem, type Rest } from '../helpers/girder-rest.js';
import { dbQueries, startGirder, type GirderServerInfo } from '../helpers/girder-server.js';

const LISTING_VERSION = '1.0.0';
const BIG_ITEMS = 1000;
const SEED_IN_FLIGHT = 8;

type ListedItem = RawItem & { files: RawFile[] };

interface ListingPage {
  plugin: string;
  version: string;
  offset: number;
  limit: number;
  totalFolders: number;
  totalItems: number;
  folders: RawFolder[];
  items: ListedItem[];
}

interface Answer<T = Json> {
  status: number;
  totalCount: string | null;
  body: T;
}

type Query = Record<string, string | number>;

/** The daemon's own client, logged in with the user's API key. */
async function userClient(info: GirderServerInfo): Promise<GirderClient> {
  const client = new GirderClient({
    apiUrl: info.apiUrl,
    credentials: { kind: 'apiKey', key: info.user.apiKey },
    timeoutMs: 60_000,
    retries: 0,
    logger: silentLogger(),
  });
  await client.login();
  return client;
}

/** The probe as the daemon sends it: 'plugin', 'none' (no such route), or what it threw. */
async function probe(client: GirderClient, folderId: string): Promise<'plugin' | 'none' | 'odd answer'> {
  try {
    return isListingAnswer(await client.get(`/folder/${folderId}/listing`, { limit: 0 })) ? 'plugin' : 'odd answer';
  } catch (err) {
    if (isNoListingRoute(err)) return 'none';
    throw err;
  }
}

/** One GET with an optional Girder-Token, whatever the status (the rest() helper throws on errors). */
async function get<T = Json>(info: GirderServerInfo, path: string, query: Query = {}, token?: string): Promise<Answer<T>> {
  const url = new URL(`${info.apiUrl}${path}`);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, String(v));
  const res = await fetch(url, { headers: token === undefined ? {} : { 'Girder-Token': token } });
  return { status: res.status, totalCount: res.headers.get('girder-total-count'), body: (await res.json()) as T };
}

async function listing(info: GirderServerInfo, folderId: string, query: Query, token?: string): Promise<ListingPage> {
  const answer = await get<ListingPage>(info, `/folder/${folderId}/listing`, query, token);
  if (answer.status !== 200) throw new Error(`listing of ${folderId} ${JSON.stringify(query)} -> ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

/** What Girder's own routes give: sub-folders then items by _id, each item with its files. */
async function girderView(info: GirderServerInfo, folderId: string, token?: string): Promise<{ folders: RawFolder[]; items: ListedItem[] }> {
  const ok = <T>(a: Answer<T>, what: string): T => {
    if (a.status !== 200) throw new Error(`${what} -> ${a.status} ${JSON.stringify(a.body)}`);
    return a.body;
  };
  const byId = { limit: 0, sort: '_id', sortdir: 1 };
  const folders = ok(await get<RawFolder[]>(info, '/folder', { parentType: 'folder', parentId: folderId, ...byId }, token), 'GET /folder');
  const items = ok(await get<RawItem[]>(info, '/item', { folderId, ...byId }, token), 'GET /item');
  const withFiles: ListedItem[] = [];
  for (const item of items) {
    const files = ok(await get<RawFile[]>(info, `/item/${item._id}/files`, { limit: 0 }, token), 'GET /item/{id}/files');
    withFiles.push({ ...item, files });
  }
  return { folders, items: withFiles };
}

/** A small file as a new item of its name: one POST /file whose body completes the upload. */
async function smallFile(who: Rest, parent: { type: 'folder' | 'item'; id: string }, name: string, text = `${name}\n`): Promise<RawFile> {
  const data = Buffer.from(text);
  const doc = await who.post<RawFile>('/file', { parentType: parent.type, parentId: parent.id, name, size: data.length }, data);
  if (doc._modelType !== 'file') throw new Error(`POST /file for ${name} did not finish: ${JSON.stringify(doc)}`);
  return doc;
}

/** A token of a new API key of `who` limited to `scope`. */
async function scopedToken(info: GirderServerInfo, who: Rest, scope: string[]): Promise<string> {
  const key = await who.post<{ key: string }>('/api_key', { name: `scope ${scope.join(' ')}`, scope: JSON.stringify(scope) });
  // without a Girder-Token: the new token must come from the key alone
  const res = await fetch(`${info.apiUrl}/api_key/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ key: key.key }).toString(),
  });
  const answer = (await res.json()) as { authToken: { token: string; scope: string[] } };
  if (JSON.stringify(answer.authToken.scope) !== JSON.stringify(scope)) throw new Error(`token scope ${JSON.stringify(answer.authToken.scope)}`);
  return answer.authToken.token;
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0);
  return out;
}

t.test('GET /folder/{id}/listing on a server with the plugin', { timeout: 600_000 }, async (t) => {
  const server = await startGirder({ listingPlugin: true, countDbQueries: true });
  t.teardown(() => server.stop());
  const { info } = server;
  const admin = rest(server, 'admin');
  const user = rest(server, 'user');
  const userToken = await user.token();
  const adminToken = await admin.token();
  t.same(info.plugins, ['hashsum_download', 'mount_listing'], 'the launcher loaded the plugin');

  // user's tree: 3 readable sub-folders, one the user cannot read, and items with 0, 1 and 3 files
  const tree = await user.createFolder(info.folders.userPrivate, 'tree');
  const subs: RawFolder[] = [];
  for (const name of ['s-b', 's-a', 's-c']) subs.push(await user.createFolder(tree._id, name));
  const hidden = await admin.createFolder(tree._id, 'admin-only');
  await admin.put(`/folder/${hidden._id}/access`, {
    access: JSON.stringify({ users: [{ id: info.admin.id, level: 2 }], groups: [] }),
    public: 'false',
  });
  const empty = await user.createItem(tree._id, 'no-files');
  const one = await smallFile(user, { type: 'folder', id: tree._id }, 'one.txt');
  const several = await user.createItem(tree._id, 'several');
  for (const name of ['c.dat', 'a.dat', 'b.dat']) await smallFile(user, { type: 'item', id: several._id }, name);
  for (let i = 0; i < 5; i++) await smallFile(user, { type: 'folder', id: tree._id }, `f${i}.txt`);
  const emptyFolder = subs[0] as RawFolder;

  t.test('the answer holds what GET /folder, GET /item and GET /item/{id}/files give', async (t) => {
    for (const [who, token] of [['user', userToken], ['admin', adminToken]] as const) {
      const want = await girderView(info, tree._id, token);
      const answer = await get<ListingPage>(info, `/folder/${tree._id}/listing`, { limit: 1000 }, token);
      t.equal(answer.status, 200, `${who}: 200`);
      const page = answer.body;
      t.strictSame(page.folders, want.folders, `${who}: same sub-folder documents, _accessLevel included`);
      t.strictSame(page.items, want.items, `${who}: same item documents, each with the same files`);
      t.equal(page.plugin, 'girder-mount-listing');
      t.equal(page.version, LISTING_VERSION);
      t.equal(page.totalFolders, want.folders.length);
      t.equal(page.totalItems, want.items.length);
      t.equal(answer.totalCount, String(want.folders.length + want.items.length), `${who}: Girder-Total-Count is the total`);
    }
    const page = await listing(info, tree._id, { limit: 1000 }, userToken);
    t.same(page.folders.map((f) => f.name).sort(), ['s-a', 's-b', 's-c'], 'the sub-folder the user cannot read is not listed');
    t.ok(page.folders.every((f) => f._accessLevel === 2), "the user's own sub-folders carry _accessLevel 2");
    const adminPage = await listing(info, tree._id, { limit: 1000 }, adminToken);
    t.ok(adminPage.folders.some((f) => f._id === hidden._id), 'the admin sees it');
    t.equal(adminPage.totalFolders, 4);
    t.equal(page.totalFolders, 3, 'totals count only what the caller can read');

    const decoded = decodeListingPage(page);
    const want = await girderView(info, tree._id, userToken);
    t.strictSame(decoded.folders, want.folders.map(decodeFolder), 'src/girder decodes the folders as it decodes GET /folder');
    t.strictSame(
      decoded.items,
      want.items.map((i) => ({ item: decodeItem(i), files: i.files.map(decodeFile) })),
      'and the items and files as it decodes GET /item and GET /item/{id}/files',
    );
    const client = await userClient(info);
    t.teardown(() => client.close());
    t.equal(await probe(client, tree._id), 'plugin', "the daemon's client sees the plugin");

    const byId = new Map(page.items.map((i) => [i._id, i]));
    t.same(byId.get(empty._id)?.files, [], 'an item without files has files: []');
    t.same(byId.get(one.itemId)?.files.map((f) => f._id), [one._id], 'an item with one file');
    t.same(byId.get(several._id)?.files.map((f) => f.name), ['a.dat', 'b.dat', 'c.dat'], 'several files, sorted by name');
    t.ok(byId.get(one.itemId)?.files[0]?.sha512, 'file documents carry sha512 (hashsum_download is loaded)');
  });

  t.test('pages across the folder/item boundary', async (t) => {
    const want = await girderView(info, tree._id, userToken);
    const all: (RawFolder | ListedItem)[] = [...want.folders, ...want.items];
    const total = all.length;
    t.equal(total, 3 + 8);
    let checked = 0;
    for (const limit of [1, 2, 3, 4, 7, total, 50]) {
      for (let offset = 0; offset <= total + 1; offset++) {
        const page = await listing(info, tree._id, { limit, offset }, userToken);
        const slice = all.slice(offset, offset + limit);
        const same =
          isDeepStrictEqual(page.folders, slice.filter((d) => d._modelType === 'folder')) &&
          isDeepStrictEqual(page.items, slice.filter((d) => d._modelType === 'item')) &&
          page.offset === offset && page.limit === limit && page.totalFolders === 3 && page.totalItems === 8;
        if (!same) t.fail(`limit ${limit} offset ${offset}: ${JSON.stringify(page).slice(0, 600)}`);
        checked++;
      }
    }
    t.pass(`${checked} pages equal the matching slice of Girder's own listing`);
    // walking the folder page by page, as a client does, gives everything once
    const walked: string[] = [];
    for (let offset = 0; ;) {
      const page = await listing(info, tree._id, { limit: 4, offset }, userToken);
      const ids = [...page.folders.map((f) => f._id), ...page.items.map((i) => i._id)];
      walked.push(...ids);
      offset += ids.length;
      if (ids.length === 0 || offset >= page.totalFolders + page.totalItems) break;
    }
    t.same(walked, all.map((d) => d._id), 'pages of 4 walk the whole folder in order');
  });

  t.test('an empty folder, and limit=0 as the probe', async (t) => {
    const answer = await get<ListingPage>(info, `/folder/${emptyFolder._id}/listing`, {}, userToken);
    t.equal(answer.status, 200);
    t.strictSame(
      { ...answer.body },
      { plugin: 'girder-mount-listing', version: LISTING_VERSION, offset: 0, limit: 1000, totalFolders: 0, totalItems: 0, folders: [], items: [] },
      'empty folder: no documents, default limit 1000',
    );
    t.equal(answer.totalCount, '0');
    const probe = await get<ListingPage>(info, `/folder/${tree._id}/listing`, { limit: 0 }, userToken);
    t.equal(probe.status, 200);
    t.strictSame(
      probe.body,
      { plugin: 'girder-mount-listing', version: LISTING_VERSION, offset: 0, limit: 0, totalFolders: 3, totalItems: 8, folders: [], items: [] },
      'limit=0: only the totals and the version',
    );
  });

  t.test('access is refused exactly as Girder refuses it', async (t) => {
    const cases: [string, string, string | undefined][] = [
      ["anonymous, the user's private folder", tree._id, undefined],
      ["user, the admin's private folder", info.folders.adminPrivate, userToken],
      ['user, the sub-folder only the admin can read', hidden._id, userToken],
    ];
    for (const [what, folderId, token] of cases) {
      const ours = await get(info, `/folder/${folderId}/listing`, {}, token);
      const girders = await get(info, '/item', { folderId }, token);
      t.equal(ours.status, girders.status, `${what}: status ${girders.status}`);
      t.strictSame(ours.body, girders.body, `${what}: the same error body as GET /item`);
    }
    t.equal((await get(info, `/folder/${tree._id}/listing`)).status, 401, 'anonymous gets 401');
    t.equal((await get(info, `/folder/${info.folders.adminPrivate}/listing`, {}, userToken)).status, 403, 'logged in gets 403');

    // a public folder is listed to anonymous callers, as GET /folder and GET /item list it
    const pub = await user.createFolder(info.folders.userPublic, 'shared');
    await user.createFolder(pub._id, 'inner');
    await smallFile(user, { type: 'folder', id: pub._id }, 'open.txt');
    const want = await girderView(info, pub._id);
    const page = await listing(info, pub._id, {});
    t.strictSame(page.folders, want.folders, 'anonymous: same public sub-folders (_accessLevel 0)');
    t.strictSame(page.items, want.items, 'anonymous: same items and files');
    t.equal(page.folders[0]?._accessLevel, 0);
  });

  t.test('a read-only scoped API key lists; a key without data scope counts as anonymous', async (t) => {
    const readOnly = await scopedToken(info, user, ['core.data.read']);
    const want = await listing(info, tree._id, { limit: 1000 }, userToken);
    t.strictSame(await listing(info, tree._id, { limit: 1000 }, readOnly), want, 'core.data.read: the same page as full rights');
    const noData = await scopedToken(info, user, ['core.user_info.read']);
    const ours = await get(info, `/folder/${tree._id}/listing`, {}, noData);
    const girders = await get(info, '/item', { folderId: tree._id }, noData);
    t.equal(ours.status, 401, 'without core.data.read: 401');
    t.strictSame(ours.body, girders.body, 'the same refusal as GET /item');
  });

  t.test("bad ids and parameters get Girder's usual 400", async (t) => {
    for (const id of ['xyz', '0123456789abcdef01234567']) {
      const ours = await get(info, `/folder/${id}/listing`, {}, userToken);
      const girders = await get(info, `/folder/${id}`, {}, userToken);
      t.equal(ours.status, 400, `${id}: 400`);
      t.strictSame(ours.body, girders.body, `${id}: the same body as GET /folder/{id}`);
    }
    const bad: [Query, RegExp][] = [
      [{ limit: -1 }, /^limit must be between 0 and 10000\.$/],
      [{ limit: 10001 }, /^limit must be between 0 and 10000\.$/],
      [{ offset: -1 }, /^offset must not be negative\.$/],
      [{ limit: 'ten' }, /^Invalid value for integer parameter limit/],
    ];
    for (const [query, message] of bad) {
      const answer = await get<{ message: string; type: string }>(info, `/folder/${tree._id}/listing`, query, userToken);
      t.equal(answer.status, 400, `${JSON.stringify(query)}: 400`);
      t.match(answer.body.message, message);
    }
  });

  t.test(`${BIG_ITEMS} items: a constant number of queries, and the time of one page`, { timeout: 400_000 }, async (t) => {
    const big = await admin.createFolder(info.folders.adminPrivate, 'big');
    const names = Array.from({ length: BIG_ITEMS }, (_, i) => `item-${String(i).padStart(4, '0')}.txt`);
    await eachLimit(names, SEED_IN_FLIGHT, async (name) => {
      await smallFile(admin, { type: 'folder', id: big._id }, name);
    });
    const severalFiles = await admin.createItem(big._id, 'zz-several');
    for (const name of ['x', 'y']) await smallFile(admin, { type: 'item', id: severalFiles._id }, name);

    const cost = async (query: Query): Promise<{ queries: Record<string, number>; page: ListingPage }> => {
      const before = await dbQueries(info);
      const page = await listing(info, big._id, query, adminToken);
      return { queries: delta(await dbQueries(info), before), page };
    };
    const small = await cost({ limit: 2 });
    const whole = await cost({ limit: BIG_ITEMS + 1 });
    t.equal(small.page.items.length, 2);
    t.equal(whole.page.items.length, BIG_ITEMS + 1);
    t.equal(whole.page.items.reduce((n, i) => n + i.files.length, 0), BIG_ITEMS + 2, 'every file of the page is there');
    t.comment(`database queries, page of 2 items: ${JSON.stringify(small.queries)}; page of ${BIG_ITEMS + 1}: ${JSON.stringify(whole.queries)}`);
    t.strictSame(whole.queries, small.queries, 'a page of 1,001 items costs the same queries as a page of 2');
    t.equal(whole.queries.file, 1, 'all the files of a page in one query');
    const sum = (q: Record<string, number>): number => Object.values(q).reduce((a, b) => a + b, 0);
    t.ok(sum(whole.queries) <= 12, `at most a dozen queries per request, with authentication (${sum(whole.queries)})`);

    // the counter sees per-item work: each GET /item/{id}/files costs a find and a count of files
    const before = await dbQueries(info);
    for (const item of whole.page.items.slice(0, 3)) await admin.listFiles(item._id);
    t.equal(delta(await dbQueries(info), before).file, 6, 'three GET /item/{id}/files: six file queries');

    // time: one page versus GET /item plus one GET /item/{id}/files per item, same server
    let started = performance.now();
    const timed = await listing(info, big._id, { limit: BIG_ITEMS }, adminToken);
    const pluginMs = performance.now() - started;
    started = performance.now();
    const items = await get<RawItem[]>(info, '/item', { folderId: big._id, limit: BIG_ITEMS, sort: '_id', sortdir: 1 }, adminToken);
    const files: RawFile[][] = [];
    for (const item of items.body) files.push((await get<RawFile[]>(info, `/item/${item._id}/files`, { limit: 0 }, adminToken)).body);
    const perItemMs = performance.now() - started;
    t.strictSame(
      timed.items,
      items.body.map((item, i) => ({ ...item, files: files[i] })),
      'the timed page equals the per-item answers',
    );
    t.comment(
      `one page of ${BIG_ITEMS} items: ${pluginMs.toFixed(0)} ms (1 request); GET /item + ${BIG_ITEMS} GET /item/{id}/files: ` +
        `${perItemMs.toFixed(0)} ms (${BIG_ITEMS + 1} requests, one at a time); ratio ${(perItemMs / pluginMs).toFixed(1)}x`,
    );
    t.ok(pluginMs * 3 < perItemMs, 'one page is several times faster than one request per item');
  });
});

t.test('a server without the plugin answers the probe with 400 "No matching route"', async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());
  const { info } = server;
  t.same(info.plugins, ['hashsum_download'], 'only hashsum_download is loaded');
  const user = rest(server, 'user');
  const token = await user.token();
  const folderId = info.folders.userPrivate;
  for (const [what, query] of [['probe', { limit: 0 }], ['page', { limit: 1000, offset: 0 }]] as const) {
    const answer = await get<{ message: string; type: string }>(info, `/folder/${folderId}/listing`, query, token);
    t.equal(answer.status, 400, `${what}: 400`);
    t.strictSame(answer.body, { message: `No matching route for "GET ${folderId}/listing"`, type: 'rest' }, `${what}: Girder's unknown-route answer`);
  }
  const client = await userClient(info);
  t.teardown(() => client.close());
  t.equal(await probe(client, folderId), 'none', "the daemon's client sees no plugin");
  const anonymous = await get<{ message: string; type: string }>(info, `/folder/${folderId}/listing`, { limit: 0 });
  t.equal(anonymous.status, 400, 'the same 400 without a token (routes are matched before access is checked)');
  t.match(anonymous.body.message, /^No matching route for /);
});
