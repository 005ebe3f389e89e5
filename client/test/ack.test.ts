// subscribe / unsubscribe / call on the fake socket, with fake timers: the
// retry rules of ACK_CODES (which codes are retried, how long the client
// waits) and what happens across reconnections.
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ACK_CODES,
  CallError,
  isTemporaryAck,
  SubscriptionError,
  type RealtimeOptions,
} from '../src/index.js';
import { ackRetryDelay } from '../src/ackcodes.js';
import { fakeRealtime, type FakeSocket } from './fake-socket.js';

function setup(options: RealtimeOptions = {}) {
  return fakeRealtime({
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
    randomizationFactor: 0,
    ...options,
  });
}

const ok = { ok: true };
const err = (code: string, extra: Record<string, unknown> = {}) => ({
  ok: false,
  error: { code, message: code.toLowerCase(), ...extra },
});

/** Settles a promise's state into a value the test can read synchronously after a flush. */
function track<T>(p: Promise<T>) {
  const t: { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } = {
    state: 'pending',
  };
  p.then(
    (v) => Object.assign(t, { state: 'resolved', value: v }),
    (e: unknown) => Object.assign(t, { state: 'rejected', error: e }),
  );
  return t;
}

const flush = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('ACK_CODES', () => {
  it('has final subscription refusals and temporary outages', () => {
    const temporary = ACK_CODES.filter((r) => r.temporary).map((r) => r.code);
    expect(temporary).toEqual(['UNAVAILABLE', 'RATE_LIMITED', 'TIMEOUT', 'DISCONNECTED']);
    expect(isTemporaryAck('FORBIDDEN', true)).toBe(false);
    // An unknown code follows the server's flag.
    expect(isTemporaryAck('NEW_CODE', true)).toBe(true);
    expect(isTemporaryAck('NEW_CODE')).toBe(false);
  });
});

describe('ACK_CODES against the contract', () => {
  it('agrees with the code table of docs/contract.md §12 Subscriptions', () => {
    const doc = readFileSync(new URL('../../docs/contract.md', import.meta.url), 'utf8');
    const start = doc.indexOf('\n## 12. Subscriptions');
    expect(start).toBeGreaterThan(0);
    const end = doc.indexOf('\n## ', start + 1);
    const section = doc.slice(start, end < 0 ? undefined : end);
    const rows = [...section.matchAll(/^\| `([A-Z_]+)` \| (yes|no)\b/gm)].map((m) => ({
      code: m[1] as string,
      temporary: m[2] === 'yes',
    }));
    expect(rows.map((r) => r.code).sort()).toEqual(
      ['FORBIDDEN', 'INVALID_ROOM', 'RATE_LIMITED', 'UNAVAILABLE'].sort(),
    );
    for (const r of rows) expect([r.code, isTemporaryAck(r.code)]).toEqual([r.code, r.temporary]);
  });
});

