// Slots (src/vfs/slots.ts): one bound on tasks running at once, shared by every caller, in order.
import t from 'tap';
import { Slots } from '../../src/vfs/slots.js';
import { sleep } from '../helpers/wait.js';

t.test('at most `size` tasks at once over all callers; the rest run in order as slots free', async (t) => {
  const slots = new Slots(3);
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const task = (i: number) => async (): Promise<number> => {
    started.push(i);
    running++;
    most = Math.max(most, running);
    await sleep(5 + (i % 3) * 3);
    running--;
    return i;
  };
  // two callers, as two listings fetched at once
  const a = Promise.all([0, 1, 2, 3, 4].map((i) => slots.run(task(i))));
  const b = Promise.all([5, 6, 7, 8, 9].map((i) => slots.run(task(i))));
  t.same(await a, [0, 1, 2, 3, 4]);
  t.same(await b, [5, 6, 7, 8, 9]);
  t.equal(most, 3, 'never more than 3 at once');
  t.same(started.slice(0, 3), [0, 1, 2], 'the first three start at once');
  t.same([...started].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'every task ran once');
});

t.test('a failing task frees its slot and rejects its caller only', async (t) => {
  const slots = new Slots(1);
  const failed = slots.run(async () => {
    throw new Error('boom');
  });
  const next = slots.run(async () => 'next');
  await t.rejects(failed, /boom/);
  t.equal(await next, 'next');
  t.equal(await slots.run(async () => 'again'), 'again', 'the slot is free again');
});
