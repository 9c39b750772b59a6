// Summarizes V8 CPU profiles (.cpuprofile, from `npm run bench -- --cpu-prof DIR`): self time by
// function and by file, heaviest first. Usage: node dist/bench/profile-summary.js <file|dir>... [--top N]
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

async function profilesIn(target: string): Promise<string[]> {
  if (!(await stat(target)).isDirectory()) return [target];
  const out: string[] = [];
  for (const entry of await readdir(target, { withFileTypes: true })) {
    const p = path.join(target, entry.name);
    if (entry.isDirectory()) out.push(...(await profilesIn(p)));
    else if (entry.name.endsWith('.cpuprofile')) out.push(p);
  }
  return out;
}

function shortUrl(url: string): string {
  const at = url.search(/\/(dist|node_modules)\//);
  if (at >= 0) return url.slice(at + 1);
  return url.replace(/^file:\/\//, '') || '(native)';
}

function table(title: string, totals: Map<string, number>, all: number, top: number): string {
  const rows = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = rows.map(([k, us]) => `${(us / 1000).toFixed(0).padStart(9)} ms ${((100 * us) / all).toFixed(1).padStart(5)}%  ${k}`);
  return `${title}\n${lines.join('\n')}`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
  if (args.length === 0) throw new Error('usage: profile-summary <file.cpuprofile|dir>... [--top N]');
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  const byOwner = new Map<string, number>();
  let all = 0;
  let wall = 0;
  let files = 0;
  for (const target of args) {
    for (const file of await profilesIn(target)) {
      files++;
      const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
      wall += profile.endTime - profile.startTime;
      const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
      const parents = new Map<number, number>();
      for (const n of profile.nodes) for (const c of n.children ?? []) parents.set(c, n.id);
      // the nearest frame of our code (dist/...) or of a package on the sample's stack
      const ownerOf = (id: number): string => {
        for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
          const url = nodes.get(at)?.url ?? '';
          const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
          if (pkg !== undefined) return `package ${pkg}`;
          if (/\/dist\//.test(url)) return shortUrl(url);
        }
        const frame = nodes.get(id);
        return frame?.url ? 'node internals' : `${frame?.functionName ?? '?'}`;
      };
      profile.samples.forEach((id, i) => {
        const us = profile.timeDeltas[i] ?? 0;
        const frame = nodes.get(id);
        if (frame === undefined) return;
        const where = shortUrl(frame.url);
        const fn = `${frame.functionName || '(anonymous)'}  ${where}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
        byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
        byFile.set(where, (byFile.get(where) ?? 0) + us);
        const owner = ownerOf(id);
        byOwner.set(owner, (byOwner.get(owner) ?? 0) + us);
        all += us;
      });
    }
  }
  const busy = all - (byFunction.get('(idle)  (native)') ?? 0);
  process.stdout.write(
    `${files} profile(s), ${(wall / 1e6).toFixed(1)} s of wall time, ${(busy / 1e6).toFixed(1)} s on the CPU (not idle)\n\n` +
      `${table('self time by function', byFunction, all, top)}\n\n${table('self time by file', byFile, all, top)}\n\n` +
      `${table('time by the nearest caller of ours (dist/) or package on the stack', byOwner, all, top)}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
