// `npm run bench`: starts a real Girder server and girder-mount daemons as child processes, drives
// the mounts with ordinary tools, and compares each figure with a reference measured in the same
// run (curl against the same server, or the local disk). Prints a table; writes JSON to bench/results/.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { repoRoot } from '../test/helpers/girder-server.js';
import { bigCopy } from './cases/big-copy.js';
import { listing } from './cases/listing.js';
import { manyFiles } from './cases/many-files.js';
import { randomRead } from './cases/random.js';
import { sequentialRead } from './cases/sequential.js';
import { smallFiles } from './cases/small-files.js';
import { transportRead } from './cases/transport-read.js';
import { BenchContext, type StartedServer } from './lib/context.js';
import { makeDataSet } from './lib/dataset.js';
import { parseOptions, USAGE } from './lib/options.js';
import { formatTable, hostInfo, RSS_TARGET_MIB, saveResults, summarize, type Results } from './lib/report.js';

async function gitCommit(): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)('git', ['-C', repoRoot(), 'describe', '--always', '--dirty'], { timeout: 10_000 });
    return stdout.trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2), repoRoot());
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exit(2);
  }
  const startedAt = new Date().toISOString();
  const loadAtStart = hostInfo().load1;
  const ctx = await BenchContext.create(opts);
  // the table and the JSON of the rows so far: at the end, or when a signal stops a long run
  const report = async (): Promise<void> => {
    if (ctx.rows.length > 0) {
      const header = [
        `girder-mount benchmark, ${startedAt}, commit ${await gitCommit()}, ${hostInfo().cpus} CPUs, node ${process.version}`,
        `load average (1 min) ${loadAtStart} at the start, ${hostInfo().load1} at the end: other work on the machine skews the figures`,
        `medians of ${opts.runs} run(s); assetstore ${opts.assetstore}; big file ${opts.sizeMiB} MiB; listing and many-files: ${opts.items} items in ${opts.folders} folders, ${opts.listingRuns} run(s); small files: ${opts.smallFiles} x 4 KiB`,
      ];
      const rssOk = ctx.rows.every((r) => summarize(r).rssMet !== false);
      process.stdout.write(`\n${header.join('\n')}\n\n${formatTable(ctx.rows)}\n\n`);
      process.stdout.write(`daemon peak RSS under ${RSS_TARGET_MIB} MiB in every case: ${rssOk ? 'yes' : 'NO'}\n`);
      for (const note of ctx.notes) process.stdout.write(`- ${note}\n`);
      const results: Results = {
        startedAt,
        finishedAt: new Date().toISOString(),
        host: hostInfo(),
        loadAtStart,
        options: { ...opts, only: [...opts.only], commit: await gitCommit() },
        notes: ctx.notes,
        rows: ctx.rows.map((row) => ({ ...row, summary: summarize(row) })),
      };
      const file = await saveResults(opts.resultsDir, 'bench', results);
      process.stdout.write(`\nJSON: ${file}\n`);
    }
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    ctx.log(`${signal}: cleaning up (again to quit at once)`);
    void report()
      .catch((err: unknown) => ctx.log(`report: ${err instanceof Error ? err.message : String(err)}`))
      .then(() => ctx.cleanup())
      .then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const servers: StartedServer[] = [];
  let failed = false;
  try {
    ctx.log(`runs ${opts.runs}, big file ${opts.sizeMiB} MiB, listing and many-files ${opts.items} items in ${opts.folders} folders (${opts.listingRuns} run(s)), cases ${[...opts.only].join(', ')}`);
    const wantsData = ['seq-read', 'random-read', 'big-copy', 'small-files', 'transport-read'].some((c) => opts.only.has(c as never));
    if (wantsData) {
      const data = await makeDataSet(ctx);
      servers.push(data.server);
      const cases = [
        ['seq-read', sequentialRead],
        ['random-read', randomRead],
        ['big-copy', bigCopy],
        ['small-files', smallFiles],
        ['transport-read', transportRead],
      ] as const;
      for (const [name, run] of cases) {
        if (!opts.only.has(name)) continue;
        ctx.log(`case ${name}`);
        await run(ctx, data);
      }
      if (!opts.keep) await data.server.server.stop();
    }
    if (opts.only.has('listing')) {
      ctx.log('case listing');
      await listing(ctx);
    }
    if (opts.only.has('many-files')) {
      ctx.log('case many-files');
      await manyFiles(ctx);
    }
  } catch (err) {
    failed = true;
    ctx.log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }

  await report();
  await ctx.holdKept(servers);
  await ctx.cleanup();
  process.exit(failed ? 1 : 0);
}

void main();
