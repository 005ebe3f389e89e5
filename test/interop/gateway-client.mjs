// Drives the official socket.io-client against a sessiongate gateway (Go
// tests in gateway/ run it through internal/nodetest, for what only the
// official client proves: its transports and upgrade, "io server disconnect"
// without a reconnection; tests of the protocol alone use internal/siotest).
//
//   node gateway-client.mjs '<spec JSON>'
//
// spec: {
//   "url": "http://127.0.0.1:port",
//   "timeoutMs": 10000,          // whole run; exceeded = failure
//   "sequential": false,         // start each client after the previous one's outcome
//   "clients": [{
//     "name": "a",
//     "cookie": "connect.sid=…",  // Cookie header, optional
//     "transports": ["websocket"],// optional; default polling then upgrade
//     "expectEnd": "revoked"      // expect connect, then session_expired with this
//                                 // reason ("any" for any) and "io server disconnect";
//   }]                            // without it: expect connect
// }
//
// Every event is printed as one JSON line ({"client","event",…,"t": ms since
// epoch}) so the test can act on it (e.g. delete a row once connected). The
// last line is {"done":true,"ok":bool,"failures":[…]}; the exit code is 0 only
// if every client did what it was expected to. Clients without an expected end
// are closed by the script once every other client has finished.
import { io } from 'socket.io-client';

const spec = JSON.parse(process.argv[2] ?? '{}');
const failures = [];
const print = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: Date.now() }) + '\n');
const fail = (name, msg) => {
  failures.push(`${name}: ${msg}`);
  print({ client: name, event: 'failure', message: msg });
};

// finish prints the result. Unless exitNow, Node exits once the closing
// sockets' last requests are sent (a polling client's close packet travels
// in a POST that process.exit would cut), or after a second at most.
function finish(exitNow) {
  print({ done: true, ok: failures.length === 0, failures });
  process.exitCode = failures.length === 0 ? 0 : 1;
  if (exitNow) process.exit();
  setTimeout(() => process.exit(), 1000).unref();
}

const timer = setTimeout(() => {
  fail('script', `timed out after ${spec.timeoutMs ?? 10000} ms`);
  finish(true);
}, spec.timeoutMs ?? 10000);

// run connects one client and resolves with its socket once its first
// outcome (connect or connect_error) is known, and with done once it has
// finished as expected (or failed).
function run(c) {
  let resolveOutcome;
  let resolveDone;
  const outcome = new Promise((r) => { resolveOutcome = r; });
  const done = new Promise((r) => { resolveDone = r; });
  const headers = {};
  if (c.cookie) headers.Cookie = c.cookie;
  const socket = io(spec.url, {
    forceNew: true,
    transports: c.transports ?? ['polling', 'websocket'],
    extraHeaders: headers,
    reconnectionDelay: 50,
    reconnectionDelayMax: 100,
  });
  const name = c.name;
  let ended = null; // the session_expired reason

  socket.io.on('reconnect_attempt', (n) => {
    print({ client: name, event: 'reconnect_attempt', attempt: n });
    fail(name, 'the client tried to reconnect');
    socket.close();
    resolveDone();
  });
  socket.io.on('open', () => {
    socket.io.engine.on('upgrade', (transport) => print({ client: name, event: 'upgrade', transport: transport.name }));
  });
  socket.on('connect', () => {
    print({ client: name, event: 'connect', id: socket.id, transport: socket.io.engine.transport.name });
    resolveOutcome(socket);
  });
  socket.on('connect_error', (err) => {
    const code = err.data?.code ?? null;
    print({ client: name, event: 'connect_error', message: err.message, code, active: socket.active });
    fail(name, `connect_error ${err.message} ${code}, expected to connect`);
    resolveOutcome(socket);
    resolveDone();
  });
  socket.onAny((event, ...args) => {
    print({ client: name, event: 'event', name: event, args });
  });
  socket.on('session_expired', (payload) => {
    ended = payload?.reason ?? null;
    print({ client: name, event: 'session_expired', reason: ended });
  });
  socket.on('disconnect', (reason) => {
    print({ client: name, event: 'disconnect', reason, active: socket.active });
    if (reason === 'io client disconnect') return; // closed by this script
    if (c.expectEnd) {
      if (ended === null) fail(name, 'disconnected without session_expired');
      else if (c.expectEnd !== 'any' && ended !== c.expectEnd) fail(name, `session_expired reason ${ended}, expected ${c.expectEnd}`);
    } else {
      fail(name, `unexpected disconnect: ${reason}`);
    }
    if (reason !== 'io server disconnect') fail(name, `disconnect reason ${reason}, expected io server disconnect`);
    if (socket.active) fail(name, 'the socket stays active after the disconnect: it would reconnect');
    resolveDone();
  });
  if (!c.expectEnd) {
    // Stays connected: done once connected.
    outcome.then(() => resolveDone());
  }
  return { socket, outcome, done };
}

const runs = [];
if (spec.sequential) {
  for (const c of spec.clients) {
    const r = run(c);
    runs.push(r);
    await r.outcome;
  }
} else {
  for (const c of spec.clients) runs.push(run(c));
}
await Promise.all(runs.map((r) => r.done));
clearTimeout(timer);
for (const r of runs) r.socket.close();
finish();
