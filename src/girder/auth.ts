/**
 * Who the client is to Girder: the credentials, the login that trades them for a session token,
 * and the token's refresh (before it expires, and once more when the server refuses it).
 * Concurrent callers share one login; listeners hear of each success.
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { decodeUser, isObject, parseDate } from './decode.js';
import { GirderError } from './girder-error.js';
import type { UserDoc } from './types.js';

export type Credentials =
  | { kind: 'apiKey'; key: string }
  | { kind: 'password'; username: string; password: string }
  | { kind: 'token'; token: string };

/** A login request: sent without the session token (it is what the request is for). */
export interface LoginRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly form?: Record<string, string>;
  readonly headers?: Record<string, string>;
  readonly idempotent?: boolean;
}

/** Sends a login request; resolves with the answer's JSON, rejects with its GirderError. */
export type SendLogin = (request: LoginRequest) => Promise<unknown>;

/** Log in again this long before the token expires. */
const EXPIRY_MARGIN_MS = 60_000;

export class Auth {
  private token: string | undefined;
  private tokenExpires = 0;
  private loginInFlight: Promise<UserDoc> | null = null;
  private readonly loginListeners = new Set<() => void>();

  constructor(
    private readonly credentials: Credentials,
    private readonly send: SendLogin,
    private readonly log: Logger,
  ) {}

  /** Log in with the configured credentials; concurrent callers share one login. */
  login(): Promise<UserDoc> {
    if (this.loginInFlight === null) {
      this.loginInFlight = this.doLogin().then((user) => {
        this.tellLoggedIn();
        return user;
      }).finally(() => {
        this.loginInFlight = null;
      });
    }
    return this.loginInFlight;
  }

  /** Call `listener` after each successful login (e.g. to retry what the server refused before). Returns its removal. */
  onLogin(listener: () => void): () => void {
    this.loginListeners.add(listener);
    return () => this.loginListeners.delete(listener);
  }

  /** The session token, logging in first when there is none or it is about to expire. */
  async currentToken(): Promise<string> {
    if (this.token === undefined || (this.tokenExpires > 0 && Date.now() > this.tokenExpires - EXPIRY_MARGIN_MS)) {
      await this.login();
    }
    if (this.token === undefined) throw new GirderError('not logged in to Girder', 401, 'auth');
    return this.token;
  }

  /** The token `stale` was refused: log in again unless someone already did since. */
  async refresh(stale: string | undefined): Promise<void> {
    if (this.loginInFlight !== null) {
      await this.loginInFlight;
      return;
    }
    if (this.token !== undefined && this.token !== stale) return;
    this.log.info('Girder refused the session token; logging in again');
    await this.login();
  }

  private async doLogin(): Promise<UserDoc> {
    const creds = this.credentials;
    if (creds.kind === 'apiKey') {
      const data = await this.loginCall('the API key was refused by the server', {
        method: 'POST',
        path: '/api_key/token',
        form: { key: creds.key },
        idempotent: true, // a second token is harmless
      });
      const { token, expires } = tokenOf(data);
      const user = await this.fetchMe(token);
      if (user === null) throw new GirderError('the server does not accept the token it gave for the API key', 401, 'auth');
      this.setToken(token, expires);
      return user;
    }
    if (creds.kind === 'password') {
      const basic = Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64');
      const data = await this.loginCall(`the server refused the login of user "${creds.username}"`, {
        method: 'GET',
        path: '/user/authentication',
        headers: { authorization: `Basic ${basic}` },
      });
      const { token, expires } = tokenOf(data);
      const user = isObject(data) ? decodeUser(data.user) : null;
      this.setToken(token, expires);
      return user ?? (await this.requireMe(token));
    }
    const user = await this.requireMe(creds.token);
    this.setToken(creds.token, 0);
    return user;
  }

  private async requireMe(token: string): Promise<UserDoc> {
    const user = await this.fetchMe(token);
    if (user === null) {
      throw new GirderError('the token was refused by the server (GET /user/me answered null: invalid or expired)', 401, 'auth');
    }
    return user;
  }

  /** GET /user/me with an explicit token (never through the re-login path). */
  private async fetchMe(token: string): Promise<UserDoc | null> {
    const data = await this.send({ method: 'GET', path: '/user/me', headers: { 'girder-token': token } });
    return data === null ? null : decodeUser(data);
  }

  /** A login request; refusals become 'auth' errors naming the server's reason. */
  private async loginCall(refused: string, request: LoginRequest): Promise<unknown> {
    try {
      return await this.send(request);
    } catch (err) {
      if (err instanceof GirderError && err.status >= 400 && err.status < 500) {
        throw new GirderError(`${refused} (${err.message})`, err.status, 'auth', undefined, { cause: err });
      }
      throw err;
    }
  }

  private tellLoggedIn(): void {
    for (const listener of [...this.loginListeners]) {
      try {
        listener();
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'a login listener threw');
      }
    }
  }

  private setToken(token: string, expires: number): void {
    this.token = token;
    this.tokenExpires = expires;
    this.log.debug({ expires: expires > 0 ? new Date(expires).toISOString() : undefined }, 'logged in to Girder');
  }
}

function tokenOf(data: unknown): { token: string; expires: number } {
  const authToken = isObject(data) ? data.authToken : undefined;
  if (!isObject(authToken) || typeof authToken.token !== 'string' || authToken.token === '') {
    throw new GirderError('the login answer carries no token', 200, 'malformed');
  }
  return { token: authToken.token, expires: parseDate(authToken.expires) };
}
