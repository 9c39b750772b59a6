import t from 'tap';
import { FsError } from '../../src/errors.js';
import { checkStorableName, safeName, splitPath, suffixed } from '../../src/vfs/names.js';

t.test('safeName maps what the kernel cannot hold', async (t) => {
  t.equal(safeName('plain.txt'), 'plain.txt');
  t.equal(safeName('a/b'), 'a_b');
  t.equal(safeName('.'), '_.');
  t.equal(safeName('..'), '_..');
  t.equal(safeName('tab\there\u0001'), 'tab_here_');
  t.equal(safeName('café'), 'café');
  t.equal(safeName('cafe\u0301'), 'cafe\u0301', 'NFD kept as it is, distinct from NFC');
});

t.test('long names are cut to 255 bytes and stay distinct', async (t) => {
  const a = safeName('é'.repeat(200) + 'a');
  const b = safeName('é'.repeat(200) + 'b');
  t.ok(Buffer.byteLength(a) <= 255);
  t.ok(Buffer.byteLength(b) <= 255);
  t.not(a, b);
  t.equal(safeName('x'.repeat(255)), 'x'.repeat(255));
});

t.test('suffixed keeps the extension', async (t) => {
  t.equal(suffixed('data.csv', '0123456789abcdef01234567'), 'data~234567.csv');
  t.equal(suffixed('README', '0123456789abcdef01234567'), 'README~234567');
  t.equal(suffixed('.hidden', '0123456789abcdef01234567'), '.hidden~234567');
});

t.test('names Girder would change are refused', async (t) => {
  const errno = (name: string): string | undefined => {
    try {
      checkStorableName(name);
      return undefined;
    } catch (err) {
      return err instanceof FsError ? err.errno : 'other';
    }
  };
  t.equal(errno('ok name.txt'), undefined);
  t.equal(errno(' lead'), 'EINVAL');
  t.equal(errno('trail '), 'EINVAL');
  t.equal(errno('bell\u0007'), 'EINVAL');
  t.equal(errno('x'.repeat(256)), 'ENAMETOOLONG');
  t.equal(errno('\uFFFD'.repeat(100)), 'EINVAL', '100 bytes that are not UTF-8: not a name too long (stress-ng probes each byte value in a name of its longest length)');
});

t.test('splitPath', async (t) => {
  t.same(splitPath('/'), []);
  t.same(splitPath('/a/b'), ['a', 'b']);
});
