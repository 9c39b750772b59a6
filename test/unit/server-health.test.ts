// The server-health state machine (src/girder/server-health.ts), with a probe the test answers and
// short probe intervals. The client's use of it against a real Girder is in girder-faults.test.ts.
import t from 'tap';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { GirderError } from '../../src/girder/girder-error.js';
import type { Logger } from '../../src/log.js';
import { signalsServerAway } from '../../src/girder/girder-error.js';
import { ServerHealth } from '../../src/girder/server-health.js';
import { sleep, waitFor } from '../helpers/wait.js';

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

/** A probe whose answers the test sets; it counts calls and how many ran at once. */
class Probe {
  ok = false;
  /** Extra time each probe takes. */
  delayMs = 0;
  calls: number[] = [];
  running = 0;
  maxRunning = 0;
  readonly fn = async (timeoutMs: number): Promise<void> => {
    this.calls.push(Date.now());
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      await sleep(Math.min(this.delayMs, timeoutMs));
      if (this.delayMs > timeoutMs) throw new Error(`no answer within ${timeoutMs} ms`);
      if (!this.ok) throw new Error('connection refused');
    } finally {
      this.running--;
    }
  };
}

const refused = new GirderError('cannot reach girder:8080 (ECONNREFUSED)', 0, 'network');

function tracker(probe: Probe, logger: Logger, interval = { min: 20, max: 80 }): ServerHealth {
  const h = new ServerHealth({ host: 'girder:8080', probe: probe.fn, probeTimeoutMs: 200, probeIntervalMs: interval, logger });
  h.watch();
  return h;
}

t.test('which failures say the server may be away', async (tt) => {
  tt.ok(signalsServerAway(refused), 'a refused connection');
  tt.ok(signalsServerAway(new GirderError('no answer from girder within 5 s', 0, 'timeout')), 'a timeout');
  tt.ok(signalsServerAway(new GirderError('Bad Gateway', 502, 'http')), 'a 5xx');
  tt.notOk(signalsServerAway(new GirderError('Invalid folder id (x).', 400, 'rest')), 'not a 4xx');
  tt.notOk(signalsServerAway(new GirderError('You must be logged in.', 401, 'access')), 'not a refused token');
  tt.notOk(signalsServerAway(new GirderError('certificate', 0, 'tls')), 'not a certificate problem');
  tt.notOk(signalsServerAway(new GirderError('closed', 0, 'aborted')), 'not an abort');
});

t.test('one failure, the probe answers: up, nothing logged, nothing refused', async (tt) => {
  const probe = new Probe();
  probe.ok = true;
  const { logger, lines } = capturingLogger();
  const h = tracker(probe, logger);
  tt.teardown(() => h.close());
  const heard: number[] = [];
  h.onReachable(() => heard.push(Date.now()));
  h.failed(new GirderError('no answer from girder within 5 s', 0, 'timeout'));
  tt.equal(h.state, 'suspect', 'suspect until the probe answers');
  tt.notOk(h.isDown, 'requests still go out meanwhile');
  h.failed(refused);
  tt.equal(await h.settled(), 'up');
  tt.equal(probe.calls.length, 1, 'one probe for both failures');
  tt.same(lines.filter((l) => l.level >= 30), [], 'no line logged');
  tt.same(heard, [], 'no listener called: it never went away');
  tt.same(h.snapshot(), { reachable: true });
});

