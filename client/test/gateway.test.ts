// The client against the real sessiongate gateway: the Go binary, built
// from this repository, serving --demo on an SQLite file in a temporary
// DATA_DIR (no database server needed), its demo users logged in through
// POST /auth/login, their session cookie sent by socket.io-client in Node.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as dial, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CallError,
  createRealtime,
  SubscriptionError,
  type ConnectionState,
  type IncidentCreated,
  type PresenceSnapshot,
  type Realtime,
  type RealtimeOptions,
  type Recovery,
  type SocketLike,
  type StateDetail,
} from '../src/index.js';

const root = resolve(import.meta.dirname, '../..');
const password = 'gateway test password';
const publishKey = 'gateway-test-publish-key';

/** A sessiongate process serving --demo. */
interface Gateway {
  base: string;
  proc: ChildProcess;
  /** The last lines it wrote, for failure messages. */
  log: string[];
}

let dir: string;
let bin: string;
const gateways: Gateway[] = [];
const clients: Realtime[] = [];
const proxies: Proxy[] = [];

/**
 * Builds cmd/sessiongate once for the file. The Go toolchain is required:
 * without it the tests fail, saying so.
 */
function build(): void {
  dir = mkdtempSync(join(tmpdir(), 'sessiongate-client-gateway-'));
  bin = join(dir, 'sessiongate');
  const go = process.env['GO'] ?? 'go';
  const r = spawnSync(go, ['build', '-o', bin, './cmd/sessiongate'], {
    cwd: root,
    encoding: 'utf8',
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT')
    throw new Error(
      `gateway.test.ts needs Go to build cmd/sessiongate: "${go}" was not found (install Go 1.26 and put go on PATH, or set GO)`,
    );
  if (r.status !== 0)
    throw new Error(`${go} build -o ${bin} ./cmd/sessiongate failed:\n${r.stderr}${r.error ?? ''}`);
}

/**
 * Starts `sessiongate serve --demo` on a free port of 127.0.0.1 with a
 * fresh DATA_DIR and only the settings given (no DATABASE_URL, CLUSTER, …
 * from the environment), and resolves once /readyz answers 200.
 */
async function start(settings: Record<string, string> = {}): Promise<Gateway> {
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '',
    LISTEN_ADDR: '127.0.0.1:0',
    DATA_DIR: mkdtempSync(join(dir, 'data-')),
    DEMO_PASSWORD: password,
    PUBLISH_KEY: publishKey,
    LOG_LEVEL: 'warn',
    SHUTDOWN_TIMEOUT: '2s',
    ...settings,
  };
  const proc = spawn(bin, ['serve', '--demo'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  // Stopped by afterAll, also when it fails to start.
  const g: Gateway = { base: '', proc, log };
  gateways.push(g);
  const keep = (line: string) => {
    log.push(line);
    if (log.length > 50) log.shift();
  };
  createInterface({ input: proc.stderr! }).on('line', keep);
  const port = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`no demo URL within 30 s:\n${log.join('\n')}`)),
      30_000,
    );
    proc.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`sessiongate exited (${code}) before listening:\n${log.join('\n')}`));
    });
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      keep(line);
      const m = /open http:\/\/localhost:(\d+)\//.exec(line);
      if (m?.[1]) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
  });
  g.base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const res = await fetch(`${g.base}/readyz`).catch(() => undefined);
    if (res?.status === 200) break;
    if (i === 100) throw new Error(`${g.base}/readyz not 200 within 10 s:\n${log.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return g;
}

/** A logged-in demo user: its session cookie (`connect.sid=…`) and id (`passport.user`). */
interface Login {
  cookie: string;
  id: string;
}

/** Logs in a demo user. */
async function login(g: Gateway, user: string): Promise<Login> {
  const res = await fetch(`${g.base}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: `${user}@example.com`, password }),
  });
  expect(res.status, `login ${user}: ${await res.clone().text()}`).toBe(200);
  const cookie = res.headers.getSetCookie()[0]?.split(';')[0];
  if (!cookie) throw new Error(`login ${user}: no Set-Cookie`);
  const body = (await res.json()) as { user: { id: number } };
  return { cookie, id: String(body.user.id) };
}

/** The acknowledgements a client received, emitted as (event, reply). */
type AckTap = EventEmitter;

