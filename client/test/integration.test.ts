// The client against a real socket.io v4 server and the real socket.io-client:
// checks what the unit tests' fake assumes (a CONNECT_ERROR deactivates the
// socket, a server disconnect is final, a transport close is retried).
import { createServer, type Server as HTTPServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Server, type Socket } from 'socket.io';
import {
  createRealtime,
  type ConnectionState,
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
let sockets: Socket[];
let clients: Realtime[];

beforeEach(async () => {
  decisions = ['accept'];
  handshakes = 0;
  sockets = [];
  clients = [];
  http = createServer();
  server = new Server(http);
  server.use((_socket, next) => {
    const d = decisions.length > 1 ? decisions.shift() : decisions[0];
    handshakes++;
    if (d === undefined || d === 'accept') return next();
    const message = d.refuse === 'INTERNAL' ? 'internal error' : 'unauthorized';
    next(Object.assign(new Error(message), { data: { code: d.refuse } }));
  });
  server.on('connection', (s) => sockets.push(s));
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
