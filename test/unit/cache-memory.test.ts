// The memory blocks' bound counts the slabs the blocks keep alive, not just the blocks' bytes.
import t from 'tap';
import { MemoryBlocks } from '../../src/vfs/cache/memory-blocks.js';
import { SlabPool } from '../../src/vfs/cache/slab-pool.js';

const KiB = 1024;
const MiB = 1024 * KiB;

t.test('a block alone in a large slab costs the whole slab', async (t) => {
  const pool = new SlabPool([256 * KiB, MiB], 0);
  const memory = new MemoryBlocks(2 * MiB);
  // eight 256 KiB blocks, each the only one of its 1 MiB slab (as small fetches leave them)
  for (let i = 0; i < 8; i++) {
    const slab = pool.take(MiB);
    memory.set(`b${i}`, slab.buf.subarray(0, 256 * KiB), slab);
    slab.release();
  }
  const kept = Array.from({ length: 8 }, (_, i) => memory.has(`b${i}`));
  t.same(kept, [false, false, false, false, false, false, true, true], 'the two newest stay: 2 MiB of slabs');
  t.equal(memory.heldBytes, 2 * MiB);
});

t.test('blocks sharing a slab count it once', async (t) => {
  const pool = new SlabPool([MiB], 0);
  const memory = new MemoryBlocks(2 * MiB);
  for (let s = 0; s < 2; s++) {
    const slab = pool.take(MiB);
    for (let i = 0; i < 4; i++) memory.set(`s${s}b${i}`, slab.buf.subarray(i * 256 * KiB, (i + 1) * 256 * KiB), slab);
    slab.release();
  }
  t.equal(memory.heldBytes, 2 * MiB, 'two slabs of four blocks');
  t.ok(memory.has('s0b0') && memory.has('s1b3'), 'all eight blocks stay');
  memory.delete('s0b0');
  memory.delete('s0b1');
  memory.delete('s0b2');
  t.equal(memory.heldBytes, 2 * MiB, 'a slab counts while one of its blocks is here');
  memory.delete('s0b3');
  t.equal(memory.heldBytes, MiB);
  memory.clear();
  t.equal(memory.heldBytes, 0);
});
