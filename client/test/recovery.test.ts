// Connection state recovery (contract §16) on the fake socket: the auth
// that asks for it, the offsets stripped, rt.onRecovery, and the rooms of
// a recovered socket.
import { describe, expect, it } from 'vitest';
import { type PresenceSnapshot, type RealtimeOptions, type Recovery } from '../src/index.js';
import { fakeRealtime, type FakeSocket } from './fake-socket.js';

function setup(options: RealtimeOptions = {}) {
  return fakeRealtime<{ tick: unknown; hello: unknown }>(options);
}

/** Lets the promise callbacks run. */
const flush = () => new Promise((r) => setTimeout(r, 0));

describe('the CONNECT auth', () => {
  it('asks for recovery by default', () => {
    expect(setup().socket.options.auth).toEqual({ recovery: true });
  });

  it('merges it with an auth object', () => {
    const { socket } = setup({ socketOptions: { auth: { token: 't' } } });
    expect(socket.options.auth).toEqual({ token: 't', recovery: true });
  });

  it('merges it with an auth function', () => {
    const { socket } = setup({ socketOptions: { auth: (cb) => cb({ token: 't' }) } });
    const auth = socket.options.auth;
    expect(typeof auth).toBe('function');
    let sent: object | undefined;
    (auth as (cb: (data: object) => void) => void)((d) => (sent = d));
    expect(sent).toEqual({ token: 't', recovery: true });
  });

  it('leaves the auth alone with recovery: false', () => {
    expect(setup({ recovery: false }).socket.options.auth).toBeUndefined();
    const { socket } = setup({ recovery: false, socketOptions: { auth: { token: 't' } } });
    expect(socket.options.auth).toEqual({ token: 't' });
  });
});

describe('offsets', () => {
  it('are stripped on a connection with a pid', () => {
    const { rt, socket } = setup();
    socket.serverAccept('pid-1');
    const got: unknown[] = [];
    rt.on('hello', (d) => got.push(d));
    rt.on('notification', (d) => got.push(d));
    socket.serverEmit('hello', 'world', '1.1');
    socket.serverEmit('hello', '1.2'); // an event without arguments
    socket.serverEmit('notification', { id: 'n' }, '1.3');
    // An acknowledged event carries none: its last argument is the ack.
    socket.serverEmit('hello', 'acked', () => {});
    expect(got).toEqual(['world', undefined, { id: 'n' }, 'acked']);
  });

  it('are not looked for without a pid', () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const got: unknown[] = [];
    rt.on('hello', (d) => got.push(d));
    socket.serverEmit('hello', 'only');
    socket.serverEmit('hello', 'a', 'b');
    expect(got).toEqual(['only', 'a']);
  });

  it('do not reach the handled events', () => {
    const { rt, socket } = setup();
    socket.serverAccept('pid-1');
    socket.serverEmit('session_expired', { reason: 'logged_out' }, '1.1');
    expect(rt.state).toBe('expired');
    expect(rt.expiredReason).toBe('logged_out');
  });
});

describe('rt.onRecovery', () => {
  it("tells each connection's recovery, and connected says recovered", () => {
    const { rt, socket, states } = setup();
    const got: Recovery[] = [];
    const off = rt.onRecovery((r) => got.push(r));
    socket.serverAccept('pid-1');
    socket.serverEmit('recovery', { recovered: false, missed: false }, '1.1');
    expect(states.at(-1)).toEqual(['connected', {}]);

    socket.drop('transport close');
    const replayed: unknown[] = [];
    rt.on('tick', (d) => replayed.push([d, rt.state]));
    socket.serverAccept('pid-1', [
      ['tick', 1, '1.2'],
      ['tick', 2, '1.3'],
    ]);
    socket.serverEmit('recovery', { recovered: true, missed: false }, '1.3');
    expect(replayed).toEqual([
      [1, 'reconnecting'],
      [2, 'reconnecting'],
    ]);
    expect(states.at(-1)).toEqual(['connected', { recovered: true }]);

    socket.drop('transport close');
    socket.serverAccept('pid-2');
    socket.serverEmit('recovery', { recovered: false, missed: true }, '2.1');
    expect(states.at(-1)).toEqual(['connected', {}]);
    expect(got).toEqual([
      { recovered: false, missed: false },
      { recovered: true, missed: false },
      { recovered: false, missed: true },
    ]);
    off();
    socket.serverEmit('recovery', { recovered: false, missed: true }, '2.2');
    expect(got).toHaveLength(3);
  });
});

