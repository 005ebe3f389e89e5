// The Node.js baseline for sessiongate's benchmarks: the same design built
// the usual way. socket.io 4.8 with a middleware that reads connect.sid from
// the Cookie header, unsigns it with cookie-signature, reads the
// connect-pg-simple row with connect-pg-simple's own query, requires
// passport.user and joins "user:<id>"; then one setInterval per socket that
// re-reads the row and, when it is gone, emits session_expired and
// disconnects. POST /api/publish follows sessiongate's contract (§6).
//
// Environment: PORT (3000), EVENTS_URL (unset: client events are ignored), DATABASE_URL, SESSION_SECRETS (comma-separated,
// required), SESSION_TABLE ("session"), SESSION_CHECK_INTERVAL_MS (300000),
// PUBLISH_KEY (unset: /api/publish answers 404), PG_POOL_MAX (10, pg's
// default and so connect-pg-simple's).
//
// CLUSTER=redis makes it one node of a cluster the usual way: the classic
// @socket.io/redis-adapter 8.3 (createAdapter with a node-redis 4 publisher
// and a duplicate subscriber) on REDIS_URL, with CLUSTER_KEY as the
// adapter's key (default "socket.io"). /api/publish then goes through the
// adapter (io.to(rooms).emit), so it reaches the sockets of every node.
//
// EVENTS_URL makes every client event go to the application the usual
// way: a socket.onAny handler POSTs {user, socket, event, args} with the
// socket's Cookie to EVENTS_URL with Node's global fetch (undici: keep-alive,
// no limit on connections), and acks the JSON answer; a 4xx acks
// {"error":{"code":"REJECTED"}}, anything else {"error":{"code":"UNAVAILABLE"}}
// (the shapes of sessiongate's contract, §13). Handlers run concurrently, as
// socket.io runs them: nothing orders one socket's events.
//
// GET /debug/stats answers {"sockets", "sessionQueries", "rss"}: the
// server's own count of session-table queries, a cross-check for the
// benchmark's wire-level count. GET /debug/gc runs a full garbage collection
// before a memory measurement when node runs with --expose-gc (204), and
// answers 501 otherwise.
import http from 'node:http';
import { parse as parseCookie } from 'cookie';
import signature from 'cookie-signature';
import pg from 'pg';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';

const port = Number(process.env.PORT || 3000);
const secrets = (process.env.SESSION_SECRETS || '').split(',').filter(Boolean);
const table = process.env.SESSION_TABLE || 'session';
const checkInterval = Number(process.env.SESSION_CHECK_INTERVAL_MS || 300000);
const publishKey = process.env.PUBLISH_KEY || '';
const eventsURL = process.env.EVENTS_URL || '';
if (secrets.length === 0) {
  console.error('SESSION_SECRETS is required');
  process.exit(2);
}

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.PG_POOL_MAX || 10),
});
pool.on('error', (err) => console.error('pg pool:', err.message));

