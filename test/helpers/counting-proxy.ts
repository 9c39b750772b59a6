// An HTTP proxy between the mount and Girder that forwards every request unchanged and logs it,
// so tests can count requests by method and path pattern. Subclasses may override intercept()
// to answer a request themselves (fault injection) instead of forwarding it.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  /** 1, 2, 3 ... in arrival order. */
  readonly seq: number;
  readonly method: string;
  /** Path below the API root (e.g. `/item/5f.../files`), without the query string. */
  readonly path: string;
  /** `METHOD /path` with ids replaced: `GET /item/{id}/files`, `GET /file/hashsum/sha512/{hash}`. */
  readonly pattern: string;
  /** The query string without the `?` ('' when none). */
  readonly query: string;
  /** The Range header, when sent. */
  readonly range: string | undefined;
  readonly startedAt: number;
  /** The status sent back; undefined until the answer starts (or when the request failed). */
  status?: number;
  /** Set when forwarding failed (the client then got a 502, or was cut off). */
  error?: string;
  finishedAt?: number;
}

export interface CountingProxyOptions {
  /** Girder's API URL, e.g. http://127.0.0.1:8080/api/v1. */
  target: string;
  /** Port to listen on (default: any free one; after close(), listen() takes the same port again). */
  port?: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Serve https with this key and certificate (PEM) instead of http. */
  tls?: { key: string | Buffer; cert: string | Buffer };
}

const OBJECT_ID = /^[0-9a-f]{24}$/i;
const SHA512 = /^[0-9a-f]{128}$/i;

/** `GET /item/{id}/files` from a method and a path below the API root. */
export function requestPattern(method: string, path: string): string {
  const parts = path.split('/').map((part) => (OBJECT_ID.test(part) ? '{id}' : SHA512.test(part) ? '{hash}' : part));
  return `${method} ${parts.join('/')}`;
}

export class CountingProxy {
  /** Every request so far, in arrival order. */
  readonly log: ProxiedRequest[] = [];
  private readonly targetUrl: URL;
  private readonly basePath: string;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private server: http.Server | undefined;
  private port = 0;

  constructor(private readonly opts: CountingProxyOptions) {
    this.targetUrl = new URL(opts.target);
    if (this.targetUrl.protocol !== 'http:') throw new Error(`CountingProxy forwards to http only, got ${opts.target}`);
    this.basePath = this.targetUrl.pathname.replace(/\/+$/, '');
  }

  static async start(opts: CountingProxyOptions): Promise<CountingProxy> {
    const proxy = new CountingProxy(opts);
    await proxy.listen();
    return proxy;
  }

  /** The API URL to give the mount: this proxy, with Girder's API path. */
  get apiUrl(): string {
    if (this.server === undefined) throw new Error('the proxy is not listening');
    return `${this.origin}${this.basePath}`;
  }

  /** e.g. http://127.0.0.1:41234 (https:// with the tls option). */
  get origin(): string {
    const host = this.opts.host ?? '127.0.0.1';
    return `${this.opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  /** Whether the proxy is listening (false after close()). */
  get listening(): boolean {
    return this.server !== undefined;
  }

  async listen(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    const server = this.opts.tls ? https.createServer({ key: this.opts.tls.key, cert: this.opts.tls.cert }, handler) : http.createServer(handler);
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? this.port, this.opts.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** The log's length now: pass it to since() / counts() to look only at later requests. */
  mark(): number {
    return this.log.length;
  }

  /** Requests logged after `mark`. */
  since(mark = 0): ProxiedRequest[] {
    return this.log.slice(mark);
  }

  /** Requests after `mark`, counted by pattern. */
  counts(mark = 0): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.since(mark)) out.set(r.pattern, (out.get(r.pattern) ?? 0) + 1);
    return out;
  }

  /** Requests after `mark` whose pattern is `pattern` (or that `pattern` accepts). */
  count(pattern: string | ((r: ProxiedRequest) => boolean), mark = 0): number {
    const accept = typeof pattern === 'string' ? (r: ProxiedRequest) => r.pattern === pattern : pattern;
    return this.since(mark).filter(accept).length;
  }

  /** Requests that have not been answered yet. */
  inFlight(): number {
    return this.log.filter((r) => r.finishedAt === undefined).length;
  }

  /** Counts as `pattern: n` lines, for assertion messages. */
  describe(mark = 0): string {
    return [...this.counts(mark).entries()].map(([p, n]) => `${p}: ${n}`).join('\n');
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    this.agent.destroy();
    await closed;
  }

  /**
   * Answer the request here instead of forwarding it: return true after writing `res`. The base
   * proxy forwards everything; a fault-injecting subclass overrides this.
   */
  protected intercept(_record: ProxiedRequest, _req: IncomingMessage, _res: ServerResponse): boolean | Promise<boolean> {
    return false;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const below = url.pathname.startsWith(this.basePath) ? url.pathname.slice(this.basePath.length) : url.pathname;
    const method = req.method ?? 'GET';
    const range = req.headers.range;
    const record: ProxiedRequest = {
      seq: this.log.length + 1,
      method,
      path: below,
      pattern: requestPattern(method, below),
      query: url.search.replace(/^\?/, ''),
      range: Array.isArray(range) ? range[0] : range,
      startedAt: Date.now(),
    };
    this.log.push(record);
    res.once('close', () => (record.finishedAt ??= Date.now()));
    try {
      if (await this.intercept(record, req, res)) {
        record.status ??= res.statusCode;
        return;
      }
    } catch (err) {
      this.fail(record, res, err);
      return;
    }
    this.forward(record, req, res);
  }

  private forward(record: ProxiedRequest, req: IncomingMessage, res: ServerResponse): void {
    const headers = { ...req.headers, host: this.targetUrl.host };
    const upstream = http.request(
      {
        protocol: this.targetUrl.protocol,
        hostname: this.targetUrl.hostname,
        port: this.targetUrl.port,
        method: req.method,
        path: req.url,
        headers,
        agent: this.agent,
      },
      (answer) => {
        record.status = answer.statusCode;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.once('error', (err) => {
          record.error = err.message;
          res.destroy();
        });
      },
    );
    upstream.once('error', (err) => this.fail(record, res, err));
    // the client went away: stop the upstream request too
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  }

  private fail(record: ProxiedRequest, res: ServerResponse, err: unknown): void {
    record.error = err instanceof Error ? err.message : String(err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    record.status = 502;
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ message: `proxy: ${record.error}`, type: 'proxy' }));
  }
}
