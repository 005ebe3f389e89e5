import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import {
  createRealtime,
  REFUSAL_CODES,
  type ConnectionState,
  type IncidentCreated,
  type RealtimeOptions,
} from '../src/index.js';
import { backoffDelay } from '../src/backoff.js';
import { fakeRealtime, type FakeSocket } from './fake-socket.js';

/** Creates a Realtime over a fake socket and records its state changes. */
function setup<Extra extends object = Record<never, never>>(options: RealtimeOptions = {}) {
  return fakeRealtime<Extra>(options);
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('createRealtime', () => {
  it('creates one socket with credentials and the sessiongate defaults', () => {
    const { rt, socket, sockets } = setup({
      url: 'https://rt.example.com',
      socketOptions: { transports: ['websocket'], withCredentials: false, autoConnect: true },
    });
    expect(sockets).toHaveLength(1);
    expect(socket.url).toBe('https://rt.example.com');
    expect(socket.options).toMatchObject({
      path: '/socket.io/',
      withCredentials: true,
      autoConnect: false,
      transports: ['websocket'],
      reconnection: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 5000,
      randomizationFactor: 0.5,
    });
    expect(socket.connectCalls).toBe(1);
    expect(rt.state).toBe('connecting');
  });

  it('waits for connect() when autoConnect is false', () => {
    const { rt, socket } = setup({ autoConnect: false, path: '/rt/' });
    expect(socket.options.path).toBe('/rt/');
    expect(rt.state).toBe('disconnected');
    expect(socket.connectCalls).toBe(0);
    rt.connect();
    expect(rt.state).toBe('connecting');
    expect(socket.connectCalls).toBe(1);
  });
});

describe('state transitions', () => {
  it('follows connect, drop, reconnect, server disconnect', () => {
    const { rt, socket, states } = setup();
    socket.serverAccept();
    socket.drop('transport close');
    socket.transportError();
    socket.serverAccept();
    socket.drop('io server disconnect');
    expect(states.map(([s]) => s)).toEqual([
      'connected',
      'reconnecting',
      'connected',
      'disconnected',
    ]);
    expect(rt.state).toBe('disconnected');
  });

  it('reports disconnected after the last reconnection attempt', () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    socket.drop('ping timeout');
    expect(rt.state).toBe('reconnecting');
    socket.io.emit('reconnect_failed');
    expect(rt.state).toBe('disconnected');
  });

  it('reports disconnected on a drop when reconnection is off', () => {
    const { rt, socket } = setup({ reconnection: false });
    socket.serverAccept();
    socket.drop('transport close');
    expect(rt.state).toBe('disconnected');
  });

  it('unsubscribes state listeners', () => {
    const { rt, socket } = setup();
    const seen: ConnectionState[] = [];
    const off = rt.onStateChange((s) => seen.push(s));
    socket.serverAccept();
    off();
    socket.drop('transport close');
    expect(seen).toEqual(['connected']);
  });

  it('close() disconnects for good', () => {
    const { rt, socket, states } = setup();
    socket.serverAccept();
    rt.close();
    expect(socket.disconnectCalls).toBe(1);
    expect(rt.state).toBe('disconnected');
    expect(states.at(-1)?.[0]).toBe('disconnected');
    expect(() => rt.connect()).toThrow(/after close/);
  });
});

describe('session_expired', () => {
  it('calls the handler once, ends in expired and never reconnects', () => {
    const { rt, socket } = setup();
    const handler = vi.fn();
    rt.setSessionExpiredHandler(handler);
    socket.serverAccept();

    socket.serverEmit('session_expired', { reason: 'logged_out' });
    // The server's own disconnect, a repeat of the event and a late error change nothing.
    socket.drop('io server disconnect');
    socket.serverEmit('session_expired', { reason: 'revoked' });
    socket.drop('transport close');
    socket.transportError();
    vi.advanceTimersByTime(60_000);

    expect(handler).toHaveBeenCalledTimes(1);
    expect(handler).toHaveBeenCalledWith('logged_out');
    expect(rt.state).toBe('expired');
    expect(rt.expiredReason).toBe('logged_out');
    expect(socket.disconnectCalls).toBe(1);
    expect(socket.connectCalls).toBe(1);
  });

  it.each([
    [{ reason: 'revoked' }, 'revoked'],
    [{ reason: 'expired' }, 'expired'],
    [{ reason: 'logged_out' }, 'logged_out'],
    [{ reason: 'something-new' }, 'revoked'],
    [undefined, 'revoked'],
  ])('passes %j as %s', (payload, want) => {
    const { rt, socket } = setup();
    const handler = vi.fn();
    rt.setSessionExpiredHandler(handler);
    socket.serverAccept();
    socket.serverEmit('session_expired', payload);
    expect(handler).toHaveBeenCalledWith(want);
  });

  it('calls a handler set after the event, once', () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    socket.serverEmit('session_expired', { reason: 'expired' });
    const handler = vi.fn();
    rt.setSessionExpiredHandler(handler);
    rt.setSessionExpiredHandler(handler);
    expect(handler).toHaveBeenCalledTimes(1);
    expect(handler).toHaveBeenCalledWith('expired');
  });

  it('connect() after an expiry starts over and notifies again', () => {
    const { rt, socket } = setup();
    const handler = vi.fn();
    rt.setSessionExpiredHandler(handler);
    socket.serverAccept();
    socket.serverEmit('session_expired', { reason: 'logged_out' });
    rt.connect();
    expect(rt.state).toBe('connecting');
    expect(socket.connectCalls).toBe(2);
    socket.serverAccept();
    socket.serverEmit('session_expired', { reason: 'revoked' });
    expect(handler.mock.calls).toEqual([['logged_out'], ['revoked']]);
  });
});

