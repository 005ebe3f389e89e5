// The Node.js side of the recovery benchmark (test/interop
// BenchmarkRecoveryCut/node): socket.io 4.8 with its in-memory connection
// state recovery, each socket in room "u<auth.n>", sent "tick" 1, 2, … ten
// times a second once "start" is read on stdin, until "stop", which prints
// {"sent": [per-room counts], "packets": packets the adapter holds,
// "heapBefore", "heapUsed": the heap when "start" and "stop" were read,
// "heapEmpty": the heap once the adapter's packets are dropped; each
// after a collection when run with --expose-gc (bench/recovery does)}.
// Prints {"port": N} when listening.
//
//   node recovery-server.js '{"n": 1000}'
import { Server } from 'socket.io';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

const spec = JSON.parse(process.argv[2]);
const http = createServer();
const io = new Server(http, {
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000 },
  transports: ['websocket'],
});
io.on('connection', (s) => s.join('u' + s.handshake.auth.n));
const sent = new Array(spec.n).fill(0);
let timer = null;
let heapBefore = 0;
const heap = () => { globalThis.gc?.(); return process.memoryUsage().heapUsed; };
createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() === 'start') {
    heapBefore = heap();
    timer = setInterval(() => {
      for (let i = 0; i < spec.n; i++) io.to('u' + i).emit('tick', ++sent[i]);
    }, 100);
  } else if (l.trim() === 'stop') {
    clearInterval(timer);
    const a = io.of('/').adapter;
    const packets = a.packets?.length ?? 0;
    const heapUsed = heap();
    a.packets = []; // what the log's packets held: the heap freed without them
    process.stdout.write(JSON.stringify({ sent, packets, heapBefore, heapUsed, heapEmpty: heap() }) + '\n');
  }
});
http.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: http.address().port }) + '\n'));
