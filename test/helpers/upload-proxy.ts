// An HTTP proxy between a mount and Girder that sees the upload traffic: it counts the bytes of
// upload bodies (independently of the daemon's own counters), can slow them to a given rate, and
// can hold upload chunks at a gate until the test opens it. Everything else passes unchanged.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Requests that carry file bytes: `POST /file/chunk`, and `POST /file` (whose body may be a first chunk). */
export function isUploadRequest(method: string, url: string): boolean {
  if (method !== 'POST') return false;
  const path = url.split('?')[0] ?? '';
  return /\/file\/chunk$/.test(path) || /\/file$/.test(path);
}

export interface UploadProxy {
  /** The API URL to give the mount (same path as Girder's, another port). */
  readonly apiUrl: string;
  /** Upload body bytes that reached the proxy from clients since the start (or the last resetCount). */
  bytes(): number;
  resetCount(): void;
  /** Upload requests the proxy has received (held ones included) since the start or the last resetCount. */
  uploadRequests(): number;
  /** Upload requests waiting at the closed gate right now. */
  held(): number;
  /** Hold upload chunks before forwarding them until open() (or until their client goes away). */
  close(): void;
  open(): void;
  /** Forward upload bodies at most this fast (bytes per second); undefined: as fast as they come. */
  setRate(bytesPerSecond: number | undefined): void;
  stop(): Promise<void>;
}

/** Passes bytes through no faster than `rate()` bytes per second (measured from its first byte). */
class Throttle extends Transform {
  private started = 0;
  private passed = 0;

  constructor(private readonly rate: () => number | undefined, private readonly onBytes: (n: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.onBytes(chunk.length);
    const rate = this.rate();
    if (rate === undefined) {
      done(null, chunk);
      return;
    }
    if (this.passed === 0) this.started = Date.now();
    this.passed += chunk.length;
    const due = this.started + (this.passed / rate) * 1000;
    setTimeout(() => done(null, chunk), Math.max(0, due - Date.now()));
  }
}

export async function startUploadProxy(upstreamApiUrl: string): Promise<UploadProxy> {
  const upstream = new URL(upstreamApiUrl);
  let counted = 0;
  let requests = 0;
  let rate: number | undefined;
  let gate: { promise: Promise<void>; open: () => void } | undefined;
  let waiting = 0;
  const sockets = new Set<import('node:net').Socket>();

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const upload = isUploadRequest(method, url);
    if (upload) requests++;
    let clientGone = false;
    req.once('close', () => {
      if (!req.complete) clientGone = true;
    });

    const forward = (): void => {
      if (clientGone) return;
      const up = http.request(
        { host: upstream.hostname, port: upstream.port, method, path: url, headers: { ...req.headers, host: upstream.host } },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          pipeline(upRes, res).catch(() => res.destroy());
        },
      );
      up.on('error', () => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: 'proxy: upstream failed', type: 'rest' }));
      });
      // A client that goes away mid-body (kill -9) must not leave a complete-looking request upstream.
      req.once('close', () => {
        if (!req.complete) up.destroy();
      });
      const body = upload ? req.pipe(new Throttle(() => rate, (n) => (counted += n))) : req;
      body.pipe(up);
    };

    if (upload && gate !== undefined) {
      waiting++;
      const release = (): void => {
        waiting--;
        forward();
      };
      void gate.promise.then(release);
    } else {
      forward();
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    apiUrl: `http://127.0.0.1:${port}${upstream.pathname.replace(/\/+$/, '')}`,
    bytes: () => counted,
    resetCount: () => {
      counted = 0;
      requests = 0;
    },
    uploadRequests: () => requests,
    held: () => waiting,
    close: () => {
      if (gate !== undefined) return;
      let open!: () => void;
      const promise = new Promise<void>((resolve) => (open = resolve));
      gate = { promise, open };
    },
    open: () => {
      gate?.open();
      gate = undefined;
    },
    setRate: (bytesPerSecond) => {
      rate = bytesPerSecond;
    },
    stop: async () => {
      gate?.open();
      gate = undefined;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
