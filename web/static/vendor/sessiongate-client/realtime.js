import { io } from 'socket.io-client';
import { ackErrorOf, ackRetryDelay, CallError, clientError, SubscriptionError, } from './ackcodes.js';
import { backoffDelay } from './backoff.js';
import { ackPresenceOf, MemberSet, presenceEventOf, } from './presence.js';
import { REFUSAL_CODES, } from './types.js';
/** The most rooms whose presence the client keeps: the server bounds a socket's rooms too. */
const maxPresenceRooms = 1024;
/** The most events held per room while its subscribe is in flight. */
const maxPendingPresence = 64;
/**
 * A `rate_limited` within this long of the reconnection that followed the
 * previous one continues the streak: the client's backoff doubles.
 */
const rateLimitStreakWindow = 60_000;
const refusalCodes = new Set(REFUSAL_CODES);
const expiredReasons = new Set(['revoked', 'expired', 'logged_out']);
/**
 * createRealtime opens a Socket.IO connection to sessiongate with
 * `withCredentials: true`, so the browser sends its session cookie.
 *
 * Refusals (`NO_COOKIE`, `BAD_SIGNATURE`, `SESSION_NOT_FOUND`,
 * `SESSION_EXPIRED`, `NOT_AUTHENTICATED`, `ORIGIN_NOT_ALLOWED`,
 * `TOO_MANY_CONNECTIONS`: the user has too many tabs open) end in state
 * `unauthorized` without retry; `RATE_LIMITED`, `INTERNAL` and dropped
 * transports are retried with backoff; `session_expired` ends in state
 * `expired`; `server_restart` reconnects after a random part of the announced
 * delay so that clients do not all return at once (with backoff added when the
 * server sends the socket away again straight after); `rate_limited` leaves,
 * waits at least its `retryAfterMs` plus a backoff that doubles while it
 * recurs (state `rate_limited`), then reconnects.
 */