describe('subscribe', () => {
  it('sends subscribe once connected and resolves on ok', async () => {
    const { rt, socket } = setup();
    const p = track(rt.subscribe('incident:7'));
    expect(socket.sent).toEqual([]);
    socket.serverAccept();
    expect(socket.sent).toEqual([{ event: 'subscribe', data: { room: 'incident:7' } }]);
    socket.next('subscribe').answer(ok);
    await flush();
    expect(p.state).toBe('resolved');
    expect(rt.subscriptions).toEqual(['incident:7']);
  });

  it('rejects a final code at once and forgets the room', async () => {
    for (const code of ['FORBIDDEN', 'INVALID_ROOM']) {
      const { rt, socket } = setup();
      socket.serverAccept();
      const p = track(rt.subscribe('admin:1'));
      socket.next('subscribe').answer(err(code));
      await vi.advanceTimersByTimeAsync(60_000);
      expect(p.state).toBe('rejected');
      expect(p.error).toBeInstanceOf(SubscriptionError);
      expect(p.error).toMatchObject({
        code,
        room: 'admin:1',
        temporary: false,
        message: code.toLowerCase(),
      });
      expect(socket.sent).toHaveLength(1);
      expect(rt.subscriptions).toEqual([]);
    }
  });

  it('retries UNAVAILABLE with backoff, then resolves', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const p = track(rt.subscribe('incident:7'));
    socket.next('subscribe').answer(err('UNAVAILABLE', { temporary: true }));
    await vi.advanceTimersByTimeAsync(999);
    expect(socket.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.sent).toHaveLength(2);
    socket.next('subscribe').answer(err('UNAVAILABLE', { temporary: true }));
    await vi.advanceTimersByTimeAsync(1999);
    expect(socket.sent).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.sent).toHaveLength(3);
    socket.next('subscribe').answer(ok);
    await flush();
    expect(p.state).toBe('resolved');
  });

  it('waits at least retryAfterMs after RATE_LIMITED', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    rt.subscribe('incident:7').catch(() => {});
    socket.next('subscribe').answer(err('RATE_LIMITED', { temporary: true, retryAfterMs: 4000 }));
    await vi.advanceTimersByTimeAsync(3999);
    expect(socket.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.sent).toHaveLength(2);
  });

  it('spreads retries after retryAfterMs over randomizationFactor of it', () => {
    const backoff = { delay: 100, delayMax: 5000, randomizationFactor: 0.5 };
    const detail = { code: 'RATE_LIMITED', message: '', temporary: true, retryAfterMs: 2000 };
    expect(ackRetryDelay(detail, 0, backoff, () => 0)).toBe(2000);
    expect(ackRetryDelay(detail, 0, backoff, () => 0.5)).toBe(2500);
    expect(ackRetryDelay(detail, 0, backoff, () => 1)).toBe(3000);
    // The backoff wins once it is longer.
    expect(ackRetryDelay(detail, 6, backoff, () => 0.5)).toBe(5000);
  });

  it('gives up after subscribeRetries temporary errors', async () => {
    const { rt, socket } = setup({ subscribeRetries: 2 });
    socket.serverAccept();
    const p = track(rt.subscribe('incident:7'));
    for (let i = 0; i < 3; i++) {
      socket.next('subscribe').answer(err('UNAVAILABLE', { temporary: true }));
      await vi.advanceTimersByTimeAsync(10_000);
    }
    expect(socket.sent).toHaveLength(3);
    expect(p.state).toBe('rejected');
    expect(p.error).toMatchObject({ code: 'UNAVAILABLE', temporary: true });
    expect(rt.subscriptions).toEqual([]);
  });

  it('treats a missing ack as TIMEOUT and retries it', async () => {
    const { rt, socket } = setup({ ackTimeout: 500, subscribeRetries: 1 });
    socket.serverAccept();
    const p = track(rt.subscribe('incident:7'));
    await vi.advanceTimersByTimeAsync(500 + 1000);
    expect(socket.sent).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(500);
    expect(p.state).toBe('rejected');
    expect(p.error).toMatchObject({ code: 'TIMEOUT', temporary: true });
  });

  it('subscribes again after every reconnection', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const a = track(rt.subscribe('incident:7'));
    const b = track(rt.subscribe('news:eu'));
    socket.next('subscribe').answer(ok);
    socket.next('subscribe').answer(ok);
    await flush();
    expect([a.state, b.state]).toEqual(['resolved', 'resolved']);
    for (let i = 0; i < 2; i++) {
      socket.drop('transport close');
      socket.serverAccept();
      expect(socket.pending.map((x) => x.data)).toEqual([
        { room: 'incident:7' },
        { room: 'news:eu' },
      ]);
      socket.next('subscribe').answer(ok);
      socket.next('subscribe').answer(ok);
    }
    expect(socket.sent).toHaveLength(6);
  });

  it('a subscribe pending at a disconnect is answered on the next connection', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const p = track(rt.subscribe('incident:7'));
    socket.drop('transport close');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(p.state).toBe('pending');
    socket.serverAccept();
    socket.next('subscribe').answer(ok);
    await flush();
    expect(p.state).toBe('resolved');
  });

  it('reports a resubscription refused after a reconnection', async () => {
    const { rt, socket } = setup();
    const errors: SubscriptionError[] = [];
    rt.onSubscriptionError((e) => errors.push(e));
    socket.serverAccept();
    const p = rt.subscribe('incident:7');
    socket.next('subscribe').answer(ok);
    await p;
    socket.drop('transport close');
    socket.serverAccept();
    socket.next('subscribe').answer(err('FORBIDDEN'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'FORBIDDEN', room: 'incident:7' });
    expect(rt.subscriptions).toEqual([]);
    socket.drop('transport close');
    socket.serverAccept();
    expect(socket.pending).toEqual([]);
  });

  it('asks again when called for a confirmed room', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const first = rt.subscribe('incident:7');
    socket.next('subscribe').answer(ok);
    await first;
    const again = track(rt.subscribe('incident:7'));
    socket.next('subscribe').answer(ok);
    await flush();
    expect(again.state).toBe('resolved');
    expect(socket.sent).toHaveLength(2);
  });

  it('close() rejects pending subscriptions with CANCELLED', async () => {
    const { rt, socket } = setup();
    const p = track(rt.subscribe('incident:7'));
    rt.close();
    await flush();
    expect(p.error).toMatchObject({ code: 'CANCELLED', temporary: false });
    await expect(rt.subscribe('x')).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(socket.sent).toEqual([]);
  });
});