describe('refusals', () => {
  it.each(REFUSAL_CODES)('%s ends in unauthorized without retry', (code) => {
    const { rt, socket, states } = setup();
    socket.serverRefuse(code);
    vi.advanceTimersByTime(60_000);
    expect(rt.state).toBe('unauthorized');
    expect(rt.code).toBe(code);
    expect(states).toEqual([['unauthorized', { code }]]);
    expect(socket.connectCalls).toBe(1);
  });

  it.each(['RATE_LIMITED', 'INTERNAL', 'SOMETHING_NEW'])('%s is retried with backoff', (code) => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5); // no jitter
    const { rt, socket } = setup({ reconnectionDelay: 100, reconnectionDelayMax: 1000 });

    socket.serverRefuse(code);
    expect(rt.state).toBe('reconnecting');
    expect(rt.code).toBe(code);
    vi.advanceTimersByTime(99);
    expect(socket.connectCalls).toBe(1);
    vi.advanceTimersByTime(1);
    expect(socket.connectCalls).toBe(2);

    socket.serverRefuse(code); // second retry waits twice as long
    vi.advanceTimersByTime(199);
    expect(socket.connectCalls).toBe(2);
    vi.advanceTimersByTime(1);
    expect(socket.connectCalls).toBe(3);

    socket.serverAccept();
    expect(rt.state).toBe('connected');
    expect(rt.code).toBeUndefined();
  });

  it('gives up after reconnectionAttempts temporary refusals', () => {
    const { rt, socket } = setup({ reconnectionAttempts: 2, reconnectionDelay: 10 });
    for (let i = 0; i < 3; i++) {
      socket.serverRefuse('INTERNAL', 'internal error');
      vi.runOnlyPendingTimers();
    }
    expect(socket.connectCalls).toBe(3);
    expect(rt.state).toBe('disconnected');
    expect(rt.code).toBe('INTERNAL');
  });

  it('leaves transport failures to socket.io-client', () => {
    const { rt, socket } = setup();
    socket.transportError();
    vi.advanceTimersByTime(60_000);
    expect(rt.state).toBe('reconnecting');
    expect(socket.connectCalls).toBe(1);
  });
});

describe('server_restart', () => {
  it('leaves at once and comes back at a random point of the window', () => {
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.25);
    const { rt, socket } = setup();
    socket.serverAccept();

    socket.serverEmit('server_restart', { retryAfterMs: 2000 });
    expect(socket.disconnectCalls).toBe(1);
    expect(rt.state).toBe('reconnecting');
    // The server's close that follows does not start an immediate reconnection.
    socket.drop('io server disconnect');
    expect(rt.state).toBe('reconnecting');

    vi.advanceTimersByTime(499);
    expect(socket.connectCalls).toBe(1);
    vi.advanceTimersByTime(1);
    expect(socket.connectCalls).toBe(2);
    expect(random).toHaveBeenCalled();

    socket.serverAccept();
    expect(rt.state).toBe('connected');
  });

  it.each([
    // [retryAfterMs, Math.random(), expected delay]
    [2000, 0, 0],
    [2000, 0.999, 1998],
    [10_000, 0.5, 5000],
    [-5, 0.5, 0],
    [1e9, 0.5, 15_000], // capped by restartDelayMax (30s)
    ['soon', 0.5, 2500], // not a number: the window is reconnectionDelayMax (5s)
  ])('retryAfterMs %j with random %d waits %d ms', (retryAfterMs, r, want) => {
    vi.spyOn(Math, 'random').mockReturnValue(r);
    const { socket } = setup();
    socket.serverAccept();
    socket.serverEmit('server_restart', { retryAfterMs });
    if (want > 0) {
      vi.advanceTimersByTime(want - 1);
      expect(socket.connectCalls).toBe(1);
    }
    vi.advanceTimersByTime(1);
    expect(socket.connectCalls).toBe(2);
  });

  it('spreads clients over the whole window', () => {
    const delays: number[] = [];
    for (let i = 0; i < 50; i++) {
      const { socket } = setup();
      socket.serverAccept();
      const start = Date.now();
      socket.serverEmit('server_restart', { retryAfterMs: 1000 });
      vi.advanceTimersToNextTimer();
      expect(socket.connectCalls).toBe(2);
      delays.push(Date.now() - start);
    }
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThanOrEqual(1000);
    expect(new Set(delays).size).toBeGreaterThan(10);
  });

  it('backs off when a shutting-down server sends it away again', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5); // backoff without jitter
    const { socket } = setup();
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      socket.serverAccept();
      socket.serverEmit('server_restart', { retryAfterMs: 0 });
      const start = Date.now();
      vi.advanceTimersToNextTimer();
      waits.push(Date.now() - start);
    }
    expect(waits).toEqual([0, 1000, 2000, 4000, 5000]);

    // A restart long after the last one is a new one: pure jitter again.
    vi.advanceTimersByTime(60_000);
    socket.serverAccept();
    socket.serverEmit('server_restart', { retryAfterMs: 0 });
    const start = Date.now();
    vi.advanceTimersToNextTimer();
    expect(Date.now() - start).toBe(0);
  });

  it('a close() during the wait cancels the reconnection', () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    socket.serverEmit('server_restart', { retryAfterMs: 1000 });
    rt.close();
    vi.advanceTimersByTime(5000);
    expect(socket.connectCalls).toBe(1);
    expect(rt.state).toBe('disconnected');
  });

  it('session_expired during the wait cancels the reconnection', () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    socket.serverEmit('server_restart', { retryAfterMs: 1000 });
    socket.serverEmit('session_expired', { reason: 'revoked' });
    vi.advanceTimersByTime(5000);
    expect(socket.connectCalls).toBe(1);
    expect(rt.state).toBe('expired');
  });
});