/**
 * Connects a Realtime with `cookie` over a websocket, through
 * socket.io-client's own `io`, and taps its acknowledgements.
 */
function connect(g: Gateway, who: Login | string, options: RealtimeOptions = {}) {
  const cookie = typeof who === 'string' ? who : who.cookie;
  const acks: AckTap = new EventEmitter();
  const rt = createRealtime({
    url: g.base,
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
    ...options,
    socketOptions: { transports: ['websocket'], extraHeaders: { cookie } },
    socketFactory: (url, opts) => tapAcks(io(url, opts), acks),
  });
  clients.push(rt);
  const states: Array<[ConnectionState, StateDetail, number]> = [];
  rt.onStateChange((s, d) => states.push([s, d, performance.now()]));
  return { rt, acks, states };
}

/** Wraps `timeout(ms).emit` so that every acknowledgement is also emitted on `acks`. */
function tapAcks(s: SocketLike, acks: AckTap): SocketLike {
  const timeout = s.timeout.bind(s);
  return Object.assign(s, {
    timeout: (ms: number) => {
      const t = timeout(ms);
      return {
        emit: (event: string, ...args: unknown[]) => {
          const cb = args.pop() as (err: unknown, reply: unknown) => void;
          return t.emit(event, ...args, (err: unknown, reply: unknown) => {
            if (!err) acks.emit(event, reply);
            cb(err, reply);
          });
        },
      };
    },
  });
}

function waitFor(rt: Realtime, state: ConnectionState, ms = 10_000): Promise<void> {
  if (rt.state === state) return Promise.resolve();
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      off();
      fail(new Error(`state ${rt.state} (${rt.code}), want ${state} within ${ms} ms`));
    }, ms);
    const off = rt.onStateChange((s) => {
      if (s !== state) return;
      clearTimeout(timer);
      off();
      ok();
    });
  });
}

