// Decoding the girder-mount-listing plugin's answer (the same decode is checked against a live
// server's answers in test/integration/listing-plugin.test.ts).
import t from 'tap';
import { GirderError } from '../../src/girder/girder-error.js';
import { decodeListingPage, isListingAnswer, isNoListingRoute } from '../../src/girder/listing-page.js';

// an answer of the plugin 1.0.0 on Girder 5.0.21 (ids shortened to stay readable)
const answer = {
  folders: [
    {
      _accessLevel: 1, _id: 'f1', _modelType: 'folder', baseParentId: 'u1', baseParentType: 'user',
      created: '2026-12-06T02:32:22.098000+00:00', creatorId: 'u1', description: '', meta: {}, name: 's-b',
      parentCollection: 'folder', parentId: 'p1', public: false, size: 0, updated: '2026-12-06T02:32:23+00:00',
    },
  ],
  items: [
    {
      _id: 'i1', _modelType: 'item', baseParentId: 'u1', baseParentType: 'user', created: '2026-12-06T02:32:22.145000+00:00',
      creatorId: 'u1', description: '', files: [], folderId: 'p1', meta: {}, name: 'no-files', size: 0,
      updated: '2026-12-06T02:32:22.145000+00:00',
    },
    {
      _id: 'i2', _modelType: 'item', baseParentId: 'u1', baseParentType: 'user', created: '2026-12-06T02:32:22.168000+00:00',
      creatorId: 'u1', description: '', folderId: 'p1', meta: { k: 1 }, name: 'one.txt', size: 8,
      updated: '2026-12-06T02:32:22.168000+00:00',
      files: [
        {
          _id: 'x1', _modelType: 'file', created: '2026-12-06T02:32:22.168000+00:00', creatorId: 'u1', exts: ['txt'],
          itemId: 'i2', mimeType: 'text/plain', name: 'one.txt', sha512: 'AB'.repeat(64), size: 8,
        },
      ],
    },
  ],
  limit: 3,
  offset: 1,
  plugin: 'girder-mount-listing',
  totalFolders: 2,
  totalItems: 7,
  version: '1.0.0',
};

t.test('a page decodes into the documents the rest of the program uses', async (t) => {
  const page = decodeListingPage(answer);
  t.equal(page.version, '1.0.0');
  t.same([page.offset, page.limit, page.totalFolders, page.totalItems], [1, 3, 2, 7]);
  t.same(page.folders.map((f) => [f.id, f.name, f.accessLevel, f.parentId, f.updated]), [
    ['f1', 's-b', 1, 'p1', Date.UTC(2026, 11, 6, 2, 32, 23)],
  ]);
  t.same(page.items.map((i) => [i.item.id, i.item.name, i.item.size, i.files.length]), [
    ['i1', 'no-files', 0, 0],
    ['i2', 'one.txt', 8, 1],
  ]);
  const file = page.items[1]?.files[0];
  t.same(
    { id: file?.id, itemId: file?.itemId, size: file?.size, mimeType: file?.mimeType, sha512: file?.sha512, updated: file?.updated },
    { id: 'x1', itemId: 'i2', size: 8, mimeType: 'text/plain', sha512: 'ab'.repeat(64), updated: undefined },
  );
});

t.test('only this plugin, major version 1, is taken for a listing', async (t) => {
  t.ok(isListingAnswer(answer));
  t.ok(isListingAnswer({ ...answer, version: '1.7.2' }), 'a later 1.x reads the same');
  for (const other of [{ ...answer, version: '2.0.0' }, { ...answer, plugin: 'other' }, { ...answer, version: 1 }, [], null, 'x']) {
    t.notOk(isListingAnswer(other), JSON.stringify(other).slice(0, 60));
  }
  t.throws(() => decodeListingPage({ ...answer, version: '2.0.0' }), { name: 'GirderError', type: 'malformed' });
});

t.test('a malformed page is an error, not an empty folder', async (t) => {
  const broken: [string, unknown][] = [
    ['no folders', { ...answer, folders: undefined }],
    ['items not a list', { ...answer, items: {} }],
    ['an item without files', { ...answer, items: [{ ...answer.items[0], files: undefined }] }],
    ['a file without an id', { ...answer, items: [{ ...answer.items[1], files: [{ name: 'x' }] }] }],
    ['a negative total', { ...answer, totalItems: -1 }],
    ['a fractional offset', { ...answer, offset: 1.5 }],
  ];
  for (const [what, value] of broken) {
    t.throws(() => decodeListingPage(value), { name: 'GirderError', type: 'malformed' }, what);
  }
});

t.test('which probe failures mean "no plugin"', async (t) => {
  const noRoute = new GirderError('No matching route for "GET 0123/listing"', 400, 'rest');
  t.ok(isNoListingRoute(noRoute), '400 No matching route');
  t.ok(isNoListingRoute(new GirderError('Not Found', 404, 'http')), 'a proxy that does not pass the path');
  t.notOk(isNoListingRoute(new GirderError('You must be logged in.', 401, 'access')), '401: log in again, then ask again');
  t.notOk(isNoListingRoute(new GirderError('down', 503, 'rest')), '5xx tells nothing');
  t.notOk(isNoListingRoute(new GirderError('socket hang up', 0, 'network')), 'no answer tells nothing');
  t.notOk(isNoListingRoute(new Error('other')), 'not a Girder error');
});
