import { chmod, mkdir, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import type { MountStatus, UnmountAnswer } from './status.js';

export interface ControlHandlers {
  status(): Promise<MountStatus>;
  unmount(timeoutS: number, force: boolean): Promise<UnmountAnswer>;
}

/** The daemon's owner-only Unix socket: GET /status, POST /unmount?timeout=S&force=1. */
export class ControlServer {
  private constructor(private readonly server: Server, private readonly path: string) {}

  static async listen(path: string, handlers: ControlHandlers, logger: Logger): Promise<ControlServer> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await chmod(dirname(path), 0o700);
    await unlink(path).catch(() => undefined);
    const server = createServer((req, res) => {
      handle(req, res, handlers).catch((err: unknown) => {
        logger.warn({ err: String(err) }, 'control request failed');
        reply(res, 500, { message: String(err) });
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    await chmod(path, 0o600);
    return new ControlServer(server, path);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    setTimeout(() => this.server.closeAllConnections(), 2000).unref();
    await closed;
    await unlink(this.path).catch(() => undefined);
  }
}

async function handle(req: IncomingMessage, res: ServerResponse, handlers: ControlHandlers): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://control');
  if (req.method === 'GET' && url.pathname === '/status') return reply(res, 200, await handlers.status());
  if (req.method === 'POST' && url.pathname === '/unmount') {
    const timeout = Number(url.searchParams.get('timeout') ?? '300');
    const answer = await handlers.unmount(Number.isFinite(timeout) ? timeout : 300, url.searchParams.get('force') === '1');
    return reply(res, answer.unmounted || answer.detached ? 200 : 409, answer);
  }
  reply(res, 404, { message: `no route ${req.method} ${url.pathname}` });
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
