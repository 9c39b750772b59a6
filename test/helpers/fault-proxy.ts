// The counting proxy (counting-proxy.ts) with fault injection, between a client (the mount, or the
// girder layer alone) and a real Girder. Per request pattern (method + a regex on the path with its
// query) it can delay, cut the answer mid-body, drop the request mid-body, reset, answer 5xx or
// 401, answer malformed JSON, redirect or hang; it can expire every token seen so far (as Girder
// does when a token's time is up), and be switched down (every connection refused or reset) and up.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { CountingProxy, type CountingProxyOptions, type ProxiedRequest } from './counting-proxy.js';
import { sleep } from './wait.js';

export type FaultAction =
  /** Hold the request this long, then forward it as usual. */
  | { kind: 'delay'; ms: number }
  /** Answer this status (without forwarding) with a Girder-style JSON error, or `body`. */
  | { kind: 'status'; status: number; body?: string; contentType?: string }
  /** 401 as Girder answers a request whose token expired (without forwarding). */
  | { kind: 'unauthorized' }
  /** Answer `status` (default 200) as application/json with a body that is not JSON (without forwarding). */
  | { kind: 'malformed'; status?: number; body?: string }
  /** Forward, send the answer's head and `afterBytes` bytes of its body (half of a shorter body), then drop the connection. */
  | { kind: 'cut'; afterBytes: number }
  /** Read `afterBytes` (default 64 KiB) of the request body, then drop the connection (nothing forwarded). */
  | { kind: 'drop-request'; afterBytes?: number }
  /** Forward the whole request, then drop the connection instead of answering. */
  | { kind: 'drop-answer' }
  /** Reset the connection (TCP RST) at once, forwarding nothing. */
  | { kind: 'reset' }
  /** Answer 303 to `location`. */
  | { kind: 'redirect'; location: string }
  /** Never answer (the connection stays open until the client gives up). */
  | { kind: 'hang' };

export interface FaultRule {
  readonly method: string | undefined;
  readonly path: RegExp;
  readonly action: FaultAction;
  /** How many more requests it applies to (Infinity: all). */
  remaining: number;
  /** How many requests it applied to. */
  hits: number;
}

/** A request as the client sent it (headers included), with the fault it got. */
export interface SeenRequest {
  method: string;
  /** Path with query, as sent (API prefix included). */
  url: string;
  headers: IncomingMessage['headers'];
  fault?: FaultAction['kind'] | 'down' | 'expired-token';
  /** The counting proxy's record (status, timing). */
  record: ProxiedRequest;
}

export interface FaultProxyOptions extends Omit<CountingProxyOptions, 'target'> {
  /** Girder's API URL (e.g. http://127.0.0.1:8080/api/v1). */
  upstream: string;
  /** Rewrite the path (with query) before forwarding, e.g. to stand for another server. */
  rewritePath?: (url: string) => string;
}

const GIRDER_401 = JSON.stringify({ message: 'You must be logged in.', type: 'access' });

/** Drop a connection abruptly (RST when the platform can). */
function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

function tokenOf(req: IncomingMessage): string | undefined {
  const header = req.headers['girder-token'];
  if (typeof header === 'string' && header !== '') return header;
  return new URL(req.url ?? '/', 'http://x').searchParams.get('token') ?? undefined;
}

export class FaultProxy extends CountingProxy {
  /** Every request, with its headers and fault (clear with `seen.length = 0`). */
  readonly seen: SeenRequest[] = [];
  private readonly rules: FaultRule[] = [];
  private readonly tokensSeen = new Set<string>();
  private readonly expired = new Set<string>();
  private mode: 'up' | 'refuse' | 'reset' = 'up';
  private apiUrlKept = '';
  // No keep-alive for the requests forwarded here: Girder resets a reused socket after refusing an
  // unread body, which would look like an injected fault.
  private readonly faultAgent = new http.Agent({ keepAlive: false });
  private readonly upstream: URL;

  private constructor(private readonly fopts: FaultProxyOptions) {
    super({ ...fopts, target: fopts.upstream });
    this.upstream = new URL(fopts.upstream);
  }

  static override async start(opts: FaultProxyOptions | CountingProxyOptions): Promise<FaultProxy> {
    const fopts: FaultProxyOptions = 'upstream' in opts ? opts : { ...opts, upstream: opts.target };
    const proxy = new FaultProxy(fopts);
    await proxy.listen();
    proxy.apiUrlKept = proxy.apiUrl;
    return proxy;
  }

  /** The API URL through this proxy; also while it is down. */
  override get apiUrl(): string {
    return this.listening ? super.apiUrl : this.apiUrlKept;
  }

  /** Apply `action` to the next `times` (default 1; Infinity: all) requests matching method (undefined: any) and path. */
  on(method: string | undefined, path: RegExp, action: FaultAction, times = 1): FaultRule {
    const rule: FaultRule = { method, path, action, remaining: times, hits: 0 };
    this.rules.push(rule);
    return rule;
  }

  /** Remove every rule and forget expired tokens. */
  clear(): void {
    this.rules.length = 0;
    this.expired.clear();
  }

  /** From now on, every request carrying a token seen so far gets 401, as after expiry. */
  expireTokens(): void {
    for (const t of this.tokensSeen) this.expired.add(t);
  }

  /** Tokens clients sent so far. */
  tokens(): string[] {
    return [...this.tokensSeen];
  }

  /** Requests seen whose method (undefined: any) and path with query match. */
  seenCount(method: string | undefined, path: RegExp): number {
    return this.seen.filter((s) => (method === undefined || s.method === method) && path.test(s.url)).length;
  }

