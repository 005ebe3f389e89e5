// `rate_limited` on the fake socket (contract §14): the server sends the
// socket away; the client waits at least retryAfterMs plus a backoff that
// doubles over a streak, then reconnects and subscribes again.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CallError, type RealtimeOptions } from '../src/index.js';
import { fakeRealtime, type FakeSocket } from './fake-socket.js';

function setup(options: RealtimeOptions = {}) {
  const f = fakeRealtime({
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
    randomizationFactor: 0,
    ...options,
  });
  f.socket.serverAccept();
  return f;
}

/** What the gateway does: the event, then "io server disconnect". */
function sendAway(socket: FakeSocket, retryAfterMs: number): void {
  socket.serverEmit('rate_limited', { retryAfterMs });
  socket.drop('io server disconnect');
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('rate_limited', () => {
  it('leaves, waits retryAfterMs plus the backoff, then reconnects', async () => {
    const { rt, socket, states } = setup();
    const connects = socket.connectCalls;
    sendAway(socket, 1500);
    expect(rt.state).toBe('rate_limited');
    expect(rt.code).toBe('RATE_LIMITED');
    expect(states.at(-1)).toEqual([
      'rate_limited',
      { code: 'RATE_LIMITED', retryAfterMs: 1500, delayMs: 2500 },
    ]);
    // Left at once: the server's disconnect (final for socket.io-client) is not waited for.
    expect(socket.disconnectCalls).toBe(1);
    await vi.advanceTimersByTimeAsync(2499);
    expect(socket.connectCalls).toBe(connects);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.connectCalls).toBe(connects + 1);
    expect(rt.state).toBe('reconnecting');
    socket.serverAccept();
    expect(rt.state).toBe('connected');
  });

  it('backs off exponentially, capped, while it happens again, and forgets after a quiet minute', async () => {
    const { socket, states } = setup({ rateLimitDelayMax: 10_000 });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      sendAway(socket, 100);
      delays.push(states.at(-1)?.[1].delayMs ?? -1);
      await vi.advanceTimersByTimeAsync(delays.at(-1) ?? 0);
      socket.serverAccept();
    }
    expect(delays).toEqual([1100, 2100, 4100, 8100, 10_000, 10_000]);
    await vi.advanceTimersByTimeAsync(60_000);
    sendAway(socket, 100);
    expect(states.at(-1)?.[1].delayMs).toBe(1100);
  });

  it('jitters the backoff, never below retryAfterMs', () => {
    const waits = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const { states, socket } = setup({ randomizationFactor: 0.5 });
      sendAway(socket, 3000);
      const d = states.at(-1)?.[1].delayMs ?? -1;
      expect(d).toBeGreaterThanOrEqual(3000 + 500);
      expect(d).toBeLessThanOrEqual(3000 + 1500);
      waits.add(d);
    }
    expect(waits.size).toBeGreaterThan(1);
  });

  it('caps a huge retryAfterMs at rateLimitDelayMax', () => {
    const { socket, states } = setup({ rateLimitDelayMax: 5000 });
    sendAway(socket, 3_600_000);
    expect(states.at(-1)?.[1]).toMatchObject({ retryAfterMs: 5000, delayMs: 5000 });
  });

  it('subscribes again once back', async () => {
    const { rt, socket } = setup();
    const p = rt.subscribe('incident:7');
    socket.next('subscribe').answer({ ok: true });
    await p;
    sendAway(socket, 10);
    await vi.advanceTimersByTimeAsync(1010);
    socket.serverAccept();
    expect(socket.pending.map((x) => [x.event, x.data])).toEqual([
      ['subscribe', { room: 'incident:7' }],
    ]);
    expect(rt.subscriptions).toEqual(['incident:7']);
  });

  it('fails calls at once while sent away, with the time left', async () => {
    const { rt, socket } = setup();
    sendAway(socket, 500);
    await vi.advanceTimersByTimeAsync(400);
    const err = await rt.call('incident:ack', { id: 7 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallError);
    expect(err).toMatchObject({ code: 'RATE_LIMITED', temporary: true, retryAfterMs: 1100 });
    expect(socket.sent).toEqual([]);
  });

  it('close() or session_expired during the wait cancels the reconnection', async () => {
    for (const end of ['close', 'expired'] as const) {
      const { rt, socket } = setup();
      const connects = socket.connectCalls;
      sendAway(socket, 100);
      if (end === 'close') rt.close();
      else socket.serverEmit('session_expired', { reason: 'revoked' });
      await vi.advanceTimersByTimeAsync(120_000);
      expect(socket.connectCalls).toBe(connects);
    }
  });

  it('with reconnection off, ends in disconnected', async () => {
    const { rt, socket } = setup({ reconnection: false });
    const connects = socket.connectCalls;
    sendAway(socket, 100);
    expect(rt.state).toBe('disconnected');
    expect(rt.code).toBe('RATE_LIMITED');
    await vi.advanceTimersByTimeAsync(120_000);
    expect(socket.connectCalls).toBe(connects);
  });

  it('connect() during the wait connects now', () => {
    const { rt, socket } = setup();
    const connects = socket.connectCalls;
    sendAway(socket, 30_000);
    rt.connect();
    expect(socket.connectCalls).toBe(connects + 1);
    expect(rt.state).toBe('connecting');
  });
});
