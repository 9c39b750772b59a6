// A writer: new files and overwrites of existing ones through the mount, by cp, dd, `cat >`, or
// written beside and renamed over the target (as editors and rsync do). The model learns the new
// SHA-512 when the writing command has exited, i.e. after close.
import { basename } from 'node:path';
import { join, parentDir, type FileEntry } from './model.js';
import { sh } from './children.js';
import { OP_TIMEOUT_MS, pause, running, type SoakContext } from './context.js';

type Method = 'cp' | 'dd' | 'cat' | 'replace';

const COMMANDS: Record<Method, string> = {
  cp: 'cp "$S" "$M/$P"',
  dd: 'dd if="$S" of="$M/$P" bs=$BS status=none',
  cat: 'cat "$S" > "$M/$P"',
  replace: 'cp "$S" "$M/$T" && mv -f "$M/$T" "$M/$P"',
};

let tmpCounter = 0;

export async function writerLoop(ctx: SoakContext): Promise<void> {
  while (running(ctx)) {
    while (running(ctx) && ctx.pendingUploads >= ctx.opts.maxPending) {
      const t = performance.now();
      await new Promise((r) => setTimeout(r, 500));
      ctx.tally.backpressureMs += performance.now() - t;
    }
    if (!running(ctx)) break;
    await writeOnce(ctx);
    await pause(ctx);
  }
}

function wantsNew(ctx: SoakContext): boolean {
  const n = ctx.model.files.size;
  return ctx.random.chance(n < 20 ? 0.7 : n > 60 ? 0.1 : 0.35);
}

async function writeOnce(ctx: SoakContext): Promise<void> {
  const { model, random, tally } = ctx;
  let file: FileEntry | undefined;
  let isNew = wantsNew(ctx);
  if (!isNew) {
    file = random.pick(model.writable());
    if (file === undefined) isNew = true;
    else file.writing = true;
  }
  if (file === undefined) {
    const dir = random.pick(model.usableDirs()) ?? '';
    file = model.addFile(model.newFileName(dir));
  }
  const method = random.weighted<Method>({ cp: 4, dd: 2, cat: 2, replace: 2 });
  const kind = `write ${isNew ? 'new' : 'over'} (${method})`;
  const source = await ctx.sources.next();
  const tmp = join(parentDir(file.path), `.soak-tmp-${++tmpCounter}`);
  const bs = random.pick(['4K', '64K', '128K', '1M', '4M'])!;
  try {
    const r = await sh(COMMANDS[method], { S: source.path, M: ctx.mnt, P: file.path, T: tmp, BS: bs }, OP_TIMEOUT_MS);
    const ok = r.code === 0;
    tally.count(kind, ok, ok ? source.size : 0, r.ms);
    if (ok) {
      file.sha512 = source.sha512;
      file.size = source.size;
      file.version++;
      model.noteWrite(source.sha512, `${file.path} v${file.version} (${method}${source.fresh ? '' : ` of ${basename(source.path)}`}, ${tally.now().toFixed(0)} s)`);
      tally.bytesWritten += source.size;
      return;
    }
    tally.fail({ kind, path: file.path, cmd: `${COMMANDS[method]}  [S=${source.path} size ${source.size}, BS=${bs}]`, code: r.code, timedOut: r.timedOut, stderr: r.stderr });
    if (!ctx.stopped) ctx.log(`FAILED ${kind} ${file.path}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''} ${r.stderr.trim().slice(-300)}`);
    // what was written is unknown now; a later write makes it known again
    file.sha512 = undefined;
    const exists = await sh('rm -f "$M/$T"; test -e "$M/$P"', { M: ctx.mnt, P: file.path, T: tmp }, OP_TIMEOUT_MS);
    if (exists.code !== 0 && isNew) model.files.delete(file.path);
  } finally {
    file.writing = false;
    await ctx.sources.done(source);
  }
}
