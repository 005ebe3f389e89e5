// Connects many official socket.io-clients (recovery on) for the recovery
// benchmark (BenchmarkRecoveryCut in recovery_test.go):
//
//   node recovery-load.mjs '{"urls": ["http://a", "http://b"], "n": 1000}'
//
// Client i connects to urls[i % urls.length] with auth {"n": i} and expects
// "tick" events numbered 1, 2, … Lines: {"event":"ready"} once all are
// connected; then, on "report" on stdin, {"event":"report","lost",
// "dup","outOfOrder","received","recovered","fresh","catchUpMs":[…]}.
// catchUpMs: for each recovered reconnection, the time from the new
// transport's open to "connect" (by then socket.io-client has fired the
// missed events: they come before the CONNECT).
import { io } from 'socket.io-client';
import { createInterface } from 'node:readline';

const spec = JSON.parse(process.argv[2]);
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const clients = [];
let connected = 0;
for (let i = 0; i < spec.n; i++) {
  const c = { last: 0, lost: 0, dup: 0, received: 0, recovered: 0, fresh: 0, catchUp: [], openAt: 0, first: true };
  const s = io(spec.urls[i % spec.urls.length], {
    forceNew: true, transports: ['websocket'], auth: { n: i },
    reconnectionDelay: 100, reconnectionDelayMax: 500, randomizationFactor: 0,
  });
  s.io.on('open', () => { c.openAt = Date.now(); });
  s.on('connect', () => {
    if (c.first) {
      c.first = false;
      if (++connected === spec.n) print({ event: 'ready' });
      return;
    }
    if (s.recovered) {
      c.recovered++;
      c.catchUp.push(Date.now() - c.openAt);
    } else c.fresh++;
  });
  s.on('tick', (seq) => {
    c.received++;
    if (seq === c.last + 1) c.last = seq;
    else if (seq <= c.last) c.dup++;
    else { c.lost += seq - c.last - 1; c.last = seq; }
  });
  clients.push({ c, s });
}
createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() !== 'report') return;
  const r = { event: 'report', lost: 0, dup: 0, received: 0, recovered: 0, fresh: 0, catchUpMs: [], last: [] };
  for (const { c } of clients) {
    r.lost += c.lost; r.dup += c.dup; r.received += c.received;
    r.recovered += c.recovered; r.fresh += c.fresh; r.catchUpMs.push(...c.catchUp);
    r.last.push(c.last);
  }
  print(r);
  for (const { s } of clients) s.close();
  setTimeout(() => process.exit(0), 200);
});