export function createRealtime(options = {}) {
    return new RealtimeClient(options);
}
class RealtimeClient {
    #socket;
    #backoff;
    #reconnection;
    #attemptsMax;
    #restartDelayMax;
    #handlers = new Map();
    #stateListeners = new Set();
    #state;
    #code;
    #reason;
    #closed = false;
    #expiredHandler = null;
    #expiredNotified = false;
    #retries = 0;
    #timer;
    #lastRestart;
    #restartStreak = 0;
    #rateLimitDelayMax;
    /** When the client reconnects, or reconnected, after the last `rate_limited`. */
    #rateLimitedUntil;
    #rateLimitStreak = 0;
    #presence = new Map();
    #ackTimeout;
    #subscribeRetries;
    #subs = new Map();
    #subErrorListeners = new Set();
    /** Calls waiting for a connection: told true on connect, false when none is coming. */
    #connectWaiters = new Set();
    #seq = 0;
    #recoveryListeners = new Set();
    /**
     * Rooms given up while the server may still hold them for a recovery (an
     * unsubscribe while disconnected, or cut by the drop): left on the
     * connection if it recovers.
     */
    #leaveOnRecovery = new Set();
    constructor(options) {
        this.#reconnection = options.reconnection ?? true;
        this.#attemptsMax = options.reconnectionAttempts ?? Infinity;
        this.#restartDelayMax = options.restartDelayMax ?? 30_000;
        this.#rateLimitDelayMax = options.rateLimitDelayMax ?? 60_000;
        this.#ackTimeout = options.ackTimeout ?? 10_000;
        this.#subscribeRetries = options.subscribeRetries ?? 5;
        this.#backoff = {
            delay: options.reconnectionDelay ?? 1000,
            delayMax: options.reconnectionDelayMax ?? 5000,
            randomizationFactor: options.randomizationFactor ?? 0.5,
        };
        const factory = options.socketFactory ?? defaultFactory;
        const socketOptions = { ...options.socketOptions };
        if (options.recovery ?? true)
            socketOptions.auth = withRecovery(socketOptions.auth);
        this.#socket = factory(options.url, {
            ...socketOptions,
            path: options.path ?? '/socket.io/',
            withCredentials: true,
            autoConnect: false,
            reconnection: this.#reconnection,
            reconnectionAttempts: this.#attemptsMax,
            reconnectionDelay: this.#backoff.delay,
            reconnectionDelayMax: this.#backoff.delayMax,
            randomizationFactor: this.#backoff.randomizationFactor,
        });
        const s = this.#socket;
        s.on('connect', () => this.#onConnect());
        s.on('connect_error', (err) => this.#onConnectError(err));
        s.on('disconnect', (reason) => {
            this.#resetSubs();
            this.#onDisconnect(reason);
        });
        this.#onEvent('session_expired', (payload) => this.#onSessionExpired(payload));
        this.#onEvent('rate_limited', (payload) => this.#onRateLimited(payload));
        this.#onEvent('presence', (payload) => this.#onPresenceEvent(payload));
        this.#onEvent('server_restart', (payload) => this.#onServerRestart(payload));
        this.#onEvent(recoveryEvent, (payload) => this.#onRecovery(payload));
        s.io.on('reconnect_failed', () => {
            if (this.#state === 'reconnecting')
                this.#setState('disconnected');
        });
        this.#state = 'disconnected';
        if (options.autoConnect ?? true)
            this.connect();
    }
    get state() {
        return this.#state;
    }
    get code() {
        return this.#code;
    }
    get expiredReason() {
        return this.#reason;
    }
    on(event, handler) {
        let set = this.#handlers.get(event);
        if (!set) {
            const handlers = new Set();
            set = handlers;
            this.#handlers.set(event, handlers);
            this.#onEvent(event, (data) => {
                for (const h of [...handlers])
                    invoke(() => h(data));
            });
        }
        set.add(handler);
        return () => this.off(event, handler);
    }
    off(event, handler) {
        this.#handlers.get(event)?.delete(handler);
    }
    /**
     * Listens to the server event `event` with the first argument the server
     * sent. On a connection with recovery (the server gave a pid) the last
     * argument of an event without acknowledgement is its offset: it is left
     * out (socket.io-client has its own copy of the arguments and keeps it).
     */
    #onEvent(event, listener) {
        this.#socket.on(event, (...args) => {
            const last = args.length - 1;
            if (last >= 0 && typeof args[last] === 'string' && pidOf(this.#socket) !== undefined)
                args.pop();
            listener(args[0]);
        });
    }
    onRecovery(listener) {
        this.#recoveryListeners.add(listener);
        return () => {
            this.#recoveryListeners.delete(listener);
        };
    }
    #onRecovery(payload) {
        if (this.#closed || !isRecord(payload))
            return;
        const r = {
            recovered: payload['recovered'] === true,
            missed: payload['missed'] === true,
        };
        for (const l of [...this.#recoveryListeners])
            invoke(() => l(r));
    }
    onStateChange(listener) {
        this.#stateListeners.add(listener);
        return () => {
            this.#stateListeners.delete(listener);
        };
    }
    setSessionExpiredHandler(handler) {
        this.#expiredHandler = handler;
        if (this.#state === 'expired')
            this.#notifyExpired();
    }
    connect() {
        if (this.#closed)
            throw new Error('sessiongate: connect() after close()');
        this.#clearTimer();
        this.#retries = 0;
        this.#expiredNotified = false;
        this.#setState('connecting');
        this.#socket.connect();
    }
    close() {
        if (this.#closed)
            return;
        this.#closed = true;
        this.#clearTimer();
        this.#socket.disconnect();
        this.#setState('disconnected');
        this.#handlers.forEach((set) => set.clear());
        this.#stateListeners.clear();
        this.#recoveryListeners.clear();
        this.#leaveOnRecovery.clear();
        for (const sub of [...this.#subs.values()])
            this.#dropSub(sub, clientError('CANCELLED', 'the client was closed'), false);
        this.#subErrorListeners.clear();
        this.#presence.clear();
    }
    get subscriptions() {
        return [...this.#subs.keys()];
    }
    subscribe(room) {
        if (this.#closed)
            return Promise.reject(new SubscriptionError(room, clientError('CANCELLED', 'the client was closed')));
        return new Promise((resolve, reject) => {
            let sub = this.#subs.get(room);
            if (!sub) {
                sub = { room, waiters: [], ok: false, failures: 0, timer: undefined, token: 0 };
                this.#subs.set(room, sub);
            }
            sub.waiters.push({ resolve, reject });
            // Asked again even when confirmed: the server may have taken the
            // socket out of the room (a room operation), and answers at once when
            // it did not. A request in flight, a scheduled retry or a pending
            // connection answers this promise too.
            if (sub.timer === undefined)
                this.#sendSubscribe(sub);
        });
    }
    unsubscribe(room) {
        const sub = this.#subs.get(room);
        if (sub)
            this.#dropSub(sub, clientError('CANCELLED', 'unsubscribed'), false);
        this.#forgetPresence(room);
        if (this.#closed)
            return Promise.resolve();
        if (!this.#socket.connected) {
            // The server may give the room back with a recovered socket.
            if (pidOf(this.#socket) !== undefined)
                this.#leaveOnRecovery.add(room);
            return Promise.resolve();
        }
        return new Promise((resolve, reject) => this.#sendUnsubscribe(room, 0, resolve, reject));
    }
    onSubscriptionError(listener) {
        this.#subErrorListeners.add(listener);
        return () => {
            this.#subErrorListeners.delete(listener);
        };
    }
    call(event, data, options = {}) {
        const timeout = Math.max(0, options.timeout ?? this.#ackTimeout);
        return new Promise((resolve, reject) => {
            const fail = (detail) => reject(new CallError(event, detail));
            const send = (ms) => {
                this.#socket.timeout(ms).emit(event, data, (err, reply) => {
                    if (err) {
                        fail(this.#socket.connected
                            ? clientError('TIMEOUT', `no reply to ${event} within ${ms} ms`)
                            : clientError('DISCONNECTED', `disconnected before the reply to ${event}`));
                        return;
                    }
                    const e = ackErrorOf(reply);
                    if (e)
                        fail(e);
                    else
                        resolve(reply);
                });
            };
            if (this.#socket.connected) {
                send(timeout);
                return;
            }
            // Sent away for flooding: fail now rather than pile calls up for the
            // moment the client is let back in.
            if (this.#state === 'rate_limited') {
                const wait = Math.max(0, (this.#rateLimitedUntil ?? 0) - Date.now());
                fail({
                    code: 'RATE_LIMITED',
                    message: `rate limited by the server; reconnecting in ${wait} ms`,
                    temporary: true,
                    retryAfterMs: wait,
                });
                return;
            }
            // Only a connection under way is waited for; closed, refused or
            // expired, none is coming by itself.
            if (this.#closed || (this.#state !== 'connecting' && this.#state !== 'reconnecting')) {
                fail(clientError('DISCONNECTED', `not connected (${this.#state})`));
                return;
            }
            const start = Date.now();
            const waiter = (connected) => {
                clearTimeout(timer);
                this.#connectWaiters.delete(waiter);
                if (connected)
                    send(Math.max(0, timeout - (Date.now() - start)));
                else
                    fail(clientError('DISCONNECTED', `not connected (${this.#state})`));
            };
            const timer = setTimeout(() => {
                this.#connectWaiters.delete(waiter);
                fail(clientError('DISCONNECTED', `not connected within ${timeout} ms`));
            }, timeout);
            this.#connectWaiters.add(waiter);
        });
    }
    onPresence(room, handler) {
        const r = this.#presenceRoom(room, true);
        if (r === undefined || this.#closed)
            return () => { };
        r.handlers.add(handler);
        if (r.members?.known)
            queueMicrotask(() => {
                const members = this.#presence.get(room)?.members;
                if (r.handlers.has(handler) && members?.known)
                    invoke(() => handler(members.snapshot()));
            });
        return () => {
            r.handlers.delete(handler);
            if (r.handlers.size === 0 && r.members === undefined && this.#presence.get(room) === r)
                this.#presence.delete(room);
        };
    }
    presence(room) {
        const members = this.#presence.get(room)?.members;
        return members?.known ? members.snapshot() : undefined;
    }
    /** The presence state of `room`, made when missing (beyond the cap only for `force`). */
    #presenceRoom(room, force = false) {
        let r = this.#presence.get(room);
        if (r === undefined && (force || this.#presence.size < maxPresenceRooms)) {
            r = { handlers: new Set(), members: undefined, pending: [] };
            this.#presence.set(room, r);
        }
        return r;
    }
    /**
     * Seeds `room`'s members from a subscribe acknowledgement, then applies
     * the events that came while it was in flight; returns the snapshot, or
     * undefined when the reply has no presence (not a presence room).
     */
    #seedPresence(room, reply) {
        const p = ackPresenceOf(reply);
        const r = p === undefined ? this.#presence.get(room) : this.#presenceRoom(room, true);
        if (r === undefined)
            return undefined;
        const members = (r.members ??= new MemberSet(room));
        const change = p === undefined ? undefined : members.seed(p);
        members.seeded = true;
        const pending = r.pending;
        r.pending = [];
        const joined = new Set(change?.joined);
        const left = new Set(change?.left);
        let changed = change !== undefined;
        for (const e of pending) {
            const c = members.apply(e);
            if (c === undefined)
                continue;
            changed = true;
            for (const u of c.left)
                if (!joined.delete(u))
                    left.add(u);
            for (const u of c.joined)
                if (!left.delete(u))
                    joined.add(u);
        }
        const snap = members.snapshot({ joined: [...joined], left: [...left] });
        if (changed)
            this.#notifyPresence(r, snap);
        return p === undefined ? undefined : snap;
    }
    #onPresenceEvent(payload) {
        const e = presenceEventOf(payload);
        if (e === undefined || this.#closed)
            return;
        const r = this.#presenceRoom(e.room);
        if (r === undefined)
            return;
        const sub = this.#subs.get(e.room);
        if (sub !== undefined && sub.token !== 0 && !r.members?.seeded) {
            // Newer than the snapshot the ack will bring, or already in it: applied after it.
            if (r.pending.length >= maxPendingPresence)
                r.pending.shift();
            r.pending.push(e);
            return;
        }
        const members = (r.members ??= new MemberSet(e.room));
        const change = members.apply(e);
        if (change !== undefined)
            this.#notifyPresence(r, members.snapshot(change));
    }
    #notifyPresence(r, snap) {
        for (const h of [...r.handlers])
            invoke(() => h(snap));
    }
    /** Drops what the client knows of `room`'s members; its handlers stay. */
    #forgetPresence(room) {
        const r = this.#presence.get(room);
        if (r === undefined)
            return;
        r.members = undefined;
        r.pending = [];
        if (r.handlers.size === 0)
            this.#presence.delete(room);
    }
    #onConnect() {
        this.#retries = 0;
        const recovered = this.#socket.recovered === true;
        const leave = recovered ? [...this.#leaveOnRecovery] : [];
        this.#leaveOnRecovery.clear();
        this.#setState('connected', recovered ? { recovered } : {});
        for (const w of [...this.#connectWaiters])
            w(true);
        // A recovered socket is still in the rooms the server had confirmed
        // (its missed events, presence included, were replayed): only the
        // others are asked, and an awaited subscribe (answered at once).
        // Otherwise every remembered room again: the server kept none.
        for (const sub of [...this.#subs.values()]) {
            sub.failures = 0;
            if (recovered && sub.ok && sub.waiters.length === 0) {
                const members = this.#presence.get(sub.room)?.members;
                if (members)
                    members.seeded = true;
                continue;
            }
            sub.ok = false;
            this.#sendSubscribe(sub);
        }
        for (const room of leave)
            if (!this.#subs.has(room))
                this.#sendUnsubscribe(room, 0, () => { }, () => { });
    }
    /** Forgets what the last connection had confirmed and cancels retries; `connect` sends again. */
    #resetSubs() {
        for (const sub of this.#subs.values()) {
            if (sub.timer !== undefined)
                clearTimeout(sub.timer);
            sub.timer = undefined;
            sub.token = 0;
        }
        // Members are kept for the difference the next snapshot makes; rooms
        // the server joined (no subscribe to seed them again) start over.
        for (const [room, r] of this.#presence) {
            r.pending = [];
            if (!this.#subs.has(room))
                this.#forgetPresence(room);
            else if (r.members)
                r.members.seeded = false;
        }
    }
    #sendSubscribe(sub) {
        if (this.#closed || !this.#socket.connected || sub.token !== 0)
            return;
        const token = ++this.#seq;
        sub.token = token;
        const ms = this.#ackTimeout;
        this.#socket
            .timeout(ms)
            .emit('subscribe', { room: sub.room }, (err, reply) => {
            if (this.#subs.get(sub.room) !== sub || sub.token !== token)
                return;
            sub.token = 0;
            // Disconnected before the reply: the next connection sends it again.
            if (err && !this.#socket.connected)
                return;
            const failure = err
                ? clientError('TIMEOUT', `no reply to subscribe within ${ms} ms`)
                : replyFailure(reply);
            if (failure === undefined) {
                sub.ok = true;
                sub.failures = 0;
                const presence = this.#seedPresence(sub.room, reply);
                const result = presence === undefined ? { room: sub.room } : { room: sub.room, presence };
                const waiters = sub.waiters;
                sub.waiters = [];
                for (const w of waiters)
                    w.resolve(result);
                return;
            }
            if (failure.temporary && sub.failures < this.#subscribeRetries) {
                const delay = ackRetryDelay(failure, sub.failures, this.#backoff);
                sub.failures++;
                sub.timer = setTimeout(() => {
                    sub.timer = undefined;
                    this.#sendSubscribe(sub);
                }, delay);
                return;
            }
            this.#dropSub(sub, failure, true);
        });
    }
    /**
     * Forgets `sub` and rejects its waiters with `detail`; with `report` and
     * nobody waiting, tells the subscription error listeners.
     */
    #dropSub(sub, detail, report) {
        if (this.#subs.get(sub.room) === sub) {
            this.#subs.delete(sub.room);
            this.#forgetPresence(sub.room);
        }
        if (sub.timer !== undefined)
            clearTimeout(sub.timer);
        sub.timer = undefined;
        sub.token = 0;
        const err = new SubscriptionError(sub.room, detail);
        const waiters = sub.waiters;
        sub.waiters = [];
        for (const w of waiters)
            w.reject(err);
        if (report && waiters.length === 0)
            for (const l of [...this.#subErrorListeners])
                invoke(() => l(err));
    }
    #sendUnsubscribe(room, attempt, resolve, reject) {
        // Disconnected (the server dropped the socket's rooms) or subscribed
        // again meanwhile: nothing left to undo.
        if (this.#closed || !this.#socket.connected || this.#subs.has(room)) {
            resolve();
            return;
        }
        const ms = this.#ackTimeout;
        this.#socket.timeout(ms).emit('unsubscribe', { room }, (err, reply) => {
            if (err && !this.#socket.connected) {
                // Cut by the drop: a recovered socket may still be in the room.
                if (pidOf(this.#socket) !== undefined)
                    this.#leaveOnRecovery.add(room);
                resolve();
                return;
            }
            const failure = err
                ? clientError('TIMEOUT', `no reply to unsubscribe within ${ms} ms`)
                : replyFailure(reply);
            if (failure === undefined)
                resolve();
            else if (failure.temporary && attempt < this.#subscribeRetries)
                setTimeout(() => this.#sendUnsubscribe(room, attempt + 1, resolve, reject), ackRetryDelay(failure, attempt, this.#backoff));
            else
                reject(new SubscriptionError(room, failure));
        });
    }
    #onConnectError(err) {
        if (this.#stopped())
            return;
        const code = errorCode(err);
        if (code !== undefined && refusalCodes.has(code)) {
            this.#clearTimer();
            this.#socket.disconnect();
            this.#setState('unauthorized', { code });
            return;
        }
        if (this.#socket.active) {
            // A transport failure: socket.io-client's Manager retries with its own backoff.
            this.#setState(this.#socket.io.reconnection() ? 'reconnecting' : 'disconnected');
            return;
        }
        // Refused at the namespace with a temporary code: socket.io-client gives
        // up on such a socket, so the retry is ours.
        this.#retryLater(code);
    }
    #onDisconnect(reason) {
        // "io client disconnect" is ours (close, expiry, refusal, restart), and
        // the state was set where it was decided; a pending timer is our own retry.
        if (this.#stopped() || reason === 'io client disconnect' || this.#timer !== undefined)
            return;
        if (reason === 'io server disconnect' ||
            !this.#socket.active ||
            !this.#socket.io.reconnection()) {
            this.#setState('disconnected');
            return;
        }
        this.#setState('reconnecting');
    }
    #onSessionExpired(payload) {
        if (this.#stopped())
            return;
        const raw = isRecord(payload) ? payload['reason'] : undefined;
        const reason = typeof raw === 'string' && expiredReasons.has(raw)
            ? raw
            : 'revoked';
        this.#clearTimer();
        this.#setState('expired', { reason });
        this.#socket.disconnect();
        this.#notifyExpired();
    }
    #onServerRestart(payload) {
        if (this.#stopped())
            return;
        const raw = isRecord(payload) ? payload['retryAfterMs'] : undefined;
        const window = typeof raw === 'number' && Number.isFinite(raw)
            ? Math.min(this.#restartDelayMax, Math.max(0, raw))
            : this.#backoff.delayMax;
        // A server that is still shutting down sends a reconnected socket away
        // again (often with retryAfterMs 0): back off over such a streak.
        const now = Date.now();
        const streak = this.#lastRestart !== undefined && now - this.#lastRestart < window + this.#backoff.delayMax
            ? this.#restartStreak + 1
            : 0;
        this.#restartStreak = streak;
        this.#lastRestart = now;
        const extra = streak > 0 ? backoffDelay(streak - 1, this.#backoff) : 0;
        // Leave now, before the server closes the transport, so that
        // socket.io-client's immediate reconnection does not start; come back at
        // a random point of the window so that clients spread out.
        this.#clearTimer();
        this.#socket.disconnect();
        this.#setState('reconnecting');
        this.#schedule(Math.round(Math.random() * window) + extra);
    }
    /**
     * The server sends the socket away for flooding (contract §14): leave at
     * once, wait at least its `retryAfterMs` plus a backoff that doubles while
     * it happens again soon after each reconnection (jittered, capped at
     * `rateLimitDelayMax`), then connect again; subscriptions are sent again
     * on the connection.
     */
    #onRateLimited(payload) {
        if (this.#stopped())
            return;
        const raw = isRecord(payload) ? payload['retryAfterMs'] : undefined;
        const max = this.#rateLimitDelayMax;
        const retryAfterMs = typeof raw === 'number' && Number.isFinite(raw)
            ? Math.min(max, Math.max(0, Math.ceil(raw)))
            : this.#backoff.delay;
        const now = Date.now();
        const streak = this.#rateLimitedUntil !== undefined && now - this.#rateLimitedUntil < rateLimitStreakWindow
            ? this.#rateLimitStreak + 1
            : 0;
        this.#rateLimitStreak = streak;
        const extra = backoffDelay(streak, { ...this.#backoff, delayMax: max });
        const delayMs = Math.max(retryAfterMs, Math.min(max, retryAfterMs + extra));
        this.#rateLimitedUntil = now + delayMs;
        this.#clearTimer();
        // Before the server closes the socket: its "io server disconnect" would be final.
        this.#socket.disconnect();
        const code = 'RATE_LIMITED';
        if (!this.#reconnection) {
            this.#setState('disconnected', { code, retryAfterMs });
            return;
        }
        this.#setState('rate_limited', { code, retryAfterMs, delayMs });
        this.#timer = setTimeout(() => {
            this.#timer = undefined;
            this.#setState('reconnecting', { code });
            this.#socket.connect();
        }, delayMs);
    }
    #retryLater(code) {
        const detail = code === undefined ? {} : { code };
        if (!this.#reconnection || this.#retries >= this.#attemptsMax) {
            this.#setState('disconnected', detail);
            return;
        }
        const delay = backoffDelay(this.#retries, this.#backoff);
        this.#retries++;
        this.#setState('reconnecting', detail);
        this.#schedule(delay);
    }
    #schedule(delay) {
        this.#timer = setTimeout(() => {
            this.#timer = undefined;
            this.#socket.connect();
        }, delay);
    }
    #clearTimer() {
        if (this.#timer !== undefined)
            clearTimeout(this.#timer);
        this.#timer = undefined;
    }
    /** Reports whether the connection must stay as it is until `connect()`. */
    #stopped() {
        return this.#closed || this.#state === 'expired' || this.#state === 'unauthorized';
    }
    #notifyExpired() {
        const handler = this.#expiredHandler;
        const reason = this.#reason;
        if (this.#expiredNotified || !handler || reason === undefined)
            return;
        this.#expiredNotified = true;
        invoke(() => handler(reason));
    }
    #setState(state, detail = {}) {
        if (state === this.#state &&
            detail.code === this.#code &&
            detail.reason === this.#reason &&
            detail.delayMs === undefined)
            return;
        this.#state = state;
        this.#code = detail.code;
        this.#reason = detail.reason;
        // No connection is coming by itself: calls waiting for one fail now.
        if (state === 'disconnected' || state === 'unauthorized' || state === 'expired')
            for (const w of [...this.#connectWaiters])
                w(false);
        for (const l of [...this.#stateListeners])
            invoke(() => l(state, detail));
    }
}
/** The event the server sends after every CONNECT of a socket with recovery (contract §16). */
const recoveryEvent = 'recovery';
/**
 * Returns socket.io-client's private `_pid` of the connection: set only
 * when the server does connection state recovery, which then ends every
 * event without acknowledgement with an offset (socket.io-client 4.6+).
 */
function pidOf(s) {
    const pid = s._pid;
    return typeof pid === 'string' && pid !== '' ? pid : undefined;
}
/** Adds `"recovery": true` to socket.io-client's `auth` (an object or a function). */
function withRecovery(auth) {
    if (typeof auth === 'function')
        return (cb) => auth((data) => cb({ ...data, recovery: true }));
    return { ...auth, recovery: true };
}
const defaultFactory = (url, options) => url === undefined ? io(options) : io(url, options);
/** Runs fn; an exception is re-thrown asynchronously so that it is reported but stops no one else. */
function invoke(fn) {
    try {
        fn();
    }
    catch (err) {
        queueMicrotask(() => {
            throw err;
        });
    }
}
/**
 * Returns undefined for a subscribe/unsubscribe reply `{"ok": true}`, its
 * error otherwise (a reply of another shape is `UNAVAILABLE`).
 */
function replyFailure(reply) {
    if (isRecord(reply) && reply['ok'] === true)
        return undefined;
    return (ackErrorOf(reply) ?? {
        code: 'UNAVAILABLE',
        message: 'unexpected reply',
        temporary: true,
    });
}
function isRecord(v) {
    return typeof v === 'object' && v !== null;
}
/** Returns `data.code` of a socket.io-client connect_error, when it is a string. */
function errorCode(err) {
    if (!isRecord(err))
        return undefined;
    const data = err['data'];
    const code = isRecord(data) ? data['code'] : undefined;
    return typeof code === 'string' ? code : undefined;
}
//# sourceMappingURL=realtime.js.map