/** The HTTP connection to one Girder API: the two transports (undici agent, own sockets), JSON requests, retries, counters. */
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import { errorMessage } from '../errors.js';
import { GirderError, isQuickFailure } from './girder-error.js';
import type { Logger } from '../log.js';
import { backoffDelay, sleep } from './backoff.js';
import { Auth, type Credentials } from './auth.js';
import { isObject } from './decode.js';
import { directRequest, type DirectResponse } from './direct-request.js';
import { isAbort, networkError, responseError } from './failure.js';
import type { DirectSendOptions, HttpMethod, JsonResponse, Query, RequestOptions, SendOptions } from './request-options.js';
import { retrying } from './retry.js';
import { ServerHealth } from './server-health.js';
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

export interface ClientStats {
  requests: number;
  errors: number;
  retries: number;
  bytesDownloaded: number;
  bytesUploaded: number;
}

/** A probe of the server (GET /system/version) waits at most this long, or --timeout if shorter. */
const PROBE_TIMEOUT_MS = 10_000;

export class GirderClient {
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
  private readonly agent: Agent;
  /** Trusted certificates when a CA file was given (for connections made outside the agent). */
  private readonly ca: string[] | undefined;
  /** Aborted by close(): ends the connections made outside the agent (sendDirect). */
  private readonly closing = new AbortController();
  private readonly counters: ClientStats = { requests: 0, errors: 0, retries: 0, bytesDownloaded: 0, bytesUploaded: 0 };
  /** Requests sent and not yet answered (their heads), for the log line of an operation given up on. */
  private readonly waiting = new Set<{ readonly method: string; readonly path: string; readonly startedAt: number }>();

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
    const connect: { timeout: number; ca?: string[] } = { timeout: options.timeoutMs };
    if (options.caFile !== undefined) connect.ca = [...rootCertificates, readCaFile(options.caFile)];
    this.ca = connect.ca;
    // Each direct connection listens to it while open; past 10 Node would warn of a leak.
    setMaxListeners(0, this.closing.signal);
    this.health = new ServerHealth({
      host: this.host,
      probe: (ms) => this.probe(ms),
      probeTimeoutMs: Math.min(options.timeoutMs, PROBE_TIMEOUT_MS),
      logger: options.logger,
    });
    this.agent = new Agent({
      connections: 32,
      pipelining: 1,
      keepAliveTimeout: 4_000, // below uvicorn's 5 s, so the server never closes a socket we are about to reuse
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connect,
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
    return this.authorized(options, (res) => res.body.dump().catch(() => undefined), (token) => this.dispatch(options, token));
  }

  /**
   * Like send(), but on a connection of its own whose bodies move without a new buffer per
   * socket read or write (direct-request.ts): for long downloads and uploads. The caller must
   * read or destroy the body.
   */
  sendDirect(options: DirectSendOptions): Promise<DirectResponse> {
    return this.authorized(options, (res) => res.body.destroy(), (token) => this.dispatchDirect(options, token));
  }

  /**
   * The 401 path of both transports: send with the current token (API paths only, never to an
   * absolute URL); on 401 drop that answer, log in again (once for all concurrent callers) and
   * send once more.
   */
  private async authorized<R extends { readonly statusCode: number }>(
    options: { readonly path: string; readonly auth?: boolean | undefined },
    drop: (res: R) => unknown,
    dispatch: (token: string | undefined) => Promise<R>,
  ): Promise<R> {
    const withToken = !/^https?:\/\//i.test(options.path) && options.auth !== false;
    const token = withToken ? await this.auth.currentToken() : undefined;
    const res = await dispatch(token);
    if (res.statusCode !== 401 || !withToken) return res;
    await drop(res);
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
    this.counters.retries++;
    const delay = backoffDelay(retry, this.retryBaseMs);
    this.log.debug({ retry, delayMs: delay, status: why.status, err: why.message }, 'retrying a Girder request');
    await sleep(delay, signal);
  }

  /** Read a response body as text; a cut body becomes a network GirderError. */
  async readText(res: { body: { text(): Promise<string> } }, signal: AbortSignal | undefined): Promise<string> {
    try {
      return await res.body.text();
    } catch (err) {
      this.counters.errors++;
      if (isAbort(err, signal)) throw err;
      throw this.noted(networkError(err, this.host, this.timeoutMs));
    }
  }

  countDownloaded(bytes: number): void {
    this.counters.bytesDownloaded += bytes;
  }

  countUploaded(bytes: number): void {
    this.counters.bytesUploaded += bytes;
  }

  countError(): void {
    this.counters.errors++;
  }

  /** Map a transport failure (not an answer) to a GirderError naming the host. */
  transportError(err: unknown): GirderError {
    return this.noted(networkError(err, this.host, this.timeoutMs));
  }

  stats(): ClientStats {
    return { ...this.counters };
  }

  /** Requests waiting for their answer's head, oldest first (at most `max`). */
  inFlight(max = 10): Array<{ method: string; path: string; ageMs: number }> {
    const now = Date.now();
    return [...this.waiting].slice(0, max).map((r) => ({ method: r.method, path: r.path, ageMs: now - r.startedAt }));
  }

  /**
   * Let running requests finish (for at most `graceMs`), then close every connection. Direct
   * connections (streamed reads, which may wait on their reader for ever) are closed at once.
   */
  async close(graceMs = 5_000): Promise<void> {
    this.health.close();
    this.closing.abort();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    try {
      if ((await Promise.race([this.agent.close().then(() => 'closed' as const), late])) === 'late') await this.agent.destroy();
    } finally {
      clearTimeout(timer);
    }
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
      this.counters.errors++;
      throw responseError(method, path, res.statusCode, contentType, text);
    }
    if (text === '') return { status: res.statusCode, headers: res.headers, data: null };
    try {
      return { status: res.statusCode, headers: res.headers, data: JSON.parse(text) as unknown };
    } catch {
      this.counters.errors++;
      throw new GirderError(
        `${method} ${path} answered ${res.statusCode} ${contentType || 'without a content type'} that is not JSON`,
        res.statusCode,
        'malformed',
      );
    }
  }

