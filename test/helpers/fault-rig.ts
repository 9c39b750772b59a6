// One real Girder behind a fault proxy, as the fault tests use it: an admin REST client, the server
// as a mount sees it (through the proxy), a scratch directory, and the proxy cleared and up again
// after each test. Also a shell command timed, for the bounds those tests check.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { rest, type Rest } from './girder-rest.js';
import { startGirder, type GirderServerInfo } from './girder-server.js';
import { run, type RunResult } from './mount.js';

export interface FaultRig {
  readonly info: GirderServerInfo;
  readonly admin: Rest;
  readonly proxy: FaultProxy;
  /** The server as the mount sees it: through the proxy. */
  readonly viaProxy: GirderServerInfo;
  /** A scratch directory, removed at the end. */
  readonly work: string;
}

interface RootTest {
  teardown(fn: () => unknown): void;
  afterEach(fn: () => Promise<void>): void;
}

export async function faultRig(t: RootTest, name: string): Promise<FaultRig> {
  const girder = await startGirder();
  t.teardown(() => girder.stop());
  const info = girder.info;
  const proxy = await startFaultProxy({ upstream: info.apiUrl });
  t.teardown(() => proxy.close());
  const work = await mkdtemp(path.join(tmpdir(), `${name}-`));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  t.afterEach(async () => {
    proxy.clear();
    await proxy.up();
  });
  return { info, admin: rest(girder, 'admin'), proxy, viaProxy: { ...info, apiUrl: proxy.apiUrl }, work };
}

export interface Timed extends RunResult {
  /** Wall time of the command. */
  readonly ms: number;
}

/** `bash -c cmd`, timed. */
export async function timed(cmd: string, timeoutMs: number): Promise<Timed> {
  const started = Date.now();
  const r = await run(cmd, { timeoutMs });
  return { ...r, ms: Date.now() - started };
}
