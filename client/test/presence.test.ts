// Presence on the fake socket (contract §15): the member set seeded by the
// subscribe acknowledgement, kept by `presence` events, seeded again after a
// reconnection, and what the handlers of rt.onPresence see.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_PRESENCE_USERS, type PresenceSnapshot, type RealtimeOptions } from '../src/index.js';
import { fakeRealtime, type FakeSocket } from './fake-socket.js';

function setup(options: RealtimeOptions = {}) {
  const f = fakeRealtime({ randomizationFactor: 0, ...options });
  f.socket.serverAccept();
  return f;
}

/** Records the snapshots a handler of `room` receives. */
function watch(rt: ReturnType<typeof setup>['rt'], room: string) {
  const seen: PresenceSnapshot[] = [];
  const off = rt.onPresence(room, (s) => seen.push(s));
  return { seen, off };
}

const ack = (users: string[], extra: Record<string, unknown> = {}) => ({
  ok: true,
  presence: { users, count: users.length, connections: users.length, ...extra },
});

const flush = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('presence', () => {
  it('resolves subscribe with the snapshot and calls the handler with it', async () => {
    const { rt, socket } = setup();
    const { seen } = watch(rt, 'incident:7');
    const p = rt.subscribe('incident:7');
    socket.next('subscribe').answer(ack(['1', '2'], { connections: 3 }));
    const want = {
      room: 'incident:7',
      users: ['1', '2'],
      count: 2,
      connections: 3,
      joined: ['1', '2'],
      left: [],
      truncated: false,
    };
    await expect(p).resolves.toEqual({ room: 'incident:7', presence: want });
    expect(seen).toEqual([want]);
    expect(rt.presence('incident:7')).toEqual({ ...want, joined: [], left: [] });
  });

  it('resolves a room without presence with the room alone', async () => {
    const { rt, socket } = setup();
    const p = rt.subscribe('news:eu');
    socket.next('subscribe').answer({ ok: true });
    await expect(p).resolves.toEqual({ room: 'news:eu' });
    expect(rt.presence('news:eu')).toBeUndefined();
  });

  it('applies presence events idempotently and reports only changes', async () => {
    const { rt, socket } = setup();
    const { seen } = watch(rt, 'incident:7');
    const p = rt.subscribe('incident:7');
    socket.next('subscribe').answer(ack(['1']));
    await p;
    // The subscriber's own arrival, announced after its snapshot: nothing new.
    socket.serverEmit('presence', { room: 'incident:7', joined: ['1'], left: [], count: 1 });
    socket.serverEmit('presence', { room: 'incident:7', joined: ['2', '3'], left: [], count: 3 });
    socket.serverEmit('presence', { room: 'incident:7', joined: ['3'], left: ['2'], count: 2 });
    socket.serverEmit('presence', { room: 'incident:7', joined: [], left: ['2'], count: 2 });
    socket.serverEmit('presence', { room: 'other', joined: ['9'], left: [], count: 1 });
    expect(seen.slice(1).map((s) => [s.users, s.joined, s.left, s.count])).toEqual([
      [['1', '2', '3'], ['2', '3'], [], 3],
      [['1', '3'], [], ['2'], 2],
    ]);
    // Events do not carry the socket count: it is no longer known.
    expect(seen[1]).not.toHaveProperty('connections');
  });

  it('keeps truncated from the snapshot and from events, and count exact', async () => {
    const { rt, socket } = setup();
    const p = rt.subscribe('big');
    socket.next('subscribe').answer({
      ok: true,
      presence: { users: ['1', '2'], count: 500, connections: 700, truncated: true },
    });
    expect((await p).presence).toMatchObject({ users: ['1', '2'], count: 500, truncated: true });
    const q = rt.subscribe('small');
    socket.next('subscribe').answer(ack(['1']));
    await q;
    socket.serverEmit('presence', {
      room: 'small',
      joined: ['2'],
      left: [],
      count: 300,
      truncated: true,
    });
    expect(rt.presence('small')).toMatchObject({ users: ['1', '2'], count: 300, truncated: true });
  });

  it('applies events that come while the subscribe is in flight after the snapshot', async () => {
    const { rt, socket } = setup();
    const { seen } = watch(rt, 'incident:7');
    const p = rt.subscribe('incident:7');
    socket.serverEmit('presence', { room: 'incident:7', joined: ['3'], left: ['2'], count: 2 });
    expect(seen).toEqual([]);
    socket.next('subscribe').answer(ack(['1', '2']));
    await p;
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ users: ['1', '3'], joined: ['1', '3'], left: [], count: 2 });
  });

  it('seeds again after a reconnection and reports the difference', async () => {
    const { rt, socket } = setup();
    const { seen } = watch(rt, 'incident:7');
    const p = rt.subscribe('incident:7');
    socket.next('subscribe').answer(ack(['1', '2']));
    await p;
    socket.drop('transport close');
    socket.serverAccept();
    socket.next('subscribe').answer(ack(['1', '4']));
    await flush();
    expect(seen.map((s) => [s.users, s.joined, s.left])).toEqual([
      [['1', '2'], ['1', '2'], []],
      [['1', '4'], ['4'], ['2']],
    ]);
    // The same members again: the handler is not called.
    socket.drop('transport close');
    socket.serverAccept();
    socket.next('subscribe').answer(ack(['1', '4']));
    await flush();
    expect(seen).toHaveLength(2);
  });

  it('a handler set later gets the members soon after; off() stops it', async () => {
    const { rt, socket } = setup();
    const p = rt.subscribe('incident:7');
    socket.next('subscribe').answer(ack(['1']));
    await p;
    const { seen, off } = watch(rt, 'incident:7');
    expect(seen).toEqual([]);
    await flush();
    expect(seen).toMatchObject([{ users: ['1'], joined: [], left: [] }]);
    off();
    socket.serverEmit('presence', { room: 'incident:7', joined: ['2'], left: [], count: 2 });
    expect(seen).toHaveLength(1);
    expect(rt.presence('incident:7')?.users).toEqual(['1', '2']);
  });

  it('forgets the members on unsubscribe, keeps the handler for a new subscribe', async () => {
    const { rt, socket } = setup();
    const { seen } = watch(rt, 'incident:7');
    const p = rt.subscribe('incident:7');
    socket.next('subscribe').answer(ack(['1']));
    await p;
    const u = rt.unsubscribe('incident:7');
    socket.next('unsubscribe').answer({ ok: true });
    await u;
    expect(rt.presence('incident:7')).toBeUndefined();
    const q = rt.subscribe('incident:7');
    socket.next('subscribe').answer(ack(['2']));
    await q;
    expect(seen.map((s) => s.users)).toEqual([['1'], ['2']]);
  });

  it('keeps a room the server joined from its events, as truncated', () => {
    const { rt, socket } = setup();
    const { seen } = watch(rt, 'team:1');
    socket.serverEmit('presence', { room: 'team:1', joined: ['1'], left: [], count: 3 });
    expect(seen).toMatchObject([{ users: ['1'], count: 3, truncated: true }]);
    // Without a subscribe to seed it again, a reconnection starts it over.
    socket.drop('transport close');
    expect(rt.presence('team:1')).toBeUndefined();
  });

  it('ignores malformed events and bounds the members it keeps', async () => {
    const { rt, socket } = setup();
    const p = rt.subscribe('huge');
    socket.next('subscribe').answer(ack([]));
    await p;
    for (const bad of [null, 'x', { room: 'huge' }, { room: 'huge', count: -1 }]) {
      socket.serverEmit('presence', bad);
    }
    expect(rt.presence('huge')).toMatchObject({ users: [], count: 0, truncated: false });
    const many = Array.from({ length: MAX_PRESENCE_USERS + 5 }, (_, i) => String(i));
    socket.serverEmit('presence', { room: 'huge', joined: [...many, 7], left: [], count: 20_000 });
    const s = rt.presence('huge');
    expect(s?.users).toHaveLength(MAX_PRESENCE_USERS);
    expect(s).toMatchObject({ count: 20_000, truncated: true });
  });

  it('bounds the rooms it keeps, past which a subscribe still seeds its own', async () => {
    const { rt, socket } = setup();
    for (let i = 0; i < 1030; i++) {
      socket.serverEmit('presence', { room: `r:${i}`, joined: ['1'], left: [], count: 1 });
    }
    expect(rt.presence('r:1023')).toBeDefined();
    expect(rt.presence('r:1024')).toBeUndefined();
    const p = rt.subscribe('beyond');
    socket.next('subscribe').answer(ack(['1']));
    await p;
    expect(rt.presence('beyond')).toMatchObject({ users: ['1'], count: 1 });
  });

  it('holds at most 64 events while a subscribe is in flight, the newest', async () => {
    const { rt, socket } = setup();
    const p = rt.subscribe('incident:7');
    for (let i = 0; i < 70; i++) {
      socket.serverEmit('presence', {
        room: 'incident:7',
        joined: [`u${i}`],
        left: [],
        count: i + 1,
      });
    }
    socket.next('subscribe').answer(ack([]));
    await p;
    const users = rt.presence('incident:7')?.users ?? [];
    expect(users).toHaveLength(64);
    expect(users).not.toContain('u5');
    expect(users).toContain('u6');
    expect(users).toContain('u69');
  });
});
