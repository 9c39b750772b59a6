import t from 'tap';
import { fuseOptionString, escapeOptionValue, type MountOptions } from '../../src/fuse/mount-options.js';
import { parseProcMounts, unescapeMountField } from '../../src/fuse/proc-mounts.js';

const base: MountOptions = {
  readOnly: false, allowOther: false, uid: 1000, gid: 100, attrTimeoutS: 1, fsName: 'girder:abc',
};

t.test('the -o string', async (t) => {
  const s = fuseOptionString(base);
  t.match(s, /^-o/);
  const opts = s.slice(2).split(',');
  t.same(opts, [
    'fsname=girder:abc', 'subtype=girder-mount', 'default_permissions', 'big_writes', 'max_read=131072',
    'auto_cache', 'atomic_o_trunc', 'entry_timeout=1', 'attr_timeout=1', 'negative_timeout=1',
    'uid=1000', 'gid=100',
  ]);
});

t.test('ro, allow_other, debug, 0 timeouts kept, max_read, uid 0', async (t) => {
  const opts = fuseOptionString({ ...base, readOnly: true, allowOther: true, debug: true, attrTimeoutS: 0, uid: 0, gid: 0, maxReadBytes: 65536 }).slice(2).split(',');
  for (const o of ['ro', 'allow_other', 'debug', 'entry_timeout=0', 'attr_timeout=0', 'negative_timeout=0', 'max_read=65536', 'uid=0', 'gid=0']) {
    t.ok(opts.includes(o), o);
  }
  t.notOk(fuseOptionString(base, { bigWrites: false }).includes('big_writes'));
  t.ok(fuseOptionString({ ...base, attrTimeoutS: 0.5 }).includes('attr_timeout=0.5'));
});

t.test('commas in fsname are escaped; bad values refused', async (t) => {
  t.equal(escapeOptionValue('a,b\\c'), 'a\\,b\\\\c');
  t.ok(fuseOptionString({ ...base, fsName: 'x,allow_other' }).includes('fsname=x\\,allow_other,'));
  t.throws(() => fuseOptionString({ ...base, attrTimeoutS: -1 }), RangeError);
  t.throws(() => fuseOptionString({ ...base, attrTimeoutS: NaN }), RangeError);
  t.throws(() => fuseOptionString({ ...base, uid: -1 }), RangeError);
  t.throws(() => fuseOptionString({ ...base, maxReadBytes: 100 }), RangeError);
  t.throws(() => fuseOptionString({ ...base, fsName: 'x'.repeat(1000) }), /shorten fsName/);
});

t.test('/proc/mounts parsing', async (t) => {
  t.equal(unescapeMountField('a\\040b\\011c\\134d\\012e'), 'a b\tc\\d\ne');
  t.equal(unescapeMountField('caf\\303\\251'), 'café');
  t.equal(unescapeMountField('plain'), 'plain');
  const text = [
    'proc /proc proc rw,nosuid 0 0',
    'girder:a,b\\134c\\040d /tmp/my\\040mnt fuse.girder-mount rw,nosuid,nodev,user_id=0 0 0',
    '',
  ].join('\n');
  const entries = parseProcMounts(text);
  t.equal(entries.length, 2);
  t.same(entries[1], { source: 'girder:a,b\\c d', mountPoint: '/tmp/my mnt', type: 'fuse.girder-mount', options: ['rw', 'nosuid', 'nodev', 'user_id=0'] });
});
