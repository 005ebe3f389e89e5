// node-server.mjs: a Node socket.io 4.8 server in a sessiongate cluster, as
// a team migrating from Node runs it: @socket.io/redis-adapter (classic
// createAdapter over node-redis 4), @socket.io/postgres-adapter, or
// @socket.io/redis-streams-adapter 0.3.1 with connection state recovery.
//
//   CLUSTER=redis    REDIS_URL=redis://127.0.0.1:6379 CLUSTER_KEY=<key> PORT=0 node node-server.mjs
//   CLUSTER=postgres DATABASE_URL=postgres://… PG_SCHEMA=<schema> CLUSTER_KEY=<key> PORT=0 node node-server.mjs
//   CLUSTER=redis-streams REDIS_URL=… STREAM_NAME=<stream> CLUSTER_KEY=<channelPrefix> PORT=0 node node-server.mjs
//
// With redis-streams, connectionStateRecovery is on (2 min, middlewares
// skipped, Node's defaults): its CONNECT replies carry a pid, its events an
// offset (the stream id), and a socket that drops is saved under
// sio:session:<pid>. Its connection lines then carry "recovered".
//
// It accepts any client (no auth): a client's handshake auth may carry
// {"rooms": [...], "data": {...}}, which the socket joins and keeps as
// socket.data. Its sockets echo what they receive nowhere; what they receive
// is reported by the client (client.mjs).
//
// It serves the namespaces "/" and "/admin".
//
// Control: one JSON command per stdin line, {"id": n, "op": ..., "nsp"
// (default "/"), ...}; one
// JSON reply per stdout line, {"id": n, "ok": true, ...} or {"id": n, "ok":
// false, "error": "..."}. Operations:
//   emit            {rooms, except, event, args}        io.to(rooms).except(except).emit
//   emitWithAck     {rooms, except, event, args, timeoutMs} → {responses}
//   fetchSockets    {rooms, except}                     → {sockets:[{id, rooms, data, handshake}]}
//   serverSideEmit  {event, args, ack}                  → {responses} with ack
//   socketsJoin     {rooms, except, join}
//   socketsLeave    {rooms, except, leave}
//   disconnectSockets {rooms, except, close}
//   serverCount                                         → {count}
//   allRooms                                            → {rooms}
// Unprompted lines: {"type":"ready","port","uid"} once listening and
// subscribed; {"type":"serverSideEmit","event","args"} for each server-side
// event heard ("ping" and "hello"; a "ping" with an ack is answered
// "node-pong"); {"type":"connection","id","rooms"} and
// {"type":"disconnect","id","reason"} for its sockets.
// Binary values travel as {"$bin": "<base64>"} both ways.
// It exits on SIGTERM or when stdin ends.
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Server } from "socket.io";
import { fromWire, printer } from "./wire.mjs";

const env = process.env;
const key = env.CLUSTER_KEY || "socket.io";
const out = printer();
const die = (msg) => {
  process.stderr.write(`node-server: ${msg}\n`);
  process.exit(1);
};

const httpServer = createServer();
const io = new Server(httpServer, {
  cors: { origin: true },
  ...(env.CLUSTER === "redis-streams" ? { connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true } } : {}),
});
// The namespaces it serves; each is made right after the adapter is set,
// so that the readiness wait below covers their subscriptions too.
const namespaces = ["/", "/admin"];
let closers = [];

