/** The HTTP connection to one Girder API: token and 401 around two transports, JSON requests, retries, health. */
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { rootCertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import { errorMessage } from '../errors.js';
import { GirderError, isQuickFailure } from './girder-error.js';
import type { Logger } from '../log.js';
import { backoffDelay, sleep } from './backoff.js';
import { Auth, type Credentials } from './auth.js';
import { isObject } from './decode.js';
import type { DirectResponse } from './direct-request.js';
import { isAbort, networkError, responseError } from './failure.js';
import type { DirectSendOptions, HttpMethod, JsonResponse, Query, RequestOptions, SendOptions } from './request-options.js';
import { RequestStats, type ClientStats } from './request-stats.js';
import { isAbsoluteUrl, requestTarget, stripQuery } from './request-target.js';
import { retrying } from './retry.js';
import { ServerHealth } from './server-health.js';
import { SocketTransport } from './socket-transport.js';
import type { DownloadClient, UploadClient } from './transfer-client.js';
import type { Transport, TransportRequest, TransportResponse } from './transport.js';
import { UndiciTransport } from './undici-transport.js';
import type { UserDoc } from './types.js';

export interface ClientOptions {
  apiUrl: string;
  credentials: Credentials;
  timeoutMs: number;
  retries: number;
  caFile?: string;
  logger: Logger;
  /** First retry delay (doubles each retry, plus jitter). Default 250 ms. */
  retryBaseMs?: number;
}

/** Options the client cannot work with: an API URL that is not http(s), an unreadable CA file. */
export class ClientConfigError extends Error {
  override readonly name = 'ClientConfigError';
}

export type { ClientStats } from './request-stats.js';

/** A probe of the server (GET /system/version) waits at most this long, or --timeout if shorter. */
const PROBE_TIMEOUT_MS = 10_000;

export class GirderClient implements DownloadClient, UploadClient {
  readonly apiUrl: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly log: Logger;
  /** Whether the server can be reached; judges failures once watch() was called (server-health.ts). */
  readonly health: ServerHealth;
  private readonly origin: string;
  private readonly basePath: string;
  private readonly host: string;
  private readonly retryBaseMs: number;
  private readonly auth: Auth;
  /** JSON requests and short bodies. */
  private readonly pooled: UndiciTransport;
  /** Long downloads and uploads, and the health probe (socket-transport.ts says why). */
  private readonly sockets: SocketTransport;
  /** Counters, and requests sent and not yet answered (for the log line of an operation given up on). */
  private readonly counters = new RequestStats();

  constructor(options: ClientOptions) {
    let url: URL;
    try {
      url = new URL(options.apiUrl);
    } catch {
      throw new ClientConfigError(`not a URL: ${options.apiUrl}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ClientConfigError(`not an http(s) URL: ${options.apiUrl}`);
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.host = url.host;
    this.apiUrl = this.origin + this.basePath;
    this.timeoutMs = options.timeoutMs;
    this.retries = Math.max(0, options.retries);
    this.retryBaseMs = options.retryBaseMs ?? 250;
    this.auth = new Auth(options.credentials, (r) => this.request(r.method, r.path, {
      ...(r.form !== undefined ? { form: r.form } : {}),
      ...(r.headers !== undefined ? { headers: r.headers } : {}),
      ...(r.idempotent !== undefined ? { idempotent: r.idempotent } : {}),
      auth: false,
    }).then((res) => res.data), options.logger);
    this.log = options.logger;
    const ca = options.caFile === undefined ? undefined : [...rootCertificates, readCaFile(options.caFile)];
    this.pooled = new UndiciTransport(options.timeoutMs, ca);
    this.sockets = new SocketTransport(options.timeoutMs, ca);
    this.health = new ServerHealth({
      host: this.host,
      probe: (ms) => this.probe(ms),
      probeTimeoutMs: Math.min(options.timeoutMs, PROBE_TIMEOUT_MS),
      logger: options.logger,
    });
  }

  /** GET /system/version without credentials: the server's release, or why this is not a Girder API. */
  async checkServer(): Promise<string> {
    const path = '/system/version';
    return this.withRetries(true, undefined, async () => {
      const res = await this.send({ method: 'GET', path, auth: false, headers: { accept: 'application/json' } });
      const contentType = mediaType(res.headers);
      const text = await this.readText(res, undefined);
      if (res.statusCode >= 500) throw responseError('GET', path, res.statusCode, contentType, text);
      const notGirder = (why: string): GirderError =>
        new GirderError(`${this.apiUrl} does not look like a Girder API (GET ${path} ${why})`, res.statusCode, 'not-girder');
      if (res.statusCode !== 200) throw notGirder(`answered ${res.statusCode} ${contentType || 'without a content type'}`);
      let data: unknown;
      try {
        data = JSON.parse(text);
      } catch {
        throw notGirder(`answered ${res.statusCode} ${contentType || 'without a content type'}, not JSON`);
      }
      if (!isObject(data) || typeof data.release !== 'string') throw notGirder('answered JSON without a release');
      return data.release;
    });
  }

  /** Log in with the configured credentials; concurrent callers share one login. */
  login(): Promise<UserDoc> {
    return this.auth.login();
  }

  /** Call `listener` after each successful login (e.g. to retry what the server refused before). Returns its removal. */
  onLogin(listener: () => void): () => void {
    return this.auth.onLogin(listener);
  }

  async get(path: string, query?: Query, options: RequestOptions = {}): Promise<unknown> {
    return (await this.request('GET', path, { ...options, query })).data;
  }

  async post(path: string, query?: Query, options: RequestOptions = {}): Promise<unknown> {
    return (await this.request('POST', path, { ...options, query })).data;
  }

  async put(path: string, query?: Query, options: RequestOptions = {}): Promise<unknown> {
    return (await this.request('PUT', path, { ...options, query })).data;
  }

  async delete(path: string, query?: Query, options: RequestOptions = {}): Promise<unknown> {
    return (await this.request('DELETE', path, { ...options, query })).data;
  }

  /** A JSON request with retries (idempotent ones) and re-login on 401. */
  async request(method: HttpMethod, path: string, options: RequestOptions = {}): Promise<JsonResponse> {
    const idempotent = options.idempotent ?? (method === 'GET' || method === 'HEAD');
    return this.withRetries(idempotent, options.signal, () => this.requestOnce(method, path, options));
  }

  /**
   * Send one request with the current token; on 401 log in again (once for all concurrent
   * callers) and send it once more. The caller must consume or dump the body.
   */
  send(options: SendOptions): Promise<Dispatcher.ResponseData> {
    return this.authorized(options, this.pooled, (token) => this.exchange(this.pooled, options, token, (request) => ({
      ...request,
      body: options.body?.(),
      reset: options.reset === true,
    })));
  }

  /**
   * Like send(), but on a connection of its own whose bodies move without a new buffer per
   * socket read or write (socket-transport.ts): for long downloads and uploads. The caller must
   * read or destroy the body.
   */
  sendDirect(options: DirectSendOptions): Promise<DirectResponse> {
    return this.authorized(options, this.sockets, (token) => this.exchange(this.sockets, options, token, (request) => ({
      ...request,
      method: options.method ?? 'GET',
      body: options.body,
    })));
  }

  /**
   * The 401 path of both transports: send with the current token (API paths only, never to an
   * absolute URL); on 401 drop that answer, log in again (once for all concurrent callers) and
   * send once more.
   */
  private async authorized<R extends TransportResponse>(
    options: { readonly path: string; readonly auth?: boolean | undefined },
    transport: { drop(res: R): unknown },
    dispatch: (token: string | undefined) => Promise<R>,
  ): Promise<R> {
    const withToken = !isAbsoluteUrl(options.path) && options.auth !== false;
    const token = withToken ? await this.auth.currentToken() : undefined;
    const res = await dispatch(token);
    if (res.statusCode !== 401 || !withToken) return res;
    await transport.drop(res);
    await this.auth.refresh(token);
    return dispatch(await this.auth.currentToken());
  }

  /** Run `attempt` again after retryable failures (when `idempotent`), with backoff. */
  withRetries<T>(idempotent: boolean, signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    return retrying({
      retries: idempotent ? this.retries : 0,
      isRetryable: (err): err is GirderError => isQuickFailure(err) && signal?.aborted !== true,
      pause: (failures, err) => this.pauseBeforeRetry(failures, err, signal),
    }, attempt);
  }

  /**
   * Wait the backoff delay before retry number `retry` of a request that failed with `why` (counted
   * and logged), or throw `why` when no retry can help: the server was found unreachable (this
   * waits for the probe that decides it, if one runs).
   */
  async pauseBeforeRetry(retry: number, why: GirderError, signal?: AbortSignal): Promise<void> {
    if ((await this.health.settled()) === 'down') throw why;
    this.counters.countRetry();
    const delay = backoffDelay(retry, this.retryBaseMs);
    this.log.debug({ retry, delayMs: delay, status: why.status, err: why.message }, 'retrying a Girder request');
    await sleep(delay, signal);
  }

  /** Read a response body as text; a cut body becomes a network GirderError. */
  async readText(res: { body: { text(): Promise<string> } }, signal: AbortSignal | undefined): Promise<string> {
    try {
      return await res.body.text();
    } catch (err) {
      this.counters.countError();
      if (isAbort(err, signal)) throw err;
      throw this.noted(networkError(err, this.host, this.timeoutMs));
    }
  }

  countDownloaded(bytes: number): void {
    this.counters.countDownloaded(bytes);
  }

  countUploaded(bytes: number): void {
    this.counters.countUploaded(bytes);
  }

  countError(): void {
    this.counters.countError();
  }

  /** Map a transport failure (not an answer) to a GirderError naming the host. */
  transportError(err: unknown): GirderError {
    return this.noted(networkError(err, this.host, this.timeoutMs));
  }

  stats(): ClientStats {
    return this.counters.snapshot();
  }

  /** Requests waiting for their answer's head, oldest first (at most `max`). */
  inFlight(max = 10): Array<{ method: string; path: string; ageMs: number }> {
    return this.counters.inFlight(max);
  }

  /**
   * Let running requests finish (for at most `graceMs`), then close every connection. Direct
   * connections (streamed reads, which may wait on their reader for ever) are closed at once.
   */
  async close(graceMs = 5_000): Promise<void> {
    this.health.close();
    await this.sockets.close(graceMs);
    await this.pooled.close(graceMs);
  }

  private async requestOnce(method: HttpMethod, path: string, options: RequestOptions): Promise<JsonResponse> {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    let body = options.body;
    if (options.json !== undefined) {
      const text = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
      body = () => text;
    } else if (options.form !== undefined) {
      const text = new URLSearchParams(options.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = () => text;
    }
    let res: Dispatcher.ResponseData | DirectResponse;
    if (options.upload !== undefined) {
      if (method !== 'POST' && method !== 'PUT') throw new Error(`an upload body goes with POST or PUT, not ${method}`);
      res = await this.sendDirect({ method, path, query: options.query, headers, body: options.upload, auth: options.auth, signal: options.signal });
    } else {
      res = await this.send({ method, path, query: options.query, headers, body, auth: options.auth, reset: options.reset, signal: options.signal });
    }
    const contentType = mediaType(res.headers);
    const text = await this.readText(res, options.signal);
    if (res.statusCode < 200 || res.statusCode >= 300) {
      this.counters.countError();
      throw responseError(method, path, res.statusCode, contentType, text);
    }
    if (text === '') return { status: res.statusCode, headers: res.headers, data: null };
    try {
      return { status: res.statusCode, headers: res.headers, data: JSON.parse(text) as unknown };
    } catch {
      this.counters.countError();
      throw new GirderError(
        `${method} ${path} answered ${res.statusCode} ${contentType || 'without a content type'} that is not JSON`,
        res.statusCode,
        'malformed',
      );
    }
  }

  /**
   * What every exchange does around its transport: refuse while the server is down, add the
   * token, count it, track it for inFlight(), tell the health tracker how it went, and turn a
   * transport failure into a GirderError (an abort passes as it is: nobody retries it).
   * `complete` adds what only that transport carries (the body, its options).
   */
  private async exchange<Req extends TransportRequest, Res extends TransportResponse>(
    transport: Transport<Req, Res>,
    options: {
      readonly method?: TransportRequest['method'] | undefined;
      readonly path: string;
      readonly query?: Query | undefined;
      readonly headers?: Record<string, string> | undefined;
      readonly signal?: AbortSignal | undefined;
    },
    token: string | undefined,
    complete: (request: TransportRequest) => Req,
  ): Promise<Res> {
    this.refuseWhileDown();
    const method = options.method ?? 'GET';
    const signal = transport.signalFor(options.signal);
    const { origin, path } = requestTarget(this.origin, this.basePath, options.path, options.query);
    const headers: Record<string, string> = { ...options.headers };
    if (token !== undefined) headers['girder-token'] = token;
    const waiting = this.counters.started(method, stripQuery(path));
    try {
      const res = await transport.send(complete({ method, origin, path, headers, signal }));
      if (this.log.isLevelEnabled('trace')) {
        this.log.trace({ method, path: stripQuery(path), status: res.statusCode, ms: Date.now() - waiting.startedAt }, 'girder request');
      }
      this.noteAnswer(method, path, res.statusCode);
      return res;
    } catch (err) {
      this.counters.countError();
      if (isAbort(err, signal)) throw err;
      throw this.noted(networkError(err, new URL(origin).host, this.timeoutMs));
    } finally {
      this.counters.finished(waiting);
    }
  }

  /** While the server is known to be down, nothing is sent: fail at once. */
  private refuseWhileDown(): void {
    if (!this.health.isDown) return;
    this.counters.countError();
    throw this.health.offlineError();
  }

  /** Tell the health tracker about an answer: a 5xx may mean the server is away, anything else that it is there. */
  private noteAnswer(method: string, path: string, status: number): void {
    if (status >= 500) this.health.failed(new GirderError(`${method} ${stripQuery(path)} answered ${status}`, status, 'http'));
    else this.health.answered();
  }

  /** Tell the health tracker about a transport failure; returns it. */
  private noted(err: GirderError): GirderError {
    this.health.failed(err);
    return err;
  }

  /**
   * GET /system/version without credentials, on a connection of its own (a pool full of slow
   * requests must not make a live server look dead): resolves when it answers 200 in time.
   */
  private async probe(timeoutMs: number): Promise<void> {
    const signal = this.sockets.signalFor(AbortSignal.timeout(timeoutMs));
    const path = this.basePath + '/system/version';
    let res: DirectResponse;
    try {
      res = await this.sockets.send({ method: 'GET', origin: this.origin, path, headers: { accept: 'application/json' }, timeoutMs, signal });
    } catch (err) {
      throw isAbort(err, signal) ? new Error(`no answer within ${timeoutMs} ms`) : networkError(err, this.host, timeoutMs);
    }
    res.body.destroy();
    if (res.statusCode !== 200) throw new Error(`GET /system/version answered ${res.statusCode}`);
  }
}

function readCaFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ClientConfigError(`cannot read the CA file ${file}: ${errorMessage(err)}`);
  }
}

function mediaType(headers: IncomingHttpHeaders): string {
  const value = headers['content-type'];
  return (Array.isArray(value) ? value[0] ?? '' : value ?? '').split(';')[0]?.trim() ?? '';
}
