// emitter.mjs: a backend worker emitting into the cluster with
// @socket.io/redis-emitter 5.1.0 (node-redis 4) or
// @socket.io/postgres-emitter 0.1.1, as such code is written.
//
//   CLUSTER=redis    REDIS_URL=… CLUSTER_KEY=<key> node emitter.mjs
//   CLUSTER=postgres DATABASE_URL=… PG_SCHEMA=<schema> CLUSTER_KEY=<key> node emitter.mjs
//
// Control: one JSON command per stdin line, {"id", "op", "nsp", ...}; the
// reply {"id", "ok": true} (or "ok": false, "error") is printed once the
// command's every PUBLISH / NOTIFY has been answered by the server, so what
// the test does next comes after it. Operations (nsp defaults to "/"):
//   emit              {rooms, except, event, args, volatile, compress}
//   socketsJoin       {rooms, except, join}
//   socketsLeave      {rooms, except, leave}
//   disconnectSockets {rooms, except, close}
//   serverSideEmit    {event, args}
// Binary arguments are given as {"$bin": base64}. It prints
// {"type":"ready"} once connected, and exits when stdin ends.
import { createInterface } from "node:readline";
import { fromWire, printer } from "./wire.mjs";

const env = process.env;
const key = env.CLUSTER_KEY || "socket.io";
const out = printer();
const die = (msg) => {
  process.stderr.write(`emitter: ${msg}\n`);
  process.exit(1);
};

// pending holds the promise of every command sent to the server; settle
// waits for all of them (publishing is fire-and-forget in both emitters).
const pending = new Set();
const track = (p) => {
  pending.add(p);
  p.finally(() => pending.delete(p)).catch(() => {});
  return p;
};
async function settle() {
  while (pending.size) await Promise.allSettled([...pending]);
}

let root; // the emitter of "/"
let emitterOf; // nsp → emitter
let close;
if (env.CLUSTER === "redis") {
  const { createClient } = await import("redis");
  const { Emitter } = await import("@socket.io/redis-emitter");
  const url = env.REDIS_URL || "redis://127.0.0.1:6379";
  const client = createClient({ url, name: `emitter-${process.pid}` });
  client.on("error", (err) => process.stderr.write(`emitter: redis: ${err.message}\n`));
  try {
    await client.connect();
  } catch (err) {
    die(`Redis not reachable at ${url}: ${err.message}`);
  }
  const publish = client.publish.bind(client);
  client.publish = (...a) => track(publish(...a));
  root = new Emitter(client, { key });
  emitterOf = (nsp) => (!nsp || nsp === "/" ? root : root.of(nsp));
  close = () => client.quit();
} else if (env.CLUSTER === "postgres") {
  const pg = (await import("pg")).default;
  const { Emitter } = await import("@socket.io/postgres-emitter");
  const pool = new pg.Pool({
    connectionString: env.DATABASE_URL,
    options: env.PG_SCHEMA ? `-c search_path=${env.PG_SCHEMA}` : undefined,
    max: 2,
  });
  pool.on("error", (err) => process.stderr.write(`emitter: postgres: ${err.message}\n`));
  try {
    await pool.query(`CREATE TABLE IF NOT EXISTS socket_io_attachments (
      id bigserial UNIQUE, created_at timestamptz DEFAULT NOW(), payload bytea)`);
  } catch (err) {
    die(`PostgreSQL not reachable at ${env.DATABASE_URL}: ${err.message}`);
  }
  const query = pool.query.bind(pool);
  pool.query = (...a) => track(query(...a));
  // Emitter.of() drops the options (channelPrefix) in 0.1.1: build each
  // namespace's emitter with them instead.
  const emitters = new Map();
  emitterOf = (nsp = "/") => {
    if (!emitters.has(nsp)) emitters.set(nsp, new Emitter(pool, nsp, { channelPrefix: key }));
    return emitters.get(nsp);
  };
  root = emitterOf("/");
  close = () => pool.end();
} else {
  die(`CLUSTER=${env.CLUSTER ?? ""}: want redis or postgres`);
}

function target(c) {
  let b = emitterOf(c.nsp);
  if (c.rooms?.length) b = b.to(c.rooms);
  if (c.except?.length) b = b.except(c.except);
  return b;
}

function run(c) {
  switch (c.op) {
    case "emit": {
      let b = target(c);
      if (c.volatile) b = b.volatile;
      if (c.compress !== undefined) b = b.compress(c.compress);
      b.emit(c.event, ...fromWire(c.args ?? []));
      return;
    }
    case "socketsJoin":
      return target(c).socketsJoin(c.join);
    case "socketsLeave":
      return target(c).socketsLeave(c.leave);
    case "disconnectSockets":
      return target(c).disconnectSockets(!!c.close);
    case "serverSideEmit":
      return emitterOf(c.nsp).serverSideEmit(c.event, ...fromWire(c.args ?? []));
    default:
      throw new Error(`unknown op ${c.op}`);
  }
}

const rl = createInterface({ input: process.stdin });
// Commands run one after another, in the order given.
let chain = Promise.resolve();
rl.on("line", (line) => {
  chain = chain.then(async () => {
    let c = {};
    try {
      c = JSON.parse(line);
      run(c);
      await settle();
      out({ id: c.id, ok: true });
    } catch (err) {
      out({ id: c.id, ok: false, error: err?.message ?? String(err) });
    }
  });
});
rl.on("close", async () => {
  await chain;
  await close().catch(() => {});
  process.exit(0);
});
out({ type: "ready" });
