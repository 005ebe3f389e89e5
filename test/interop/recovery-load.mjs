// Connects many official socket.io-clients (recovery on) for the recovery
// benchmark (BenchmarkRecoveryCut in recovery_test.go):
//
//   node recovery-load.mjs '{"urls": ["http://a", "http://b"], "n": 1000}'
//
// Client i connects to urls[i % urls.length] with auth {"n": i} and expects
// "tick" events numbered 1, 2, … Lines: {"event":"ready"} once all are
// connected; then, on "report" on stdin, {"event":"report","lost",
// "dup","outOfOrder","received","recovered","fresh","catchUpMs":[…],
// "last":[…],"anomalies":[…]}: lost, the numbers up to a socket's highest
// ("last", per socket) never received; dup, numbers received again;
// outOfOrder, numbers received (the first time) after a higher one.
// catchUpMs: for each recovered reconnection, the time from the new
// transport's open to "connect" (by then socket.io-client has fired the
// missed events: they come before the CONNECT). anomalies: the first 200
// of each socket's irregular numbers, each {i: the socket, kind: "gap" (a
// number past the next one due), "late" (one below the highest, received
// the first time) or "dup", seq: the number, expected: the highest so far
// + 1, phase: "first" (before any reconnection), "replay" (fired before
// the reconnection's "connect": sent with its CONNECT) or "live" (after
// it), reconnects: the socket's reconnections so far}. missing: for the
// first 50 sockets with numbers lost, [socket, numbers...]. On "status":
// {"event":"status","reconnected": sockets reconnected at least once}.
import { io } from 'socket.io-client';
import { createInterface } from 'node:readline';

const spec = JSON.parse(process.argv[2]);
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const clients = [];
const anomalies = [];
const note = (i, c, kind, seq) => {
  if (anomalies.length < 200) anomalies.push({ i, kind, seq, expected: c.last + 1, phase: c.phase, reconnects: c.recovered + c.fresh });
};
let connected = 0;
for (let i = 0; i < spec.n; i++) {
  const c = { last: 0, got: [], dup: 0, late: 0, received: 0, recovered: 0, fresh: 0, catchUp: [], openAt: 0, first: true, phase: 'first' };
  const s = io(spec.urls[i % spec.urls.length], {
    forceNew: true, transports: ['websocket'], auth: { n: i },
    reconnectionDelay: 100, reconnectionDelayMax: 500, randomizationFactor: 0,
  });
  s.io.on('open', () => {
    c.openAt = Date.now();
    if (!c.first) c.phase = 'replay';
  });
  s.on('connect', () => {
    if (c.first) {
      c.first = false;
      if (++connected === spec.n) print({ event: 'ready' });
      return;
    }
    c.phase = 'live';
    if (s.recovered) {
      c.recovered++;
      c.catchUp.push(Date.now() - c.openAt);
    } else c.fresh++;
  });
  s.on('tick', (seq) => {
    c.received++;
    const k = c.got[seq] ?? 0;
    c.got[seq] = k + 1;
    if (k > 0) { c.dup++; note(i, c, 'dup', seq); }
    else if (seq < c.last) { c.late++; note(i, c, 'late', seq); }
    else if (seq > c.last + 1) note(i, c, 'gap', seq);
    if (seq > c.last) c.last = seq;
  });
  clients.push({ c, s });
}
createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() === 'status') {
    print({ event: 'status', reconnected: clients.filter(({ c }) => c.recovered + c.fresh > 0).length });
    return;
  }
  if (l.trim() !== 'report') return;
  const r = { event: 'report', lost: 0, dup: 0, outOfOrder: 0, received: 0, recovered: 0, fresh: 0, catchUpMs: [], last: [], anomalies, missing: [] };
  for (const [i, { c }] of clients.entries()) {
    const holes = [];
    for (let seq = 1; seq <= c.last; seq++) if (!c.got[seq]) holes.push(seq);
    r.lost += holes.length;
    if (holes.length > 0 && r.missing.length < 50) r.missing.push([i, ...holes]);
    r.dup += c.dup; r.outOfOrder += c.late; r.received += c.received;
    r.recovered += c.recovered; r.fresh += c.fresh; r.catchUpMs.push(...c.catchUp);
    r.last.push(c.last);
  }
  print(r);
  for (const { s } of clients) s.close();
  setTimeout(() => process.exit(0), 200);
});
