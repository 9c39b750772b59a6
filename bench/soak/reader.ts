// A reader: the SHA-512 through the mount of a file whose last closed write is known, compared with
// it. The file is held (readers > 0) so no writer, mv or rm starts on it meanwhile.
import { sh } from './children.js';
import { OP_TIMEOUT_MS, pause, running, type SoakContext } from './context.js';

type Method = 'sha512sum' | 'dd' | 'cat';

const COMMANDS: Record<Method, string> = {
  sha512sum: 'sha512sum < "$M/$P"',
  dd: 'dd if="$M/$P" bs=$BS status=none | sha512sum',
  cat: 'cat "$M/$P" | sha512sum',
};

export async function readerLoop(ctx: SoakContext): Promise<void> {
  while (running(ctx)) {
    await readOnce(ctx);
    await pause(ctx);
  }
}

async function readOnce(ctx: SoakContext): Promise<void> {
  const { random, tally } = ctx;
  const file = random.pick(ctx.model.readable());
  if (file === undefined) return;
  const expected = file.sha512!;
  const { version, size, path } = file;
  const method = random.weighted<Method>({ sha512sum: 3, dd: 2, cat: 1 });
  const bs = random.pick(['4K', '128K', '1M', '3M'])!;
  const kind = `read (${method})`;
  file.readers++;
  try {
    const env = { M: ctx.mnt, P: path, BS: bs };
    const r = await sh(COMMANDS[method], env, OP_TIMEOUT_MS);
    const ok = r.code === 0;
    tally.count(kind, ok, ok ? size : 0, r.ms);
    if (!ok) {
      tally.fail({ kind, path, cmd: `${COMMANDS[method]} [BS=${bs}]`, code: r.code, timedOut: r.timedOut, stderr: r.stderr });
      if (!ctx.stopped) ctx.log(`FAILED ${kind} ${path}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''} ${r.stderr.trim().slice(-300)}`);
      return;
    }
    tally.bytesRead += size;
    const got = r.stdout.split(/\s+/)[0] ?? '';
    if (got === expected) return;
    const again = await sh('sha512sum < "$M/$P"', env, OP_TIMEOUT_MS);
    const reread = again.code === 0 ? (again.stdout.split(/\s+/)[0] ?? '') : `error ${again.code}: ${again.stderr.trim()}`;
    const origin = ctx.model.originOf(got);
    tally.mismatch({ where: 'read', path, version, size, expected, got, reread, origin });
    ctx.log(`MISMATCH ${kind} ${path} v${version} (${size} B): expected ${expected.slice(0, 16)}, got ${got.slice(0, 16)} (${origin}), re-read ${reread.slice(0, 16)}`);
    ctx.log(`MISMATCH ${path}, seen now:\n${await ctx.inspect(path)}`);
  } finally {
    file.readers--;
  }
}
