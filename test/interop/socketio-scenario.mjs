// Drives the official socket.io-client 4.8 against the Go socketio server
// started by interop_test.go (package socketio's own interop tests).
//
//   node socketio-scenario.mjs <url> <scenario>
//
// Each scenario prints one JSON line with what it observed and exits 0 if
// every assertion held; a failed assertion prints {"ok":false,"error":…} and
// exits 1. The whole run is bounded by a 10 s timeout.
import { io, Manager } from 'socket.io-client';
import assert from 'node:assert/strict';

const [url, scenario] = process.argv.slice(2);
const timer = setTimeout(() => fail(new Error(`scenario ${scenario} timed out`)), 10000);
const opened = [];

function fail(err) {
  process.stdout.write(JSON.stringify({ ok: false, scenario, error: String(err?.stack ?? err) }) + '\n');
  process.exit(1);
}

function connect(nsp = '/', opts = {}) {
  // auth.scenario lets the server report its disconnect reasons per scenario.
  const auth = { scenario, ...opts.auth };
  const s = io(url + nsp, { forceNew: true, reconnectionDelay: 50, reconnectionDelayMax: 100, ...opts, auth });
  opened.push(s);
  return s;
}

// once resolves with the arguments of the next ev emitted by emitter.
const once = (emitter, ev) => new Promise((resolve) => emitter.once(ev, (...args) => resolve(args)));

async function connected(s) {
  if (!s.connected) await Promise.race([once(s, 'connect'), once(s, 'connect_error').then(([e]) => { throw e; })]);
  return s;
}

// countReconnects counts the manager's reconnection attempts.
function countReconnects(s) {
  const c = { n: 0 };
  s.io.on('reconnect_attempt', () => c.n++);
  return c;
}

const quiet = (ms) => new Promise((r) => setTimeout(r, ms));

// roundTrip checks acks and binary both ways on a connected socket.
async function roundTrip(s) {
  // emitWithAck resolves with the first argument of the acknowledgement.
  const payload = { text: 'héllo', n: 42, buf: Buffer.from([1, 2, 3]), list: [Buffer.from('x'), { deep: Buffer.alloc(0) }] };
  const res = await s.timeout(5000).emitWithAck('echo', payload);
  assert.equal(res.text, 'héllo');
  assert.equal(res.n, 42);
  assert.deepEqual(Buffer.from(res.buf), Buffer.from([1, 2, 3]));
  assert.equal(Buffer.from(res.list[0]).toString(), 'x');
  assert.equal(Buffer.from(res.list[1].deep).length, 0);
  // A plain callback sees every argument of the acknowledgement.
  const all = await new Promise((resolve) => s.emit('echo', 1, Buffer.from([255]), 'three', (...args) => resolve(args)));
  assert.equal(all.length, 3);
  assert.equal(all[0], 1);
  assert.deepEqual(Buffer.from(all[1]), Buffer.from([255]));
  assert.equal(all[2], 'three');
  return res;
}

// disconnectClose connects with opts, waits for the upgrade if upgraded,
// and has the server call Disconnect(true). The transport in use when it is
// asked for must be transport, unless null.
async function disconnectClose(opts, transport, upgraded = false) {
  const s = connect('/', opts);
  const upgrade = once(s.io, 'open').then(() => once(s.io.engine, 'upgrade'));
  await connected(s);
  if (upgraded) await upgrade;
  const attempts = countReconnects(s);
  const reason = once(s, 'disconnect');
  const at = s.io.engine.transport.name;
  if (transport) assert.equal(at, transport);
  s.emit('disconnect-me', true);
  const [r] = await reason;
  assert.equal(r, 'io server disconnect');
  await quiet(400);
  assert.equal(attempts.n, 0);
  assert.equal(s.connected, false);
  return { reason: r, attempts: attempts.n, transport: at };
}