  /** 'refuse': stop listening (connections are refused); 'reset': accept and reset every request. Open connections are dropped. */
  async down(how: 'refuse' | 'reset' = 'refuse'): Promise<void> {
    this.mode = how;
    if (how === 'refuse') await super.close();
  }

  /** Serve again, on the same port. */
  async up(): Promise<void> {
    this.mode = 'up';
    if (!this.listening) await this.listen();
  }

  get isDown(): boolean {
    return this.mode !== 'up';
  }

  override async close(): Promise<void> {
    this.mode = 'refuse';
    this.faultAgent.destroy();
    await super.close();
  }

  protected override async intercept(record: ProxiedRequest, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const seen: SeenRequest = { method, url, headers: req.headers, record };
    this.seen.push(seen);
    if (this.mode !== 'up') {
      seen.fault = 'down';
      resetSocket(req.socket);
      return true;
    }
    const token = tokenOf(req);
    if (token !== undefined && this.expired.has(token)) {
      seen.fault = 'expired-token';
      return this.answer(req, res, 401, 'application/json', GIRDER_401);
    }
    if (token !== undefined) this.tokensSeen.add(token);
    const rule = this.rules.find((r) => r.remaining > 0 && (r.method === undefined || r.method === method) && r.path.test(url));
    if (rule === undefined) return this.rewriting(req, res, url, undefined);
    rule.remaining--;
    rule.hits++;
    const action = rule.action;
    seen.fault = action.kind;
    switch (action.kind) {
      case 'status':
        return this.answer(req, res, action.status, action.contentType ?? 'application/json',
          action.body ?? JSON.stringify({ message: `injected ${action.status}`, type: 'rest' }));
      case 'unauthorized':
        return this.answer(req, res, 401, 'application/json', GIRDER_401);
      case 'malformed':
        return this.answer(req, res, action.status ?? 200, 'application/json', action.body ?? '{"_id": "5f0c0ffee", "name": "trunc');
      case 'redirect':
        req.resume();
        res.writeHead(303, { location: action.location });
        res.end();
        return true;
      case 'hang':
        req.resume();
        return true;
      case 'reset':
        resetSocket(req.socket);
        return true;
      case 'drop-request': {
        const limit = action.afterBytes ?? 64 * 1024;
        let got = 0;
        req.on('data', (chunk: Buffer) => {
          got += chunk.length;
          if (got >= limit) resetSocket(req.socket);
        });
        req.on('end', () => resetSocket(req.socket));
        return true;
      }
      case 'delay':
        await sleep(action.ms);
        if (req.socket.destroyed || this.mode !== 'up') {
          resetSocket(req.socket);
          return true;
        }
        return this.rewriting(req, res, url, undefined);
      case 'cut':
      case 'drop-answer':
        return this.rewriting(req, res, url, action);
    }
  }

  /**
   * Answer once the request body is read, as Girder behind nginx (which reads whole requests)
   * does. Answering first and closing would race the client's writes: its next write can meet the
   * reset before it reads the answer, and a 401 would then look like a dropped connection.
   */
  private answer(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string): true {
    req.on('end', () => {
      res.writeHead(status, { 'content-type': contentType });
      res.end(body);
    });
    req.resume();
    return true;
  }

  /** Forward here (not in the base) when the answer is to be cut or dropped, or the path rewritten. */
  private rewriting(req: IncomingMessage, res: ServerResponse, url: string, action: FaultAction | undefined): boolean {
    const target = this.fopts.rewritePath ? this.fopts.rewritePath(url) : url;
    if (action === undefined && target === url) return false; // the base forwards it
    const headers = { ...req.headers, host: this.upstream.host };
    delete headers.connection;
    const up = http.request(
      { hostname: this.upstream.hostname, port: this.upstream.port, method: req.method, path: target, headers, agent: this.faultAgent },
      (upRes) => {
        if (action?.kind === 'drop-answer') {
          upRes.resume();
          upRes.on('end', () => resetSocket(req.socket));
          return;
        }
        const answerHeaders = { ...upRes.headers };
        delete answerHeaders.connection;
        res.writeHead(upRes.statusCode ?? 502, answerHeaders);
        if (action?.kind !== 'cut') {
          upRes.pipe(res);
          return;
        }
        // A body no longer than afterBytes is cut in its middle, so the cut always happens.
        const length = Number(upRes.headers['content-length']);
        const limit = length > 0 && length <= action.afterBytes ? Math.floor(length / 2) : action.afterBytes;
        let sent = 0;
        if (limit <= 0) {
          res.flushHeaders();
          upRes.resume();
          setTimeout(() => resetSocket(req.socket), 20);
          return;
        }
        upRes.on('data', (chunk: Buffer) => {
          const room = limit - sent;
          if (room <= 0) return;
          sent += Math.min(room, chunk.length);
          const last = sent >= limit;
          // Drop the connection once the bytes are handed to the kernel, so they all arrive.
          res.write(chunk.subarray(0, room), () => {
            if (last) setTimeout(() => resetSocket(req.socket), 20);
          });
        });
        // Never leave the client waiting for bytes that will not come.
        upRes.on('end', () => {
          if (sent < limit) setTimeout(() => resetSocket(req.socket), 20);
        });
      },
    );
    up.on('error', () => resetSocket(req.socket));
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
    return true;
  }
}

/** Starts a fault proxy in front of Girder's API URL. */
export function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  return FaultProxy.start(opts);
}