const quotedTable = '"' + table.replace(/"/g, '""') + '"';
const getSQL = `SELECT sess FROM ${quotedTable} WHERE sid = $1 AND expire >= to_timestamp($2)`;
let sessionQueries = 0;

// loadSession is connect-pg-simple's get: the row's JSON, or null when the
// row is absent or expired.
async function loadSession(sid) {
  sessionQueries++;
  const res = await pool.query(getSQL, [sid, Math.ceil(Date.now() / 1000)]);
  return res.rows.length ? res.rows[0].sess : null;
}

// sessionID is express-session's getcookie: the first connect.sid, which
// must be signed ("s:") with one of the secrets.
function sessionID(header) {
  if (!header) return { code: 'NO_COOKIE' };
  const raw = parseCookie(header)['connect.sid'];
  if (!raw || raw.substring(0, 2) !== 's:') return { code: 'NO_COOKIE' };
  for (const secret of secrets) {
    const sid = signature.unsign(raw.slice(2), secret);
    if (sid !== false) return { sid };
  }
  return { code: 'BAD_SIGNATURE' };
}

function refusal(message, code) {
  const err = new Error(message);
  err.data = { code };
  return err;
}

function userOf(sess) {
  const user = sess && sess.passport && sess.passport.user;
  return user === undefined || user === null || user === '' ? null : String(user);
}

const httpServer = http.createServer(handleHTTP);
const io = new Server(httpServer, { serveClient: false });

const cluster = process.env.CLUSTER || '';
const redisClients = [];
if (cluster === 'redis') {
  const pubClient = createClient({ url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' });
  const subClient = pubClient.duplicate();
  for (const c of [pubClient, subClient]) c.on('error', (err) => console.error('redis:', err.message));
  await Promise.all([pubClient.connect(), subClient.connect()]);
  redisClients.push(pubClient, subClient);
  io.adapter(createAdapter(pubClient, subClient, { key: process.env.CLUSTER_KEY || 'socket.io' }));
} else if (cluster !== '') {
  console.error(`CLUSTER=${cluster}: only "redis" (or unset) is supported`);
  process.exit(2);
}

io.use(async (socket, next) => {
  const { sid, code } = sessionID(socket.request.headers.cookie);
  if (!sid) return next(refusal('unauthorized', code));
  let sess;
  try {
    sess = await loadSession(sid);
  } catch (err) {
    console.error('session lookup:', err.message);
    return next(refusal('internal error', 'INTERNAL'));
  }
  if (!sess) return next(refusal('unauthorized', 'SESSION_NOT_FOUND'));
  const userId = userOf(sess);
  if (!userId) return next(refusal('unauthorized', 'NOT_AUTHENTICATED'));
  socket.data.sid = sid;
  socket.data.userId = userId;
  next();
});

io.on('connection', (socket) => {
  socket.join(`user:${socket.data.userId}`);
  const timer = setInterval(async () => {
    let sess;
    try {
      sess = await loadSession(socket.data.sid);
    } catch (err) {
      console.error('session check:', err.message);
      return;
    }
    const reason = !sess ? 'revoked' : !userOf(sess) ? 'logged_out' : null;
    if (reason) {
      socket.emit('session_expired', { reason });
      socket.disconnect(true);
    }
  }, checkInterval);
  socket.on('disconnect', () => clearInterval(timer));
  if (eventsURL) socket.onAny((event, ...args) => forwardEvent(socket, event, args));
});

// forwardEvent calls the application with one client event and acks its
// answer (when the client asked for an ack: socket.io passes it last).
async function forwardEvent(socket, event, args) {
  const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
  let answer;
  try {
    const res = await fetch(eventsURL, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Cookie: socket.request.headers.cookie || '' },
      body: JSON.stringify({ user: socket.data.userId, socket: socket.id, event, args }),
      signal: AbortSignal.timeout(2000),
    });
    if (res.status === 200) {
      answer = await res.json();
    } else {
      await res.arrayBuffer();
      const code = res.status >= 400 && res.status < 500 ? 'REJECTED' : 'UNAVAILABLE';
      answer = { error: { code, message: `the application answered ${res.status}` } };
    }
  } catch (err) {
    answer = { error: { code: 'UNAVAILABLE', message: err.message, temporary: true } };
  }
  if (ack) ack(answer);
}

function reply(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function handleHTTP(req, res) {
  if (req.method === 'GET' && req.url === '/debug/stats') {
    return reply(res, 200, {
      sockets: io.of('/').sockets.size,
      sessionQueries,
      rss: process.memoryUsage().rss,
    });
  }
  if (req.method === 'GET' && req.url === '/debug/gc') {
    if (typeof globalThis.gc !== 'function') return reply(res, 501, { error: 'run node with --expose-gc' });
    globalThis.gc();
    res.writeHead(204);
    return res.end();
  }
  if (req.method === 'POST' && req.url === '/api/publish') return publish(req, res);
  reply(res, 404, { error: 'not found' });
}

function publish(req, res) {
  if (!publishKey) return reply(res, 404, { error: 'not found' });
  if (req.headers.authorization !== `Bearer ${publishKey}`) {
    return reply(res, 401, { error: 'unauthorized' });
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return reply(res, 400, { error: 'body is not JSON' });
    }
    const { to, event } = body || {};
    if (!Array.isArray(to) || to.length === 0 || !to.every((r) => typeof r === 'string' && r)) {
      return reply(res, 400, { error: '"to" must be a non-empty array of room names' });
    }
    if (typeof event !== 'string' || !event) {
      return reply(res, 400, { error: '"event" must be a non-empty string' });
    }
    io.to(to).emit(event, body.data ?? null);
    reply(res, 200, { ok: true });
  });
}

httpServer.listen(port, '127.0.0.1', () => {
  console.error(`node-baseline listening on 127.0.0.1:${port}`);
});

function shutdown() {
  io.close();
  Promise.allSettled([pool.end(), ...redisClients.map((c) => c.disconnect())]).finally(() => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
