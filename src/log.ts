import pino from 'pino';

export type Logger = pino.Logger;



/** Paths pino blanks out wherever they appear in a log record. */
const REDACT = [
  'token', 'key', 'apiKey', 'password', 'authorization', 'headers.authorization',
  'headers["girder-token"]', '*.token', '*.key', '*.apiKey', '*.password', '*.authorization',
];

/**
 * JSON lines when stderr is not a terminal; short readable lines on a terminal.
 * Logs go to stderr so stdout stays free for command output.
 */
export function createLogger(level: string, pretty = process.stderr.isTTY === true): Logger {
  const options = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } };
  if (!pretty) return pino(options, pino.destination({ fd: 2, sync: true }));
  return pino(options, prettyStream());
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

/** A minimal human formatter: "12:00:01 INFO message key=value". */
function prettyStream(): { write(line: string): void } {
  return {
    write(line: string): void {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        process.stderr.write(line);
        return;
      }
      const time = new Date(Number(rec.time)).toTimeString().slice(0, 8);
      const extra = Object.entries(rec)
        .filter(([k]) => !SKIP.has(k))
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      process.stderr.write(`${time} ${LEVELS[Number(rec.level)] ?? rec.level} ${String(rec.msg ?? '')}${extra ? ' ' + extra : ''}\n`);
    },
  };
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
