// The Node.js side of the recovery benchmark (bench/recovery -server node):
// socket.io 4.8 with connection state recovery, each socket in room
// "u<auth.n>". Prints {"port": N} when listening.
//
//   node recovery-server.js '{"n": 1000}'
//   node recovery-server.js '{"n": 1000, "cluster": {"url": "redis://127.0.0.1:6379",
//     "stream": "<stream>", "prefix": "<key prefix>", "maxLen": 1200000}}'
//
// One node (no "cluster"): the in-memory adapter. It sends "tick" 1, 2, …
// to every room ten times a second once "start" is read on stdin, until
// "stop", which prints {"sent": [per-room counts], "packets": packets the
// adapter holds, "heapBefore", "heapUsed": the heap when "start" and
// "stop" were read, "heapEmpty": the heap once the adapter's packets are
// dropped; each after a collection when run with --expose-gc
// (bench/recovery does)}.
//
// Cluster: one node of a cluster on @socket.io/redis-streams-adapter 0.3.1
// (the stream "stream", sessions under "<prefix>:sio:session:", pub/sub
// channels under "<prefix>"; the stream bound maxLen, MAXLEN ~). The
// harness drives the ticks: "round R" on stdin emits "tick" R to every
// room, then waits for Redis to have taken every XADD (a PING on the same
// connection answers after them) and prints {"done": R}; so rounds sent to
// two nodes one after the other land in the stream in their order. "stop"
// prints {"connections": N, "recovered": N}: the sockets connected to this
// node, and those of them with socket.recovered.
import { Server } from 'socket.io';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

const spec = JSON.parse(process.argv[2]);
const http = createServer();
const opts = {
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000 },
  transports: ['websocket'],
};
let redis = null;
if (spec.cluster) {
  const { createClient } = await import('redis');
  const { createAdapter } = await import('@socket.io/redis-streams-adapter');
  redis = createClient({ url: spec.cluster.url });
  redis.on('error', (e) => process.stderr.write(`recovery-server: redis: ${e.message}\n`));
  await redis.connect();
  opts.adapter = createAdapter(redis, {
    streamName: spec.cluster.stream,
    maxLen: spec.cluster.maxLen,
    sessionKeyPrefix: spec.cluster.prefix + ':sio:session:',
    channelPrefix: spec.cluster.prefix,
  });
}
const io = new Server(http, opts);
let connections = 0, recovered = 0;
io.on('connection', (s) => {
  connections++;
  if (s.recovered) recovered++;
  s.join('u' + s.handshake.auth.n);
});
const sent = new Array(spec.n).fill(0);
let timer = null;
let heapBefore = 0;
const heap = () => { globalThis.gc?.(); return process.memoryUsage().heapUsed; };
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');
createInterface({ input: process.stdin }).on('line', async (l) => {
  const [cmd, arg] = l.trim().split(' ');
  if (cmd === 'round' && redis) {
    const r = Number(arg);
    for (let i = 0; i < spec.n; i++) io.to('u' + i).emit('tick', r);
    await redis.ping();
    print({ done: r });
  } else if (cmd === 'stop' && redis) {
    print({ connections, recovered });
  } else if (cmd === 'start') {
    heapBefore = heap();
    timer = setInterval(() => {
      for (let i = 0; i < spec.n; i++) io.to('u' + i).emit('tick', ++sent[i]);
    }, 100);
  } else if (cmd === 'stop') {
    clearInterval(timer);
    const a = io.of('/').adapter;
    const packets = a.packets?.length ?? 0;
    const heapUsed = heap();
    a.packets = []; // what the log's packets held: the heap freed without them
    print({ sent, packets, heapBefore, heapUsed, heapEmpty: heap() });
  }
});
http.listen(0, '127.0.0.1', () => print({ port: http.address().port }));