describe('typed events', () => {
  const incident: IncidentCreated = {
    id: 'inc-1',
    title: 'Database latency',
    severity: 'high',
    createdAt: '2026-11-27T00:00:00.000Z',
  };

  it('dispatches server events to their handlers until unsubscribed', () => {
    const { rt, socket } = setup();
    const got: IncidentCreated[] = [];
    const off = rt.on('incident:created', (e) => got.push(e));
    const notes = vi.fn();
    rt.on('notification', notes);

    socket.serverEmit('incident:created', incident);
    off();
    socket.serverEmit('incident:created', { ...incident, id: 'inc-2' });

    expect(got).toEqual([incident]);
    expect(notes).not.toHaveBeenCalled();
  });

  it('off() removes one handler and keeps the others', () => {
    const { rt, socket } = setup();
    const a = vi.fn();
    const b = vi.fn();
    rt.on('notification', a);
    rt.on('notification', b);
    rt.off('notification', a);
    socket.serverEmit('notification', { id: 'n1', message: 'hi', createdAt: 'now' });
    expect(a).not.toHaveBeenCalled();
    expect(b).toHaveBeenCalledWith({ id: 'n1', message: 'hi', createdAt: 'now' });
  });

  it('a throwing handler does not stop the others', () => {
    const { rt, socket } = setup();
    const boom = new Error('handler bug');
    const deferred: Array<() => void> = [];
    vi.spyOn(globalThis, 'queueMicrotask').mockImplementation((cb) => deferred.push(cb));
    const after = vi.fn();
    rt.on('incident:created', () => {
      throw boom;
    });
    rt.on('incident:created', after);
    socket.serverEmit('incident:created', incident);
    expect(after).toHaveBeenCalledTimes(1);
    // The error is re-thrown later, outside the dispatch, so that it is reported.
    expect(deferred).toHaveLength(1);
    expect(() => deferred[0]?.()).toThrow(boom);
  });

  it('accepts a user event map and checks names and payloads', () => {
    const { rt, socket } = setup<{ 'deploy:finished': { sha: string } }>();
    const shas: string[] = [];
    rt.on('deploy:finished', (d) => {
      expectTypeOf(d).toEqualTypeOf<{ sha: string }>();
      shas.push(d.sha);
    });
    rt.on('incident:created', (e) => expectTypeOf(e).toEqualTypeOf<IncidentCreated>());
    // @ts-expect-error: not in the event map
    rt.on('no-such-event', () => {});
    // @ts-expect-error: wrong payload type
    rt.on('deploy:finished', (d: { sha: number }) => d);
    socket.serverEmit('deploy:finished', { sha: 'abc123' });
    expect(shas).toEqual(['abc123']);
  });
});

describe('backoffDelay', () => {
  const opts = { delay: 1000, delayMax: 5000, randomizationFactor: 0.5 };
  it.each([
    // [attempt, random, want]
    [0, 0.5, 1000],
    [1, 0.5, 2000],
    [2, 0.5, 4000],
    [3, 0.5, 5000],
    [0, 0, 500],
    [0, 1, 1500],
    [3, 1, 5000],
    [40, 0.5, 5000],
  ])('attempt %d with random %d is %d ms', (attempt, r, want) => {
    expect(backoffDelay(attempt, opts, () => r)).toBe(want);
  });

  it('without jitter is deterministic', () => {
    expect(backoffDelay(1, { ...opts, randomizationFactor: 0 }, () => 0.9)).toBe(2000);
  });
});
