// Drives one official socket.io-client through connection state recovery
// (Go tests in test/interop and gateway/ run it, with a TCP proxy they cut
// between it and the server).
//
//   node recovery-client.mjs '<spec JSON>'
//
// spec: {"url": "http://127.0.0.1:port", "cookie": "connect.sid=…"?,
//        "auth": {…}?, "transports": ["websocket"]?}
//
// Every outcome is printed as one JSON line: {"event":"connect","id",
// "recovered","pid"}, {"event":"event","name","args"} (the arguments as the
// application's handler gets them, a trailing offset included),
// {"event":"connect_error","message","code"}, {"event":"disconnect",
// "reason"}. A line "close" on stdin closes the socket and exits; a line
// {"emit": name, "args": […]} emits with an acknowledgement, printed as
// {"event":"ack","name","args"}.
import { io } from 'socket.io-client';
import { createInterface } from 'node:readline';

const spec = JSON.parse(process.argv[2] ?? '{}');
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const headers = {};
if (spec.cookie) headers.Cookie = spec.cookie;
const socket = io(spec.url, {
  forceNew: true,
  transports: spec.transports ?? ['websocket'],
  extraHeaders: headers,
  auth: spec.auth ?? {},
  reconnectionDelay: 50,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
});
socket.on('connect', () => print({ event: 'connect', id: socket.id, recovered: socket.recovered, pid: socket._pid ?? null }));
socket.on('connect_error', (err) => print({ event: 'connect_error', message: err.message, code: err.data?.code ?? null }));
socket.on('disconnect', (reason) => print({ event: 'disconnect', reason }));
socket.onAny((name, ...args) => print({ event: 'event', name, args }));

createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() === 'close') {
    socket.close();
    setTimeout(() => process.exit(0), 100);
    return;
  }
  const cmd = JSON.parse(l);
  socket.emit(cmd.emit, ...(cmd.args ?? []), (...args) => print({ event: 'ack', name: cmd.emit, args }));
});