// disconnectOnConnect connects with opts to a server that disconnects the
// socket (with close) in its connect handler.
async function disconnectOnConnect(opts) {
  const s = connect('/', { ...opts, auth: { disconnectOnConnect: true } });
  const attempts = countReconnects(s);
  const [r] = await once(s, 'disconnect');
  assert.equal(r, 'io server disconnect');
  await quiet(400);
  assert.equal(attempts.n, 0);
  assert.equal(s.connected, false);
  return { reason: r, attempts: attempts.n };
}

const scenarios = {
  // One transport only, then acks and binary both ways.
  async websocket() {
    const s = await connected(connect('/', { transports: ['websocket'] }));
    assert.equal(s.io.engine.transport.name, 'websocket');
    await roundTrip(s);
    return { transport: s.io.engine.transport.name };
  },
  async polling() {
    const s = await connected(connect('/', { transports: ['polling'] }));
    assert.equal(s.io.engine.transport.name, 'polling');
    await roundTrip(s);
    return { transport: s.io.engine.transport.name };
  },
  async upgrade() {
    const s = connect('/');
    const upgraded = once(s.io.engine, 'upgrade');
    await connected(s);
    await upgraded;
    assert.equal(s.io.engine.transport.name, 'websocket');
    await roundTrip(s);
    return { transport: s.io.engine.transport.name };
  },

  // The server sends binary at depth; the client acks the server's
  // emitWithAck (with binary), and the server reports what it received.
  async acks() {
    const s = await connected(connect('/', { transports: ['websocket'] }));
    s.on('question', (q, cb) => {
      assert.deepEqual(Buffer.from(q.blob), Buffer.from([9, 8, 7]));
      assert.deepEqual(Buffer.from(q.nested[0].more), Buffer.from('more'));
      cb('answer', Buffer.from([4, 2]));
    });
    const answer = once(s, 'answer');
    s.emit('ask-me');
    const [got] = await answer;
    assert.equal(got.args[0], 'answer');
    assert.deepEqual(Buffer.from(got.args[1]), Buffer.from([4, 2]));
    await roundTrip(s);
    return { answer: got.args[0] };
  },

  // A refusing middleware's CONNECT_ERROR reaches connect_error with its
  // data, and the client does not retry.
  async connectError() {
    const s = connect('/private', { auth: { token: 'bad' } });
    const attempts = countReconnects(s);
    const [err] = await once(s, 'connect_error');
    assert.equal(err.message, 'unauthorized');
    assert.deepEqual(err.data, { code: 'NO_SESSION', token: 'bad' });
    await quiet(400);
    assert.equal(attempts.n, 0);
    assert.equal(s.connected, false);
    return { message: err.message, data: err.data, attempts: attempts.n };
  },

  // Socket.Disconnect: "io server disconnect", no reconnection.
  async serverDisconnect() {
    const s = await connected(connect('/'));
    const attempts = countReconnects(s);
    const reason = once(s, 'disconnect');
    s.emit('disconnect-me', false);
    const [r] = await reason;
    assert.equal(r, 'io server disconnect');
    await quiet(400);
    assert.equal(attempts.n, 0);
    assert.equal(s.connected, false);
    return { reason: r, attempts: attempts.n };
  },
  // Socket.Disconnect(true) on each transport: the DISCONNECT arrives
  // before the connection closes, so "io server disconnect", no retry.
  serverDisconnectClose: () => disconnectClose({ transports: ['websocket'] }, 'websocket'),
  serverDisconnectClosePolling: () => disconnectClose({ transports: ['polling'] }, 'polling'),
  // Default transports: asked for as soon as connected, while the upgrade
  // is probably in progress, and once the upgrade has completed.
  serverDisconnectCloseUpgrading: () => disconnectClose({}, null),
  serverDisconnectCloseUpgraded: () => disconnectClose({}, 'websocket', true),
  // Several sockets, each disconnected by the server at a different delay
  // after connecting: the upgrade is caught at its various steps.
  async serverDisconnectCloseDuringUpgrade() {
    const delays = [0, 5, 10, 20, 30, 45, 60];
    const results = await Promise.all(delays.map(async (ms) => {
      const s = await connected(connect('/'));
      const attempts = countReconnects(s);
      const reason = once(s, 'disconnect');
      s.emit('disconnect-me-in', ms);
      const [r] = await reason;
      return { ms, r, s, attempts };
    }));
    await quiet(400);
    for (const { ms, r, s, attempts } of results) {
      assert.equal(r, 'io server disconnect', `delay ${ms} ms`);
      assert.equal(attempts.n, 0, `delay ${ms} ms`);
      assert.equal(s.connected, false, `delay ${ms} ms`);
    }
    return { reasons: results.map(({ ms, r }) => [ms, r]) };
  },
  // The server disconnects in its connect handler, racing the upgrade.
  serverDisconnectCloseOnConnect: () => disconnectOnConnect({}),
  serverDisconnectCloseOnConnectPolling: () => disconnectOnConnect({ transports: ['polling'] }),
  serverDisconnectCloseOnConnectWebsocket: () => disconnectOnConnect({ transports: ['websocket'] }),

  // The server drops the Engine.IO session: the client reconnects.
  async transportDrop() {
    const s = await connected(connect('/', { transports: ['websocket'] }));
    const first = s.id;
    const reason = once(s, 'disconnect');
    const again = once(s, 'connect');
    s.emit('drop-me');
    const [r] = await reason;
    assert.equal(r, 'transport close');
    await again;
    assert.notEqual(s.id, first);
    await roundTrip(s);
    return { reason: r, reconnected: true };
  },

  // A custom namespace, multiplexed with "/" on one Engine.IO session.
  async customNamespace() {
    const m = new Manager(url, { transports: ['websocket'] });
    const main = m.socket('/');
    const custom = m.socket('/custom', { auth: { hello: 'world' } });
    opened.push(main, custom);
    const hello = once(custom, 'hello-custom');
    await Promise.all([connected(main), connected(custom)]);
    const [auth] = await hello;
    assert.deepEqual(auth, { hello: 'world' });
    await roundTrip(main);
    const res = await custom.timeout(5000).emitWithAck('echo', 'on custom');
    assert.equal(res, 'custom:on custom');
    return { engines: 1, auth };
  },

  // Rooms: a broadcast to a room minus another reaches exactly its sockets.
  async rooms() {
    const names = ['a', 'b', 'c'];
    const socks = await Promise.all(names.map(() => connected(connect('/', { transports: ['websocket'] }))));
    const got = Object.fromEntries(names.map((n) => [n, []]));
    socks.forEach((s, i) => s.on('news', (msg) => got[names[i]].push(msg)));
    await socks[0].timeout(5000).emitWithAck('join', 'red');
    await socks[1].timeout(5000).emitWithAck('join', 'red');
    await socks[1].timeout(5000).emitWithAck('join', 'quiet');
    await socks[2].timeout(5000).emitWithAck('join', 'blue');
    // "done" is sent to everyone after the broadcasts: per-socket order
    // means anything due to a socket has arrived when its "done" does.
    const done = socks.map((s) => once(s, 'done'));
    await socks[2].timeout(5000).emitWithAck('broadcast', { to: ['red'], except: ['quiet'], msg: 'red-not-quiet' });
    await socks[2].timeout(5000).emitWithAck('broadcast', { to: ['red', 'blue'], except: [], msg: 'red-or-blue' });
    await socks[2].timeout(5000).emitWithAck('broadcast', { to: [socks[1].id], except: [], msg: 'to-b' });
    await socks[2].timeout(5000).emitWithAck('broadcast', { to: [], except: ['blue'], msg: 'all-but-blue' });
    await socks[2].timeout(5000).emitWithAck('done');
    await Promise.all(done);
    assert.deepEqual(got, {
      a: ['red-not-quiet', 'red-or-blue', 'all-but-blue'],
      b: ['red-or-blue', 'to-b', 'all-but-blue'],
      c: ['red-or-blue'],
    });
    return { got };
  },
};

try {
  const run = scenarios[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}`);
  const result = await run();
  process.stdout.write(JSON.stringify({ ok: true, scenario, ...result }) + '\n');
  clearTimeout(timer);
  for (const s of opened) s.disconnect();
  process.exit(0);
} catch (err) {
  fail(err);
}
