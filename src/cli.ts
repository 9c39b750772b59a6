#!/usr/bin/env node
import './heap-at-start.js'; // first: see the file
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { buildConfig, SECRET_ENV, type MountArgs } from './config.js';
import { runMount } from './daemon.js';
import { UsageError, errorMessage } from './errors.js';
import { runStatus, runUnmount } from './commands.js';
import { scrubInitialEnviron } from './scrub-environ.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** Options of the mount command; each can also be set as GIRDER_MOUNT_<NAME> in the environment. */
const MOUNT_OPTIONS = {
  'api-url': { type: 'string', describe: 'Girder API URL, e.g. https://girder.example.org/api/v1' },
  'api-key-file': { type: 'string', describe: 'file holding a Girder API key (else env GIRDER_API_KEY)' },
  'username': { type: 'string', describe: 'log in with a password (env GIRDER_PASSWORD or a prompt)' },
  'attr-ttl': { type: 'number', default: 5, describe: 'seconds listings and attributes are trusted (0 = always ask)' },
  'cache-dir': { type: 'string', describe: 'private cache directory (default ~/.cache/girder-mount/<folderId>, /var/cache/girder-mount/<folderId> for root)' },
  'cache-max-size': { type: 'string', describe: 'byte cap of the read cache, e.g. 20G (default 10% of the free space)' },
  'read-only': { type: 'boolean', default: false, alias: 'ro', describe: 'refuse every change (EROFS)' },
  'sync-uploads': { type: 'boolean', default: false, describe: 'close() waits until Girder has the file' },
  'allow-other': { type: 'boolean', default: false, describe: 'let other users use the mount (needs user_allow_other in /etc/fuse.conf unless root)' },
  'uid': { type: 'number', describe: 'owner shown for every file (default: yours)' },
  'gid': { type: 'number', describe: 'group shown for every file (default: yours)' },
  'umask': { type: 'string', describe: 'permission bits to clear, octal (default 022)' },
  'timeout': { type: 'number', default: 30, describe: 'seconds Girder may stay silent before a request is given up (not sent again); an operation waiting on it fails with EIO within this + 2 s, retries included' },
  'retries': { type: 'number', default: 5, describe: 'resends of a read-only request that failed quickly (refused, reset, cut, 5xx), 0.25 s, 0.5 s, 1 s... apart; none while Girder is unreachable' },
  'ca-file': { type: 'string', describe: 'extra CA certificate (PEM) to trust for https' },
  'drain-timeout': { type: 'number', default: 120, describe: 'seconds to wait for pending uploads on SIGTERM' },
  'log-level': { type: 'string', default: 'info', describe: 'trace, debug, info, warn, error or silent' },
} as const;

/** GIRDER_MOUNT_* names the mount command takes (its options and positionals). */
const MOUNT_ENV = new Set(
  [...Object.keys(MOUNT_OPTIONS), 'folder-id', 'mountpoint'].map((k) => 'GIRDER_MOUNT_' + k.toUpperCase().replace(/-/g, '_')),
);

/**
 * Unknown GIRDER_MOUNT_* variables (other tools' settings, typos) would fail the strict option check:
 * warn and drop them instead.
 */
function dropUnknownEnv(): void {
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('GIRDER_MOUNT_') && !MOUNT_ENV.has(name)) {
      process.stderr.write(`girder-mount: warning: ignoring ${name}: no such option\n`);
      delete process.env[name];
    }
  }
}

/** Ask on the terminal without echo; undefined when there is no terminal to ask on. */
async function askPassword(prompt: string): Promise<string | undefined> {
  if (!process.stdin.isTTY) return undefined;
  process.stderr.write(prompt);
  const muted = new Writable({ write: (_c, _e, done) => done() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  const answer = await new Promise<string>((resolve) => rl.question('', resolve));
  rl.close();
  process.stderr.write('\n');
  return answer;
}

function fail(err: unknown): never {
  const code = err instanceof UsageError ? err.exitCode : 1;
  process.stderr.write(`girder-mount: ${errorMessage(err)}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  const env = { ...process.env };
  for (const name of SECRET_ENV) delete process.env[name];
  dropUnknownEnv();
  // unsetenv leaves the bytes where /proc/<pid>/environ shows them
  await scrubInitialEnviron(SECRET_ENV);

  await yargs(hideBin(process.argv))
    .scriptName('girder-mount')
    .command(
      '$0 <folderId> <mountpoint>',
      'mount a Girder folder (runs in the foreground until SIGINT/SIGTERM)',
      (y) =>
        y
          // Only the mount reads GIRDER_MOUNT_* (a unit's settings are in the environment of ExecStop too).
          .env('GIRDER_MOUNT')
          .positional('folderId', { type: 'string', demandOption: true, describe: 'id of the Girder folder to mount' })
          .positional('mountpoint', { type: 'string', demandOption: true, describe: 'an empty local directory' })
          .options(MOUNT_OPTIONS),
      async (argv) => {
        const config = await buildConfig(argv as unknown as MountArgs, env, askPassword);
        process.exitCode = await runMount(config);
      },
    )
    .command(
      'status <mountpoint>',
      'show every closed file not yet on the server (uploading, queued, waiting: <reason>, failed: <reason>, kept at <path>), cache and request counts; exit 0 when nothing waits or failed, 3 when an upload waits, 4 when one failed (kept in lost+found)',
      (y) => y.positional('mountpoint', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false, describe: 'the same as JSON (same exit code)' }),
      async (argv) => {
        process.exitCode = await runStatus(argv.mountpoint, argv.json);
      },
    )
    .command(
      'unmount <mountpoint>',
      'wait for pending uploads, then unmount',
      (y) =>
        y
          .positional('mountpoint', { type: 'string', demandOption: true })
          .option('timeout', { type: 'number', default: 300, describe: 'seconds to wait for pending uploads' })
          .option('force', { type: 'boolean', default: false, describe: 'unmount even if uploads are pending (they resume at the next start)' }),
      async (argv) => {
        process.exitCode = await runUnmount(argv.mountpoint, argv.timeout, argv.force);
      },
    )
    .strictOptions()
    .version(version)
    .help()
    .fail((msg, err) => {
      if (err !== undefined && err !== null) fail(err);
      fail(new UsageError(`${msg} (see girder-mount --help)`));
    })
    .parseAsync();
}

main().catch(fail);