async function publish(g: Gateway, to: string, event: string, data: unknown): Promise<void> {
  const res = await fetch(`${g.base}/api/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${publishKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ to: [to], event, data }),
  });
  expect(res.status, `publish: ${await res.clone().text()}`).toBeLessThan(300);
}

const incident: IncidentCreated = {
  id: 'inc-7',
  title: 'Disk almost full',
  severity: 'high',
  createdAt: '2026-12-03T00:00:00Z',
};

/**
 * A TCP proxy in front of a gateway, whose connections can be cut (reset,
 * not closed by either peer) and new ones held until it is resumed.
 */
interface Proxy {
  /** The proxy's http://127.0.0.1:<port>. */
  base: string;
  /** Resets every proxied connection, both sides, and holds new ones. */
  cut(): void;
  /** Lets the held connections and the new ones through. */
  resume(): void;
  close(): void;
}

async function proxy(g: Gateway): Promise<Proxy> {
  const target = new URL(g.base);
  const open = new Set<Socket>();
  let held: Socket[] = [];
  let paused = false;
  const pipe = (down: Socket) => {
    const up = dial(Number(target.port), target.hostname);
    open.add(down).add(up);
    down.pipe(up).pipe(down);
    const gone = () => {
      open.delete(down);
      open.delete(up);
      down.destroy();
      up.destroy();
    };
    down.on('error', gone).on('close', gone);
    up.on('error', gone).on('close', gone);
  };
  const server = createServer((down) => {
    if (paused) {
      down.on('error', () => {});
      held.push(down);
    } else pipe(down);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const p: Proxy = {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut() {
      paused = true;
      for (const s of [...open]) s.resetAndDestroy();
      open.clear();
    },
    resume() {
      paused = false;
      const waiting = held;
      held = [];
      for (const down of waiting) if (!down.destroyed) pipe(down);
    },
    close() {
      server.close();
      for (const s of [...open, ...held]) s.destroy();
    },
  };
  proxies.push(p);
  return p;
}

beforeAll(build, 180_000);

afterAll(async () => {
  for (const c of clients) c.close();
  for (const p of proxies) p.close();
  await Promise.all(
    gateways.map(async (g) => {
      if (g.proc.exitCode !== null) return;
      const exited = once(g.proc, 'exit');
      g.proc.kill('SIGTERM');
      await exited;
    }),
  );
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 20_000);

/** Resolves with the first snapshot of `room` that `want` accepts. */
function presenceUntil(
  rt: Realtime,
  room: string,
  want: (s: PresenceSnapshot) => boolean,
): Promise<PresenceSnapshot> {
  return new Promise((ok) => {
    const off = rt.onPresence(room, (s) => {
      if (!want(s)) return;
      off();
      ok(s);
    });
  });
}

describe('against the sessiongate gateway (--demo)', () => {
  let g: Gateway;
  let alice: Login;
  let bob: Login;

  beforeAll(async () => {
    // lobby: a room every user may join, with presence; leaves are told at once.
    g = await start({
      PUBLIC_ROOMS: 'lobby',
      PRESENCE_ROOMS: 'incident:*,lobby',
      PRESENCE_LEAVE_DELAY: '0',
    });
    [alice, bob] = await Promise.all([login(g, 'alice'), login(g, 'bob')]);
  }, 60_000);

  it('admits a session cookie and refuses none', async () => {
    const { rt } = connect(g, alice);
    await waitFor(rt, 'connected');
    const { rt: anon } = connect(g, 'connect.sid=s%3Anope.nope');
    await waitFor(anon, 'unauthorized');
    expect(anon.code).toBe('BAD_SIGNATURE');
  });

  it('subscribes alice to incident:7 and delivers a published event', async () => {
    const { rt } = connect(g, alice);
    const sub = await rt.subscribe('incident:7');
    expect(sub.room).toBe('incident:7');
    expect(sub.presence?.users).toContain(alice.id);
    const got = new Promise((ok) => rt.on('incident:created', ok));
    await publish(g, 'incident:7', 'incident:created', incident);
    await expect(got).resolves.toEqual(incident);
  });

  it('refuses bob incident:7 with a typed FORBIDDEN', async () => {
    const { rt } = connect(g, bob);
    const err = await rt.subscribe('incident:7').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SubscriptionError);
    expect(err).toMatchObject({ code: 'FORBIDDEN', room: 'incident:7', temporary: false });
    expect(rt.subscriptions).toEqual([]);
  });

  it("answers rt.call('incident:ack') with the demo application's reply", async () => {
    const { rt } = connect(g, alice);
    await expect(rt.call('incident:ack', { id: 7 })).resolves.toEqual({
      ok: true,
      id: 7,
      ackedBy: 'alice@example.com',
    });
  });

  it('rejects an event the server does not forward with UNKNOWN_EVENT', async () => {
    const { rt } = connect(g, alice);
    const err = await rt.call('incident:delete', { id: 7 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallError);
    expect(err).toMatchObject({
      code: 'UNKNOWN_EVENT',
      event: 'incident:delete',
      temporary: false,
    });
  });

  it('tells presence between two users, and counts two tabs of one as one', async () => {
    const { rt: tab1 } = connect(g, alice);
    const first = await tab1.subscribe('lobby');
    expect(first.presence).toMatchObject({ users: [alice.id], count: 1, connections: 1 });
    const { rt: tab2 } = connect(g, alice);
    const second = await tab2.subscribe('lobby');
    expect(second.presence).toMatchObject({ users: [alice.id], count: 1, connections: 2 });

    const bobIn = presenceUntil(tab1, 'lobby', (s) => s.count === 2);
    const { rt: rb } = connect(g, bob);
    const third = await rb.subscribe('lobby');
    expect(new Set(third.presence?.users)).toEqual(new Set([alice.id, bob.id]));
    expect(third.presence).toMatchObject({ count: 2, connections: 3 });
    await expect(bobIn).resolves.toMatchObject({ joined: [bob.id], left: [], count: 2 });
    expect(new Set(tab1.presence('lobby')?.users)).toEqual(new Set([alice.id, bob.id]));

    await presenceUntil(tab2, 'lobby', (s) => s.count === 2);
    const bobOut = presenceUntil(tab2, 'lobby', (s) => s.left.length > 0);
    rb.close();
    await expect(bobOut).resolves.toMatchObject({ users: [alice.id], left: [bob.id], count: 1 });
  });
});

describe('against the gateway with EVENT_RATE_LIMIT=1', () => {
  it('honours rate_limited: back after retryAfterMs, subscribed again', async () => {
    const g = await start({ EVENT_RATE_LIMIT: '1', EVENT_RATE_BURST: '1' });
    const cookie = await login(g, 'alice');
    const { rt, acks, states } = connect(g, cookie, { randomizationFactor: 0 });
    await rt.subscribe('incident:7'); // the one token of the burst
    // Far over: more than 10 × burst refusals within 10 s.
    const calls = Array.from({ length: 12 }, () =>
      rt.call('incident:ack', { id: 7 }).catch((e: unknown) => e),
    );
    await waitFor(rt, 'rate_limited');
    const refused = (await Promise.all(calls)) as CallError[];
    expect(refused.every((e) => e instanceof CallError)).toBe(true);
    expect(refused[0]).toMatchObject({ code: 'RATE_LIMITED', temporary: true });
    expect(refused[0]?.retryAfterMs).toBeGreaterThan(0);

    const resubscribed = once(acks, 'subscribe');
    await waitFor(rt, 'connected');
    const [ack] = (await resubscribed) as [unknown];
    expect(ack).toMatchObject({ ok: true });
    const [limited, reconnecting] = states.filter(([s]) => s !== 'connected');
    expect(limited?.[0]).toBe('rate_limited');
    expect(reconnecting?.[0]).toBe('reconnecting');
    const retryAfterMs = limited?.[1].retryAfterMs ?? Infinity;
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(1000);
    // Not before the server's retryAfterMs.
    expect((reconnecting?.[2] ?? 0) - (limited?.[2] ?? 0)).toBeGreaterThanOrEqual(retryAfterMs);

    const got = new Promise((ok) => rt.on('incident:created', ok));
    await publish(g, 'incident:7', 'incident:created', incident);
    await expect(got).resolves.toEqual(incident);
  });
});

describe('against the gateway with recovery (RECOVERY=ask, the default)', () => {
  it('a cut TCP connection while events flow: each event once, in order, rooms kept', async () => {
    const g = await start();
    const alice = await login(g, 'alice');
    const px = await proxy(g);
    const { rt, acks, states } = connect({ ...g, base: px.base }, alice);
    const recoveries: Recovery[] = [];
    rt.onRecovery((r) => recoveries.push(r));
    let subscribes = 0;
    acks.on('subscribe', () => subscribes++);
    await rt.subscribe('incident:7');

    const total = 60;
    const got: unknown[] = [];
    // Ends with a marker, so that a lost event shows in the comparison.
    const all = new Promise<void>((ok) =>
      rt.on('notification', (d) => {
        if ((d as { id?: unknown }).id === 'end') ok();
        else got.push(d);
      }),
    );
    const send = async (from: number, to: number) => {
      for (let n = from; n <= to; n++)
        // In turn to the user's room and to the subscribed one.
        await publish(g, n % 2 ? `user:${alice.id}` : 'incident:7', 'notification', {
          id: String(n),
          message: `event ${n}`,
          createdAt: '2026-12-03T00:00:00Z',
        });
    };

    await send(1, 20);
    // Not waiting for 1..20 to arrive: some may be in flight when it breaks.
    px.cut();
    await waitFor(rt, 'reconnecting');
    await send(21, 40); // during the drop
    px.resume();
    await send(41, total);
    await waitFor(rt, 'connected');
    await publish(g, `user:${alice.id}`, 'notification', { id: 'end' });
    await all;

    expect(got.map((d) => (d as { id: string }).id)).toEqual(
      Array.from({ length: total }, (_, i) => String(i + 1)),
    );
    expect(got.every((d) => typeof d === 'object' && d !== null)).toBe(true);
    expect(states.filter(([s]) => s === 'connected').map(([, d]) => d)).toEqual([
      {},
      { recovered: true },
    ]);
    // Its recovery event follows the CONNECT: it may come after the last notification.
    if (recoveries.length < 2) await new Promise<void>((ok) => rt.onRecovery(() => ok()));
    expect(recoveries).toEqual([
      { recovered: false, missed: false },
      { recovered: true, missed: false },
    ]);
    expect(subscribes).toBe(1); // the server kept the room: no subscribe again
    expect(rt.subscriptions).toEqual(['incident:7']);
  }, 20_000);
});