t.test('the probe fails too: down, one line; one probe at a time, backing off; back up: one line, listeners', async (tt) => {
  const probe = new Probe();
  const { logger, lines } = capturingLogger();
  const h = tracker(probe, logger);
  tt.teardown(() => h.close());
  const heard: number[] = [];
  h.onReachable(() => heard.push(Date.now()));

  const before = Date.now();
  h.failed(refused);
  tt.equal(await h.settled(), 'down');
  tt.ok(h.isDown);
  const err = h.offlineError();
  tt.equal(err.status, 0);
  tt.equal(err.type, 'offline');
  tt.match(err.message, /^Girder at girder:8080 is unreachable since \d{4}-\d\d-\d\dT[\d:.]+Z \(cannot reach girder:8080 \(ECONNREFUSED\)\)$/);
  const snap = h.snapshot();
  tt.equal(snap.reachable, false);
  tt.ok(Date.parse(snap.unreachableSince ?? '') >= before - 1 && Date.parse(snap.unreachableSince ?? '') <= Date.now());
  tt.match(snap.reason, /ECONNREFUSED/);

  // more failures while down (requests that were in flight) change nothing
  h.failed(refused);
  h.failed(new GirderError('Bad Gateway', 502, 'http'));
  await waitFor(() => probe.calls.length >= 6, { timeoutMs: 5000, what: 'probes while down' });
  tt.equal(probe.maxRunning, 1, 'never two probes at once');
  const gaps = probe.calls.slice(1).map((at, i) => at - (probe.calls[i] as number));
  // after the deciding probe: 20, 40, 80, 80... ms apart (timers may fire late, never early)
  tt.ok((gaps[1] as number) >= 18 && (gaps[2] as number) >= 38 && (gaps[3] as number) >= 78, `backing off: ${gaps.join(', ')} ms`);
  tt.ok((gaps[4] as number) < 400, `capped at the maximum: ${gaps.join(', ')} ms`);

  const warns = lines.filter((l) => l.level === 40);
  tt.equal(warns.length, 1, 'one warn line for the outage');
  tt.match(warns[0]?.msg, /^Girder is unreachable/);
  tt.same(heard, [], 'nobody told it is back yet');

  probe.ok = true;
  await waitFor(() => h.state === 'up', { timeoutMs: 2000, what: 'the server to be found back' });
  tt.equal(heard.length, 1, 'listeners told once');
  const infos = lines.filter((l) => l.level === 30);
  tt.equal(infos.length, 1, 'one info line for the return');
  tt.equal(infos[0]?.msg, 'Girder is reachable again');
  tt.ok(typeof infos[0]?.downMs === 'number' && (infos[0].downMs as number) >= 50, `with how long it was away (${String(infos[0]?.downMs)} ms)`);
  const calls = probe.calls.length;
  await sleep(200);
  tt.equal(probe.calls.length, calls, 'no more probes once it is back');
  tt.same(h.snapshot(), { reachable: true });

  // a second outage starts the probes at the short interval again
  probe.ok = false;
  h.failed(refused);
  tt.equal(await h.settled(), 'down');
  const downAt = Date.now();
  await waitFor(() => probe.calls.length >= calls + 2, { timeoutMs: 2000, what: 'a probe of the second outage' });
  const first = (probe.calls[calls + 1] as number) - downAt;
  tt.ok(first < 60, `the first probe after the short interval (${first} ms)`);
  tt.equal(lines.filter((l) => l.level === 40).length, 2, 'one more warn line');
});

t.test('a slow probe: requests keep going meanwhile; a probe that takes too long counts as no answer', async (tt) => {
  const probe = new Probe();
  probe.ok = true;
  probe.delayMs = 500; // above the 200 ms probe timeout
  const { logger } = capturingLogger();
  const h = tracker(probe, logger);
  tt.teardown(() => h.close());
  h.failed(new GirderError('no answer from girder within 5 s', 0, 'timeout'));
  tt.equal(h.state, 'suspect');
  tt.equal(await h.settled(), 'down', 'no answer within the probe timeout: down');
  probe.delayMs = 0;
  await waitFor(() => h.state === 'up', { timeoutMs: 2000, what: 'the next probe to find it' });
});

t.test('an answer from the server while suspect or down: up at once', async (tt) => {
  const probe = new Probe();
  probe.delayMs = 100;
  const { logger, lines } = capturingLogger();
  const h = tracker(probe, logger);
  tt.teardown(() => h.close());
  const heard: number[] = [];
  h.onReachable(() => heard.push(1));

  h.failed(refused);
  h.answered(); // a request sent earlier got its answer
  tt.equal(h.state, 'up');
  tt.equal(await h.settled(), 'up');
  await sleep(150);
  tt.equal(h.state, 'up', 'the failing probe of that suspicion is ignored');
  tt.same(heard, [], 'it never was down');

  probe.delayMs = 0;
  h.failed(refused);
  tt.equal(await h.settled(), 'down');
  h.answered();
  tt.equal(h.state, 'up');
  tt.same(heard, [1], 'back: listeners told');
  tt.equal(lines.filter((l) => l.msg === 'Girder is reachable again').length, 1);
  const calls = probe.calls.length;
  await sleep(120);
  tt.equal(probe.calls.length, calls, 'the probes stopped');
});

t.test('not watching (before the mount is up) or closed: failures are only failures', async (tt) => {
  const probe = new Probe();
  const { logger, lines } = capturingLogger();
  const h = new ServerHealth({ host: 'girder:8080', probe: probe.fn, probeTimeoutMs: 200, probeIntervalMs: { min: 20, max: 80 }, logger });
  h.failed(refused);
  tt.equal(h.state, 'up');
  tt.equal(probe.calls.length, 0, 'no probe');
  h.watch();
  h.failed(refused);
  tt.equal(await h.settled(), 'down');
  h.close();
  tt.equal(h.state, 'up', 'closed: nothing is refused');
  const calls = probe.calls.length;
  await sleep(100);
  tt.equal(probe.calls.length, calls, 'no probe after close');
  h.failed(refused);
  tt.equal(h.state, 'up', 'and no new suspicion');
  tt.equal(lines.filter((l) => l.level >= 30).length, 1, 'only the outage line');
});
