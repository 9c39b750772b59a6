// mkdir, mv of files (to a new name, or over another file), mv of directories, rm, rm -r and ls -lR
// through the mount, on entries nobody else is using.
import { sh, type ShellResult } from './children.js';
import { OP_TIMEOUT_MS, pause, running, type SoakContext } from './context.js';
import type { FileEntry } from './model.js';

type Op = 'mkdir' | 'mv' | 'mv-over' | 'rm' | 'mv-dir' | 'rm-r' | 'ls-lR';

const MAX_DIRS = 12;
const MAX_DEPTH = 3;

/** One namespace operation at a time: a mv of a directory must not race a move into it. */
let turn: Promise<void> = Promise.resolve();

export async function namespaceLoop(ctx: SoakContext): Promise<void> {
  while (running(ctx)) {
    const mine = turn.then(() => oneOp(ctx));
    turn = mine.catch(() => undefined);
    await mine;
    await pause(ctx, ctx.opts.pauseMs * 2);
  }
}

async function run(ctx: SoakContext, kind: Op, path: string, cmd: string, env: Record<string, string>): Promise<boolean> {
  const r: ShellResult = await sh(cmd, { M: ctx.mnt, ...env }, OP_TIMEOUT_MS);
  const ok = r.code === 0;
  ctx.tally.count(kind, ok, 0, r.ms);
  if (!ok) {
    ctx.tally.fail({ kind, path, cmd: `${cmd} ${JSON.stringify(env)}`, code: r.code, timedOut: r.timedOut, stderr: r.stderr });
    if (!ctx.stopped) ctx.log(`FAILED ${kind} ${path}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''} ${r.stderr.trim().slice(-300)}`);
  }
  return ok;
}

async function exists(ctx: SoakContext, path: string): Promise<boolean> {
  return (await sh('test -e "$M/$P"', { M: ctx.mnt, P: path }, OP_TIMEOUT_MS)).code === 0;
}

async function oneOp(ctx: SoakContext): Promise<void> {
  const { model, random } = ctx;
  const files = model.files.size;
  const dirs = model.dirs.size;
  const op = random.weighted<Op>({
    mkdir: dirs < MAX_DIRS ? 2 : 0,
    mv: 3,
    'mv-over': 1,
    rm: files > 15 ? 2 : 0,
    'mv-dir': 1,
    'rm-r': dirs > 4 ? 0.5 : 0,
    'ls-lR': 1,
  });
  switch (op) {
    case 'mkdir': {
      const parent = random.pick(model.usableDirs().filter((d) => model.depth(d) < MAX_DEPTH - 1));
      if (parent === undefined) return;
      const p = model.newDirName(parent);
      const entry = { path: p, busy: true };
      model.dirs.set(p, entry);
      const ok = await run(ctx, op, p, 'mkdir "$M/$P"', { P: p });
      entry.busy = false;
      if (!ok && !(await exists(ctx, p))) model.dirs.delete(p);
      return;
    }
    case 'mv': {
      const file = random.pick(model.idle());
      const dir = random.pick(model.usableDirs());
      if (file === undefined || dir === undefined) return;
      const to = model.newFileName(dir);
      return moveFile(ctx, op, file, to, undefined);
    }
    case 'mv-over': {
      const idle = model.idle();
      const file = random.pick(idle);
      const over = random.pick(idle.filter((f) => f !== file));
      if (file === undefined || over === undefined) return;
      return moveFile(ctx, op, file, over.path, over);
    }
    case 'rm': {
      const file = random.pick(model.idle());
      if (file === undefined) return;
      file.busy = true;
      const ok = await run(ctx, op, file.path, 'rm "$M/$P"', { P: file.path });
      file.busy = false;
      if (ok || !(await exists(ctx, file.path))) model.files.delete(file.path);
      return;
    }
    case 'mv-dir': {
      const dir = random.pick(model.idleSubtrees());
      if (dir === undefined) return;
      const height = Math.max(0, ...model.dirsUnder(dir.path).map((d) => model.depth(d.path) - model.depth(dir.path)));
      const parents = model
        .usableDirs()
        .filter((p) => p !== dir.path && !p.startsWith(dir.path + '/') && model.depth(p) + 1 + height <= MAX_DEPTH);
      const parent = random.pick(parents);
      if (parent === undefined) return;
      const to = model.newDirName(parent);
      dir.busy = true;
      const from = dir.path;
      const ok = await run(ctx, op, from, 'mv "$M/$F" "$M/$T"', { F: from, T: to });
      if (ok || (!(await exists(ctx, from)) && (await exists(ctx, to)))) model.moveDir(from, to);
      dir.busy = false;
      return;
    }
    case 'rm-r': {
      const dir = random.pick(model.idleSubtrees().filter((d) => model.filesUnder(d.path).length <= 8));
      if (dir === undefined) return;
      dir.busy = true;
      const ok = await run(ctx, op, dir.path, 'rm -r "$M/$P"', { P: dir.path });
      dir.busy = false;
      if (ok || !(await exists(ctx, dir.path))) model.removeTree(dir.path);
      else ctx.log(`rm -r ${dir.path} failed and left it there; its content is no longer known`);
      if (!ok) for (const f of model.filesUnder(dir.path)) f.sha512 = undefined;
      return;
    }
    case 'ls-lR':
      await run(ctx, op, '', 'ls -lR "$M" > /dev/null', {});
      return;
  }
}

async function moveFile(ctx: SoakContext, kind: Op, file: FileEntry, to: string, over: FileEntry | undefined): Promise<void> {
  const { model } = ctx;
  file.busy = true;
  if (over !== undefined) over.busy = true;
  const from = file.path;
  try {
    const ok = await run(ctx, kind, from, 'mv -f "$M/$F" "$M/$T"', { F: from, T: to });
    if (ok || (!(await exists(ctx, from)) && (await exists(ctx, to)))) {
      if (over !== undefined) model.files.delete(over.path);
      model.moveFile(file, to);
    } else if (over !== undefined) {
      over.sha512 = undefined; // may or may not have been replaced
    }
  } finally {
    file.busy = false;
    if (over !== undefined) over.busy = false;
  }
}
