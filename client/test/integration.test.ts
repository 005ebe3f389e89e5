// The client against a real socket.io v4 server and the real socket.io-client:
// checks what the unit tests' fake assumes (a CONNECT_ERROR deactivates the
// socket, a server disconnect is final, a transport close is retried).
import { EventEmitter, once } from 'node:events';
import { createServer, type Server as HTTPServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Server, type Socket } from 'socket.io';
import {
  CallError,
  createRealtime,
  SubscriptionError,
  type ConnectionState,
  type PresenceSnapshot,
  type Realtime,
  type RealtimeOptions,
} from '../src/index.js';

/** What the fake server does with the next handshakes, in order; the last one repeats. */
type Decision = { refuse: string } | 'accept';

let http: HTTPServer;
let server: Server;
let url: string;
let decisions: Decision[];
let handshakes: number;
/** performance.now() of each handshake, in order. */
let handshakeTimes: number[];
let sockets: Socket[];
let clients: Realtime[];
/** The server's answer to each subscribe, by room; a room missing is `{"ok": true}`. */
let subscribeAnswers: Map<string, unknown[]>;
/** The subscribe and unsubscribe requests the server received, as `event room`. */
let requests: string[];
/** performance.now() of each request of `requests`. */
let requestTimes: number[];
/** Emits the room's name, with the socket, when the server joins a socket to it. */
let joins: EventEmitter;