  /** One exchange through the undici agent (JSON requests, short bodies). */
  private dispatch(options: SendOptions, token: string | undefined): Promise<Dispatcher.ResponseData> {
    return this.exchange(options, options.method, options.signal, token, (origin, path, headers) => this.agent.request({
      origin,
      path,
      method: options.method,
      headers,
      body: options.body?.(),
      reset: options.reset === true,
      signal: options.signal,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    }));
  }

  /** One exchange on a connection of its own (direct-request.ts), ended by close() too. */
  private dispatchDirect(options: DirectSendOptions, token: string | undefined): Promise<DirectResponse> {
    const method = options.method ?? 'GET';
    const signal = options.signal === undefined ? this.closing.signal : AbortSignal.any([this.closing.signal, options.signal]);
    return this.exchange(options, method, signal, token, (origin, path, headers) =>
      directRequest({ method, url: new URL(path, origin), headers, timeoutMs: this.timeoutMs, ca: this.ca, signal, body: options.body }));
  }

  /**
   * What every exchange does around its transport: refuse while the server is down, add the
   * token, count it, track it for inFlight(), tell the health tracker how it went, and turn a
   * transport failure into a GirderError (an abort passes as it is: nobody retries it).
   */
  private async exchange<R extends { readonly statusCode: number }>(
    options: { readonly path: string; readonly query?: Query | undefined; readonly headers?: Record<string, string> | undefined },
    method: string,
    signal: AbortSignal | undefined,
    token: string | undefined,
    transport: (origin: string, path: string, headers: Record<string, string>) => Promise<R>,
  ): Promise<R> {
    this.refuseWhileDown();
    const { origin, path } = this.target(options.path, options.query);
    const headers: Record<string, string> = { ...options.headers };
    if (token !== undefined) headers['girder-token'] = token;
    this.counters.requests++;
    const started = Date.now();
    const waiting = { method, path: stripQuery(path), startedAt: started };
    this.waiting.add(waiting);
    try {
      const res = await transport(origin, path, headers);
      if (this.log.isLevelEnabled('trace')) {
        this.log.trace({ method, path: stripQuery(path), status: res.statusCode, ms: Date.now() - started }, 'girder request');
      }
      this.noteAnswer(method, path, res.statusCode);
      return res;
    } catch (err) {
      this.counters.errors++;
      if (isAbort(err, signal)) throw err;
      throw this.noted(networkError(err, new URL(origin).host, this.timeoutMs));
    } finally {
      this.waiting.delete(waiting);
    }
  }

  /** While the server is known to be down, nothing is sent: fail at once. */
  private refuseWhileDown(): void {
    if (!this.health.isDown) return;
    this.counters.errors++;
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
    const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(timeoutMs)]);
    const url = new URL(this.basePath + '/system/version', this.origin);
    let res: DirectResponse;
    try {
      res = await directRequest({ method: 'GET', url, headers: { accept: 'application/json' }, timeoutMs, ca: this.ca, signal });
    } catch (err) {
      throw isAbort(err, signal) ? new Error(`no answer within ${timeoutMs} ms`) : networkError(err, this.host, timeoutMs);
    }
    res.body.destroy();
    if (res.statusCode !== 200) throw new Error(`GET /system/version answered ${res.statusCode}`);
  }

  private target(pathOrUrl: string, query: Query | undefined): { origin: string; path: string } {
    const qs = query === undefined ? '' : queryString(query);
    if (/^https?:\/\//i.test(pathOrUrl)) {
      const url = new URL(pathOrUrl);
      const search = url.search + (qs === '' ? '' : (url.search === '' ? '?' : '&') + qs);
      return { origin: url.origin, path: url.pathname + search };
    }
    return { origin: this.origin, path: this.basePath + pathOrUrl + (qs === '' ? '' : '?' + qs) };
  }

}

function readCaFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ClientConfigError(`cannot read the CA file ${file}: ${errorMessage(err)}`);
  }
}

function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) params.append(key, String(value));
  }
  return params.toString();
}

function mediaType(headers: IncomingHttpHeaders): string {
  const value = headers['content-type'];
  return (Array.isArray(value) ? value[0] ?? '' : value ?? '').split(';')[0]?.trim() ?? '';
}

function stripQuery(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}
