// Each item's file list kept between listings (src/vfs/item-files.ts): when it is reused, when not.
import t from 'tap';
import type { FileDoc, ItemDoc } from '../../src/girder/types.js';
import { ItemFiles } from '../../src/vfs/item-files.js';

const item: ItemDoc = { id: 'i1', name: 'a.bin', folderId: 'f1', created: 1, updated: 1, size: 4, meta: {} };
const file = (created: number): FileDoc => ({ id: 'file1', name: 'a.bin', itemId: 'i1', size: 4, created, mimeType: 'application/octet-stream' });

t.test('a list is reused while the item keeps its size and updated', async (t) => {
  const files = new ItemFiles();
  files.fetched(item, [file(1)], 100);
  t.same(files.get(item), [file(1)]);
  t.equal(files.get({ ...item, size: 5 }), undefined, 'another size: asked again');
  t.equal(files.get({ ...item, updated: 2 }), undefined, 'another updated: asked again');
});

t.test('an item seen with no file is asked again', async (t) => {
  const files = new ItemFiles();
  files.fetched({ ...item, size: 0 }, [], 100);
  t.equal(files.get({ ...item, size: 0 }), undefined);
});

t.test('an answer to a request sent before a change made here does not replace it', async (t) => {
  // A listing asked for the item's files; the same-size replace made here ended before the answer
  // arrived, and the answer names the old version.
  const files = new ItemFiles();
  const sentAt = Date.now() - 10;
  files.changedHere(item, [file(2)], true);
  files.fetched(item, [file(1)], sentAt);
  t.same(files.get(item), [file(2)], 'the version this mount uploaded');
  files.fetched(item, [file(3)], Date.now() + 10);
  t.same(files.get(item), [file(3)], 'an answer to a later request replaces it');
});