describe('unsubscribe', () => {
  it('forgets the room and sends unsubscribe', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const s = rt.subscribe('incident:7');
    socket.next('subscribe').answer(ok);
    await s;
    const u = track(rt.unsubscribe('incident:7'));
    expect(rt.subscriptions).toEqual([]);
    expect(socket.next('unsubscribe').data).toEqual({ room: 'incident:7' });
    socket.next('unsubscribe').answer(ok);
    await flush();
    expect(u.state).toBe('resolved');
    socket.drop('transport close');
    socket.serverAccept();
    expect(socket.pending).toEqual([]);
  });

  it('cancels a pending subscribe and rejects a FORBIDDEN unsubscribe', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const s = track(rt.subscribe('org:1'));
    const u = track(rt.unsubscribe('org:1'));
    socket.next('subscribe').answer(ok); // stale: the room was given up
    socket.next('unsubscribe').answer(err('FORBIDDEN'));
    await flush();
    expect(s.error).toMatchObject({ code: 'CANCELLED' });
    expect(u.error).toBeInstanceOf(SubscriptionError);
    expect(u.error).toMatchObject({ code: 'FORBIDDEN', room: 'org:1' });
  });

  it('resolves at once when disconnected', async () => {
    const { rt, socket } = setup();
    rt.subscribe('incident:7').catch(() => {});
    await expect(rt.unsubscribe('incident:7')).resolves.toBeUndefined();
    socket.serverAccept();
    expect(socket.sent).toEqual([]);
  });
});

describe('call', () => {
  it('resolves with the reply', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const p = rt.call<{ acked: boolean }>('incident:ack', { id: 7 });
    expect(socket.next('incident:ack').data).toEqual({ id: 7 });
    socket.next('incident:ack').answer({ acked: true });
    await expect(p).resolves.toEqual({ acked: true });
  });

  it('rejects an error reply with its code, and never retries', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const p = track(rt.call('incident:ack', {}));
    socket
      .next('incident:ack')
      .answer({ error: { code: 'RATE_LIMITED', message: 'slow down', retryAfterMs: 250 } });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(p.error).toBeInstanceOf(CallError);
    expect(p.error).toMatchObject({
      code: 'RATE_LIMITED',
      event: 'incident:ack',
      temporary: true,
      retryAfterMs: 250,
      message: 'slow down',
    });
    expect(socket.sent).toHaveLength(1);
  });

  it('rejects with TIMEOUT when no reply comes', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const p = track(rt.call('incident:ack', {}, { timeout: 300 }));
    await vi.advanceTimersByTimeAsync(299);
    expect(p.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(p.error).toMatchObject({ code: 'TIMEOUT', temporary: true });
  });

  it('waits for a connection under way within the timeout', async () => {
    const { rt, socket } = setup();
    const p = track(rt.call('incident:ack', 1, { timeout: 1000 }));
    await vi.advanceTimersByTimeAsync(400);
    socket.serverAccept();
    const sent = socket.next('incident:ack');
    sent.answer('done');
    await flush();
    expect(p.value).toBe('done');
  });

  it('rejects with DISCONNECTED when not connected within the timeout', async () => {
    const { rt, socket } = setup();
    const p = track(rt.call('incident:ack', 1, { timeout: 1000 }));
    await vi.advanceTimersByTimeAsync(1000);
    expect(p.error).toMatchObject({ code: 'DISCONNECTED', temporary: true });
    socket.serverAccept();
    expect(socket.sent).toEqual([]);
  });

  it('rejects with DISCONNECTED at once when no connection is coming', async () => {
    const { rt, socket } = setup();
    socket.serverRefuse('NOT_AUTHENTICATED');
    await expect(rt.call('x', 1)).rejects.toMatchObject({ code: 'DISCONNECTED' });
    rt.connect();
    const waiting = track(rt.call('x', 1));
    socket.serverRefuse('SESSION_EXPIRED');
    await flush();
    expect(waiting.error).toMatchObject({ code: 'DISCONNECTED' });
  });

  it('rejects with DISCONNECTED when the connection drops before the reply', async () => {
    const { rt, socket } = setup();
    socket.serverAccept();
    const p = track(rt.call('incident:ack', 1));
    socket.drop('transport close');
    await flush();
    expect(p.error).toMatchObject({ code: 'DISCONNECTED' });
  });
});
