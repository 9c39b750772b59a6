// A Girder server with a counting proxy in front of it, and timed steps through that proxy: each
// adds its time to a row's samples, its requests to a tally, and a daemon's RSS and CPU to its
// Measured.
import { CountingProxy } from '../../test/helpers/counting-proxy.js';
import { waitFor } from '../../test/helpers/wait.js';
import type { BenchContext, StartedServer } from './context.js';
import type { MountUnderTest } from './mount-under-test.js';
import type { CurlTarget } from './curl.js';
import type { Measured } from './measured.js';
import type { RequestTally } from './requests.js';

/** A daemon to watch over a step: its peak RSS and CPU go to `measured`. */
export interface Watched {
  measured: Measured;
  mount: MountUnderTest;
}

export class ProxiedServer {
  private constructor(
    private readonly ctx: BenchContext,
    readonly started: StartedServer,
    readonly proxy: CountingProxy,
  ) {}

  static async start(ctx: BenchContext, listingPlugin = false): Promise<ProxiedServer> {
    const started = await ctx.startServer({ listingPlugin });
    const proxy = await CountingProxy.start({ target: started.server.info.apiUrl });
    ctx.onCleanup(() => proxy.close());
    return new ProxiedServer(ctx, started, proxy);
  }

  get apiUrl(): string {
    return this.proxy.apiUrl;
  }

  /** The admin's API key (for clients that log in with one). */
  get apiKey(): string {
    return this.started.server.info.admin.apiKey;
  }

  get curl(): CurlTarget {
    return { apiUrl: this.proxy.apiUrl, token: this.started.token, work: this.ctx.work };
  }

  /** A fresh mount of `folderId` (empty cache) through the proxy. */
  mount(folderId: string, label: string, args: string[] = []): Promise<MountUnderTest> {
    return this.ctx.mount(this.started.server, folderId, label, { apiUrl: this.proxy.apiUrl, args });
  }

  /**
   * Times `work` once the server and the proxy are idle and pushes its seconds to `samples`; counts
   * the requests it made into `tally` (once they all ended), and the RSS and CPU of `daemon`.
   */
  async step(samples: number[], work: () => Promise<number>, tally?: RequestTally, daemon?: Watched): Promise<number> {
    await this.ctx.quiesce(this.started.server.info.pid);
    await this.settle();
    const mark = this.proxy.mark();
    const seconds = daemon === undefined ? await work() : await daemon.measured.watch(daemon.mount.mount.pid, work);
    samples.push(seconds);
    await this.settle();
    tally?.add(this.proxy, mark);
    return seconds;
  }

  async stop(): Promise<void> {
    await this.proxy.close();
    await this.started.server.stop();
  }

  private async settle(): Promise<void> {
    await waitFor(() => this.proxy.inFlight() === 0, { timeoutMs: 120_000, what: 'the proxy to go idle' });
  }
}