if (env.CLUSTER === "redis") {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const url = env.REDIS_URL || "redis://127.0.0.1:6379";
  const pub = createClient({ url, name: `node-server-pub-${process.pid}` });
  const sub = createClient({ url, name: `node-server-sub-${process.pid}` });
  for (const c of [pub, sub]) c.on("error", (err) => process.stderr.write(`node-server: redis: ${err.message}\n`));
  try {
    await Promise.all([pub.connect(), sub.connect()]);
  } catch (err) {
    die(`Redis not reachable at ${url}: ${err.message}`);
  }
  io.adapter(createAdapter(pub, sub, { key, requestsTimeout: Number(env.REQUESTS_TIMEOUT_MS || 5000) }));
  namespaces.forEach((n) => io.of(n));
  // The adapter's (P)SUBSCRIBEs were sent on sub before this one; Redis
  // answers in order, so once this is confirmed the adapter listens.
  await sub.subscribe(`${key}-node-server-ready`, () => {});
  closers.push(() => pub.quit().catch(() => {}), () => sub.quit().catch(() => {}));
} else if (env.CLUSTER === "postgres") {
  const pg = (await import("pg")).default;
  const { createAdapter } = await import("@socket.io/postgres-adapter");
  const pool = new pg.Pool({
    connectionString: env.DATABASE_URL,
    options: env.PG_SCHEMA ? `-c search_path=${env.PG_SCHEMA}` : undefined,
    max: 4,
  });
  pool.on("error", (err) => process.stderr.write(`node-server: postgres: ${err.message}\n`));
  try {
    await pool.query(`CREATE TABLE IF NOT EXISTS socket_io_attachments (
      id bigserial UNIQUE, created_at timestamptz DEFAULT NOW(), payload bytea)`);
  } catch (err) {
    die(`PostgreSQL not reachable at ${env.DATABASE_URL}: ${err.message}`);
  }
  io.adapter(createAdapter(pool, { channelPrefix: key, errorHandler: (err) => process.stderr.write(`node-server: postgres adapter: ${err.message}\n`) }));
  namespaces.forEach((n) => io.of(n));
  // The adapter LISTENs on a client of its own and keeps it once every
  // channel is listened to: wait for that (it exposes no event).
  const client = io.of("/").adapter.client;
  for (let i = 0; !client.client; i++) {
    if (i > 1000) die("the postgres adapter did not LISTEN within 10 s");
    await new Promise((r) => setTimeout(r, 10));
  }
  closers.push(() => pool.end().catch(() => {}));
} else if (env.CLUSTER === "redis-streams") {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-streams-adapter");
  const url = env.REDIS_URL || "redis://127.0.0.1:6379";
  const client = createClient({ url, name: `node-server-streams-${process.pid}` });
  client.on("error", (err) => process.stderr.write(`node-server: redis: ${err.message}\n`));
  try {
    await client.connect();
  } catch (err) {
    die(`Redis not reachable at ${url}: ${err.message}`);
  }
  io.adapter(createAdapter(client, { streamName: env.STREAM_NAME || "socket.io", channelPrefix: key }));
  namespaces.forEach((n) => io.of(n));
  // Its reader starts at "$" on a client of its own, with no event to say
  // so: a test waits for an entry of its own to come through instead.
  closers.push(() => client.quit().catch(() => {}));
} else {
  die(`CLUSTER=${env.CLUSTER ?? ""}: want redis, postgres or redis-streams`);
}

for (const name of namespaces) {
  const nsp = io.of(name);
  nsp.on("connection", (socket) => {
    const auth = socket.handshake.auth ?? {};
    if (Array.isArray(auth.rooms)) socket.join(auth.rooms);
    if (auth.data !== undefined) socket.data = auth.data;
    out({ type: "connection", nsp: name, id: socket.id, rooms: [...socket.rooms], recovered: socket.recovered });
    socket.on("disconnect", (reason) => out({ type: "disconnect", nsp: name, id: socket.id, reason }));
  });
  for (const event of ["ping", "hello"]) {
    nsp.on(event, (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      out({ type: "serverSideEmit", nsp: name, event, args });
      if (ack) ack("node-pong");
    });
  }
}

const op = (c) => {
  let b = io.of(c.nsp ?? "/").to(c.rooms ?? []);
  if (c.except?.length) b = b.except(c.except);
  return b;
};

async function handle(c) {
  switch (c.op) {
    case "emit":
      op(c).emit(c.event, ...fromWire(c.args ?? []));
      return {};
    case "emitWithAck":
      return { responses: await op(c).timeout(c.timeoutMs ?? 2000).emitWithAck(c.event, ...fromWire(c.args ?? [])) };
    case "fetchSockets": {
      const sockets = await op(c).fetchSockets();
      return { sockets: sockets.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data, handshake: s.handshake })) };
    }
    case "serverSideEmit":
      if (!c.ack) {
        io.of(c.nsp ?? "/").serverSideEmit(c.event, ...fromWire(c.args ?? []));
        return {};
      }
      // The adapter's requestsTimeout (REQUESTS_TIMEOUT_MS) bounds it.
      return { responses: await io.of(c.nsp ?? "/").serverSideEmitWithAck(c.event, ...fromWire(c.args ?? [])) };
    case "socketsJoin":
      op(c).socketsJoin(c.join);
      return {};
    case "socketsLeave":
      op(c).socketsLeave(c.leave);
      return {};
    case "disconnectSockets":
      op(c).disconnectSockets(!!c.close);
      return {};
    case "serverCount":
      return { count: await io.of(c.nsp ?? "/").adapter.serverCount() };
    case "allRooms":
      return { rooms: [...(await io.of(c.nsp ?? "/").adapter.allRooms())] };
    default:
      throw new Error(`unknown op ${c.op}`);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let c;
  try {
    c = JSON.parse(line);
  } catch {
    out({ ok: false, error: `not JSON: ${line}` });
    return;
  }
  try {
    out({ id: c.id, ok: true, ...(await handle(c)) });
  } catch (err) {
    out({ id: c.id, ok: false, error: err?.message ?? String(err) });
  }
});

let closing = false;
async function shutdown() {
  if (closing) return;
  closing = true;
  io.close();
  await Promise.all(closers.map((f) => f()));
  process.exit(0);
}
rl.on("close", shutdown);
process.on("SIGTERM", shutdown);

httpServer.listen(Number(env.PORT || 0), "127.0.0.1", () => {
  out({ type: "ready", port: httpServer.address().port, uid: io.of("/").adapter.uid });
});
