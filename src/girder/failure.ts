/** Turn transport failures and error answers into GirderErrors with messages a person can act on. */
import { errorMessage } from '../errors.js';
import { GirderError } from './girder-error.js';

/** Codes of certificate problems (node's tls and OpenSSL) that a private CA file can fix or explain. */
const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE', 'ERR_TLS_CERT_ALTNAME_INVALID',
  'INVALID_CA', 'CERT_CHAIN_TOO_LONG', 'HOSTNAME_MISMATCH',
]);

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** The `code`s along an error's cause chain, outermost first. */
function codesOf(err: unknown): string[] {
  const codes: string[] = [];
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    e = (e as { cause?: unknown }).cause;
  }
  return codes;
}

/** The telling code of a failure: undici's generic socket codes give way to the one they wrap. */
function codeOf(err: unknown): string | undefined {
  const codes = codesOf(err);
  return codes.find((c) => c !== 'UND_ERR_SOCKET' && c !== 'UND_ERR') ?? codes[0];
}

/** An abort the caller asked for: pass it through untouched, never retry it. */
export function isAbort(err: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted === true) return true;
  const name = (err as { name?: unknown } | null)?.name;
  const code = codeOf(err);
  return name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR';
}

/** A failure with no HTTP answer (status 0): refused, reset, timed out, DNS, TLS. */
export function networkError(err: unknown, host: string, timeoutMs: number): GirderError {
  if (err instanceof GirderError) return err;
  const code = codeOf(err);
  if (code !== undefined && (TLS_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))) {
    const wrongProtocol = code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG';
    const message = wrongProtocol
      ? `TLS handshake with ${host} failed (${code}): does the server speak https on that port?`
      : `the TLS certificate of ${host} was not accepted: ${errorMessage(err)} (${code}); ` +
        'if the server uses a private certificate authority, pass its certificate with --ca-file';
    return new GirderError(message, 0, 'tls', undefined, { cause: err });
  }
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new GirderError(`no answer from ${host} within ${Math.round(timeoutMs / 1000)} s (${code})`, 0, 'timeout', undefined, { cause: err });
  }
  const why = code ?? errorMessage(err);
  const message = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
    ? `cannot reach ${host} (${why})`
    : `connection to ${host} failed (${why}${code !== undefined ? ': ' + errorMessage(err) : ''})`;
  return new GirderError(message, 0, 'network', undefined, { cause: err });
}

/** Codes of socket failures that escaped below the client as plain errors (the client's own carry a GirderError). */
const SOCKET_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);

/**
 * A failure as a GirderError: itself, or a socket failure that escaped as a plain error (a
 * 'network' or 'timeout' one); undefined for anything else (a local file, a bug).
 */
export function asGirderError(err: unknown): GirderError | undefined {
  if (err instanceof GirderError) return err;
  const code = codesOf(err)[0];
  if (code === undefined || !SOCKET_CODES.has(code)) return undefined;
  return new GirderError(`cannot reach Girder (${code})`, 0, TIMEOUT_CODES.has(code) ? 'timeout' : 'network', undefined, { cause: err });
}

/** The GirderError for a non-2xx answer; `body` is its text (Girder sends {"message","type","field"}). */
export function responseError(method: string, path: string, status: number, contentType: string, body: string): GirderError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed === 'object' && parsed !== null && typeof (parsed as { message?: unknown }).message === 'string') {
    const doc = parsed as { message: string; type?: unknown; field?: unknown };
    return new GirderError(
      doc.message,
      status,
      typeof doc.type === 'string' ? doc.type : 'rest',
      typeof doc.field === 'string' ? doc.field : undefined,
    );
  }
  return new GirderError(`${method} ${path} answered ${status} ${contentType || 'without a content type'}`, status, 'http');
}