describe('subscriptions of a recovered socket', () => {
  /** Connected with pid-1 and subscribed to `rooms`, confirmed. */
  async function subscribed(...rooms: string[]) {
    const t = setup();
    t.socket.serverAccept('pid-1');
    const subs = rooms.map((room) => t.rt.subscribe(room));
    for (const room of rooms) t.socket.next('subscribe').answer({ ok: true, room });
    await Promise.all(subs);
    t.socket.sent.length = 0;
    return t;
  }

  it('are not asked again when the socket recovers', async () => {
    const { rt, socket } = await subscribed('a', 'b');
    socket.drop('transport close');
    socket.serverAccept('pid-1');
    expect(socket.sent).toEqual([]);
    expect(rt.subscriptions).toEqual(['a', 'b']);
  });

  it('are asked again when it does not', async () => {
    const { socket } = await subscribed('a', 'b');
    socket.drop('transport close');
    socket.serverAccept('pid-2');
    expect(socket.sent.map((s) => s.data)).toEqual([{ room: 'a' }, { room: 'b' }]);
  });

  it('asks again a room awaited or cut in flight by the drop', async () => {
    const { rt, socket } = await subscribed('a');
    const inFlight = rt.subscribe('b');
    socket.drop('transport close');
    const again = rt.subscribe('a');
    socket.serverAccept('pid-1');
    expect(socket.sent.map((s) => s.data)).toEqual([{ room: 'b' }, { room: 'a' }, { room: 'b' }]);
    socket.next('subscribe').answer({ ok: true });
    socket.next('subscribe').answer({ ok: true });
    await expect(again).resolves.toEqual({ room: 'a' });
    await expect(inFlight).resolves.toEqual({ room: 'b' });
  });

  it('leaves a room unsubscribed during the drop once recovered', async () => {
    const { rt, socket } = await subscribed('a', 'b');
    socket.drop('transport close');
    await rt.unsubscribe('a');
    socket.serverAccept('pid-1');
    expect(socket.sent).toEqual([{ event: 'unsubscribe', data: { room: 'a' } }]);
    socket.next('unsubscribe').answer({ ok: true });
    expect(rt.subscriptions).toEqual(['b']);
  });

  it('does not leave it on a fresh socket', async () => {
    const { rt, socket } = await subscribed('a');
    socket.drop('transport close');
    await rt.unsubscribe('a');
    socket.serverAccept('pid-2');
    expect(socket.sent).toEqual([]);
  });

  it('keeps presence members, applying the replayed events', async () => {
    const { rt, socket } = setup();
    socket.serverAccept('pid-1');
    const sub = rt.subscribe('lobby');
    socket
      .next('subscribe')
      .answer({ ok: true, presence: { users: ['1', '2'], count: 2, connections: 2 } });
    await sub;
    const seen: PresenceSnapshot[] = [];
    rt.onPresence('lobby', (s) => seen.push(s));
    await flush();
    seen.length = 0;
    socket.drop('transport close');
    socket.serverAccept('pid-1', [
      ['presence', { room: 'lobby', joined: [], left: ['2'], count: 1 }, '1.5'],
    ]);
    expect(socket.sent.filter((s) => s.event === 'subscribe')).toHaveLength(1);
    expect(seen.map((s) => [s.users, s.left])).toEqual([[['1'], ['2']]]);
    socket.serverEmit('presence', { room: 'lobby', joined: ['3'], left: [], count: 2 }, '1.6');
    expect(rt.presence('lobby')?.users).toEqual(['1', '3']);
  });
});