beforeEach(async () => {
  decisions = ['accept'];
  handshakes = 0;
  handshakeTimes = [];
  sockets = [];
  clients = [];
  subscribeAnswers = new Map();
  requests = [];
  requestTimes = [];
  joins = new EventEmitter();
  http = createServer();
  server = new Server(http);
  server.use((_socket, next) => {
    const d = decisions.length > 1 ? decisions.shift() : decisions[0];
    handshakes++;
    handshakeTimes.push(performance.now());
    if (d === undefined || d === 'accept') return next();
    const message = d.refuse === 'INTERNAL' ? 'internal error' : 'unauthorized';
    next(Object.assign(new Error(message), { data: { code: d.refuse } }));
  });
  server.on('connection', (s) => {
    sockets.push(s);
    // What sessiongate's gateway does (contract §12), with scripted answers.
    s.on('subscribe', (data: { room: string }, ack: (reply: unknown) => void) => {
      requests.push(`subscribe ${data.room}`);
      requestTimes.push(performance.now());
      const queue = subscribeAnswers.get(data.room) ?? [];
      const answer = queue.length > 1 ? queue.shift() : (queue[0] ?? { ok: true });
      if (isRecord(answer) && answer['ok'] === true) {
        void s.join(data.room);
        joins.emit(data.room, s);
      }
      ack(answer);
    });
    s.on('unsubscribe', (data: { room: string }, ack: (reply: unknown) => void) => {
      requests.push(`unsubscribe ${data.room}`);
      void s.leave(data.room);
      ack({ ok: true });
    });
    // Client events as the application would answer them.
    s.on('incident:ack', (data: { id: number }, ack: (reply: unknown) => void) => {
      if (data.id === 0) ack({ error: { code: 'REJECTED', message: 'no such incident' } });
      else if (data.id < 0)
        return; // never answers
      else ack({ acked: data.id });
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

afterEach(async () => {
  for (const c of clients) c.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function connect(options: RealtimeOptions = {}): Realtime {
  const rt = createRealtime({ url, reconnectionDelay: 50, reconnectionDelayMax: 100, ...options });
  clients.push(rt);
  return rt;
}

function waitFor(rt: Realtime, state: ConnectionState, ms = 3000): Promise<void> {
  if (rt.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`state ${rt.state}, want ${state} within ${ms} ms`));
    }, ms);
    const off = rt.onStateChange((s) => {
      if (s !== state) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** Resolves when the server's first socket gets `event` (to the room, say). */
function received(rt: Realtime, event: 'notification'): Promise<unknown> {
  return new Promise((resolve) => {
    const off = rt.on(event, (d) => {
      off();
      resolve(d);
    });
  });
}

/** Waits long enough for a retry to have happened, had there been one. */
const quiet = (ms = 300) => new Promise((resolve) => setTimeout(resolve, ms));

describe('against socket.io 4', () => {
  it('connects and dispatches typed events', async () => {
    const rt = connect();
    const got = new Promise((resolve) => rt.on('notification', resolve));
    await waitFor(rt, 'connected');
    sockets[0]?.emit('notification', {
      id: 'n1',
      message: 'hello',
      createdAt: '2026-11-27T00:00:00Z',
    });
    await expect(got).resolves.toEqual({
      id: 'n1',
      message: 'hello',
      createdAt: '2026-11-27T00:00:00Z',
    });
  });

  it('stops on a refusal code', async () => {
    decisions = [{ refuse: 'SESSION_NOT_FOUND' }];
    const rt = connect();
    await waitFor(rt, 'unauthorized');
    expect(rt.code).toBe('SESSION_NOT_FOUND');
    await quiet();
    expect(handshakes).toBe(1);
    expect(rt.state).toBe('unauthorized');
  });

  it('retries INTERNAL and RATE_LIMITED until admitted', async () => {
    decisions = [{ refuse: 'INTERNAL' }, { refuse: 'RATE_LIMITED' }, 'accept'];
    const rt = connect();
    const seen: Array<[ConnectionState, string | undefined]> = [];
    rt.onStateChange((s, d) => seen.push([s, d.code]));
    await waitFor(rt, 'connected');
    expect(handshakes).toBe(3);
    expect(seen).toEqual([
      ['reconnecting', 'INTERNAL'],
      ['reconnecting', 'RATE_LIMITED'],
      ['connected', undefined],
    ]);
  });

  it('session_expired ends the connection for good', async () => {
    const rt = connect();
    const reasons: string[] = [];
    rt.setSessionExpiredHandler((r) => reasons.push(r));
    await waitFor(rt, 'connected');
    sockets[0]?.emit('session_expired', { reason: 'logged_out' });
    sockets[0]?.disconnect(true);
    await waitFor(rt, 'expired');
    await quiet();
    expect(reasons).toEqual(['logged_out']);
    expect(handshakes).toBe(1);
    expect(rt.state).toBe('expired');
  });

  it('reconnects after a transport close', async () => {
    const rt = connect();
    await waitFor(rt, 'connected');
    sockets[0]?.conn.close();
    await waitFor(rt, 'reconnecting');
    await waitFor(rt, 'connected');
    expect(handshakes).toBe(2);
  });

  it('comes back after server_restart within the announced window', async () => {
    const rt = connect({ reconnectionDelay: 5000, reconnectionDelayMax: 5000 });
    await waitFor(rt, 'connected');
    const start = Date.now();
    sockets[0]?.emit('server_restart', { retryAfterMs: 200 });
    sockets[0]?.conn.close();
    await waitFor(rt, 'reconnecting');
    await waitFor(rt, 'connected');
    // Well under socket.io-client's own reconnection delay (5 s here).
    expect(Date.now() - start).toBeLessThan(1500);
    expect(handshakes).toBe(2);
  });
});

describe('subscriptions against socket.io 4', () => {
  const note = { id: 'n1', message: 'room', createdAt: '2026-12-03T00:00:00Z' };

  it('subscribes, receives room events, and unsubscribes', async () => {
    const rt = connect();
    await rt.subscribe('incident:7');
    const got = received(rt, 'notification');
    server.to('incident:7').emit('notification', note);
    await expect(got).resolves.toEqual(note);
    await rt.unsubscribe('incident:7');
    expect(requests).toEqual(['subscribe incident:7', 'unsubscribe incident:7']);
    expect(sockets[0]?.rooms.has('incident:7')).toBe(false);
    expect(rt.subscriptions).toEqual([]);
  });

  it('rejects FORBIDDEN at once', async () => {
    subscribeAnswers.set('admin:1', [
      { ok: false, error: { code: 'FORBIDDEN', message: 'not allowed' } },
    ]);
    const rt = connect();
    const err = await rt.subscribe('admin:1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SubscriptionError);
    expect(err).toMatchObject({ code: 'FORBIDDEN', room: 'admin:1', message: 'not allowed' });
    expect(requests).toEqual(['subscribe admin:1']);
  });

  it('retries UNAVAILABLE and RATE_LIMITED until allowed', async () => {
    subscribeAnswers.set('incident:7', [
      { ok: false, error: { code: 'UNAVAILABLE', message: 'hook down', temporary: true } },
      {
        ok: false,
        error: { code: 'RATE_LIMITED', message: 'slow down', temporary: true, retryAfterMs: 20 },
      },
      { ok: true },
    ]);
    const rt = connect();
    await rt.subscribe('incident:7');
    expect(requests).toEqual(Array(3).fill('subscribe incident:7'));
    expect(sockets[0]?.rooms.has('incident:7')).toBe(true);
  });

  it('subscribes again after a reconnection', async () => {
    const rt = connect();
    await rt.subscribe('incident:7');
    const rejoined = once(joins, 'incident:7');
    sockets[0]?.conn.close();
    // The new socket is in the room only because the client asked again.
    const [joiner] = (await rejoined) as [Socket];
    expect(joiner).not.toBe(sockets[0]);
    const got = received(rt, 'notification');
    server.to('incident:7').emit('notification', note);
    await expect(got).resolves.toEqual(note);
    expect(requests).toEqual(['subscribe incident:7', 'subscribe incident:7']);
  });

  it('reports a resubscription refused after a reconnection', async () => {
    const rt = connect();
    await rt.subscribe('incident:7');
    const refused = new Promise<SubscriptionError>((resolve) => rt.onSubscriptionError(resolve));
    subscribeAnswers.set('incident:7', [
      { ok: false, error: { code: 'FORBIDDEN', message: 'access revoked' } },
    ]);
    sockets[0]?.conn.close();
    await expect(refused).resolves.toMatchObject({ code: 'FORBIDDEN', room: 'incident:7' });
    expect(rt.subscriptions).toEqual([]);
  });
});

describe('client events against socket.io 4', () => {
  it('resolves with the application reply', async () => {
    const rt = connect();
    await waitFor(rt, 'connected');
    await expect(rt.call('incident:ack', { id: 7 })).resolves.toEqual({ acked: 7 });
  });

  it('rejects an error reply with a CallError', async () => {
    const rt = connect();
    const err = await rt.call('incident:ack', { id: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallError);
    expect(err).toMatchObject({ code: 'REJECTED', event: 'incident:ack', temporary: false });
  });

  it('rejects with TIMEOUT when the server does not answer', async () => {
    const rt = connect();
    await waitFor(rt, 'connected');
    await expect(rt.call('incident:ack', { id: -1 }, { timeout: 100 })).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
  });

  it('rejects with DISCONNECTED when refused, and waits for a connection under way', async () => {
    decisions = [{ refuse: 'NOT_AUTHENTICATED' }, 'accept'];
    const rt = connect();
    await waitFor(rt, 'unauthorized');
    await expect(rt.call('incident:ack', { id: 7 })).rejects.toMatchObject({
      code: 'DISCONNECTED',
    });
    rt.connect();
    // Sent once the connection that has just started is admitted.
    await expect(rt.call('incident:ack', { id: 7 })).resolves.toEqual({ acked: 7 });
  });
});

describe('rate limits against socket.io 4', () => {
  it('waits at least retryAfterMs before retrying a RATE_LIMITED subscribe', async () => {
    subscribeAnswers.set('incident:7', [
      {
        ok: false,
        error: { code: 'RATE_LIMITED', message: 'slow down', temporary: true, retryAfterMs: 300 },
      },
      { ok: true },
    ]);
    const rt = connect({ reconnectionDelay: 1 });
    await rt.subscribe('incident:7');
    expect(requests).toEqual(Array(2).fill('subscribe incident:7'));
    const [first = 0, second = 0] = requestTimes;
    // Node timers may fire up to 1 ms early by performance.now().
    expect(second - first).toBeGreaterThanOrEqual(299);
  });

  it('honours rate_limited and its server disconnect: back after retryAfterMs, resubscribed', async () => {
    const rt = connect({ reconnectionDelay: 50, randomizationFactor: 0 });
    await rt.subscribe('incident:7');
    const states: ConnectionState[] = [];
    rt.onStateChange((s) => states.push(s));
    const rejoined = once(joins, 'incident:7');
    // What the gateway does to a socket far over the limit (contract §14).
    const sentAt = performance.now();
    sockets[0]?.emit('rate_limited', { retryAfterMs: 400 });
    sockets[0]?.disconnect();
    const [joiner] = (await rejoined) as [Socket];
    expect(joiner).not.toBe(sockets[0]);
    expect(handshakes).toBe(2);
    expect((handshakeTimes[1] ?? 0) - sentAt).toBeGreaterThanOrEqual(400);
    expect(states).toEqual(['rate_limited', 'reconnecting', 'connected']);
    expect(requests).toEqual(['subscribe incident:7', 'subscribe incident:7']);

    // Sent away again right after: the backoff on top of retryAfterMs doubles (50, then 100 ms).
    const again = once(joins, 'incident:7');
    const sentAgainAt = performance.now();
    joiner.emit('rate_limited', { retryAfterMs: 400 });
    joiner.disconnect();
    await again;
    expect(handshakes).toBe(3);
    // (Node timers may fire up to 1 ms early by performance.now().)
    expect((handshakeTimes[2] ?? 0) - sentAgainAt).toBeGreaterThanOrEqual(499);
  });
});

describe('presence against socket.io 4', () => {
  it('seeds from the ack, follows events, seeds again after a reconnection', async () => {
    subscribeAnswers.set('incident:7', [
      { ok: true, presence: { users: ['7'], count: 1, connections: 1 } },
    ]);
    const rt = connect();
    const sub = await rt.subscribe('incident:7');
    expect(sub.presence).toMatchObject({ users: ['7'], count: 1, connections: 1 });
    // A handler is also called with the members known when it is set: wait for a match.
    const until = (want: (s: PresenceSnapshot) => boolean) =>
      new Promise<PresenceSnapshot>((resolve) => {
        const off = rt.onPresence('incident:7', (s) => {
          if (!want(s)) return;
          off();
          resolve(s);
        });
      });
    let got = until((s) => s.count === 2);
    server
      .to('incident:7')
      .emit('presence', { room: 'incident:7', joined: ['8'], left: [], count: 2 });
    await expect(got).resolves.toMatchObject({ users: ['7', '8'], joined: ['8'], count: 2 });
    subscribeAnswers.set('incident:7', [
      { ok: true, presence: { users: ['7', '9'], count: 2, connections: 3 } },
    ]);
    got = until((s) => s.connections === 3);
    sockets[0]?.conn.close();
    await expect(got).resolves.toMatchObject({
      users: ['7', '9'],
      joined: ['9'],
      left: ['8'],
      count: 2,
    });
  });
});

describe('recovery against socket.io 4 with connectionStateRecovery', () => {
  it('strips the offsets, recovers the socket and its rooms, and asks for no room again', async () => {
    const h = createServer();
    const srv = new Server(h, { connectionStateRecovery: {} });
    const conns: Socket[] = [];
    const asked: string[] = [];
    const auths: unknown[] = [];
    srv.on('connection', (s) => {
      conns.push(s);
      auths.push(s.handshake.auth);
      s.on('subscribe', (data: { room: string }, ack: (reply: unknown) => void) => {
        asked.push(data.room);
        void s.join(data.room);
        ack({ ok: true });
      });
    });
    await new Promise<void>((resolve) => h.listen(0, '127.0.0.1', resolve));
    try {
      const rt = createRealtime<{ hello: unknown }>({
        url: `http://127.0.0.1:${(h.address() as AddressInfo).port}`,
        reconnectionDelay: 50,
        reconnectionDelayMax: 100,
        socketOptions: { transports: ['websocket'] },
      });
      clients.push(rt);
      const details: unknown[] = [];
      rt.onStateChange((s, d) => s === 'connected' && details.push(d));
      await rt.subscribe('r');
      const got: unknown[] = [];
      let done: () => void = () => {};
      const all = new Promise<void>((ok) => (done = ok));
      rt.on('hello', (d) => {
        got.push(d);
        if (got.length === 4) done();
      });
      const first = conns[0]!;
      first.emit('hello'); // no argument: only its offset
      first.emit('hello', 'one');
      first.conn.close(); // the transport, not the socket
      await waitFor(rt, 'reconnecting');
      srv.to('r').emit('hello', { n: 2 }); // during the drop
      srv.to('r').emit('hello', 'three');
      await all;
      await waitFor(rt, 'connected');
      expect(got).toEqual([undefined, 'one', { n: 2 }, 'three']);
      expect(details).toEqual([{}, { recovered: true }]);
      expect(conns[1]?.recovered).toBe(true);
      expect(asked).toEqual(['r']);
      expect(auths[0]).toEqual({ recovery: true });
      expect(auths[1]).toMatchObject({ recovery: true, pid: expect.any(String) });
    } finally {
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });
});
