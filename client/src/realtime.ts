import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import { backoffDelay, type BackoffOptions } from './backoff.js';
import {
  REFUSAL_CODES,
  type ConnectionState,
  type EventMap,
  type SessionExpiredReason,
  type StateDetail,
} from './types.js';

/** Options of socket.io-client's `io()` that `createRealtime` passes through. */
export type SocketIOOptions = Partial<ManagerOptions & SocketOptions>;

/**
 * The part of socket.io-client's Manager that the client uses. Only for
 * {@link SocketFactory} implementations such as test fakes.
 */
export interface ManagerLike {
  on(event: 'reconnect_failed', listener: () => void): unknown;
  reconnection(): boolean;
}

/**
 * The part of a socket.io-client Socket that the client uses. Only for
 * {@link SocketFactory} implementations such as test fakes.
 */
export interface SocketLike {
  /** True while the socket is subscribed to its Manager, which then retries on its own. */
  readonly active: boolean;
  readonly io: ManagerLike;
  // socket.io listeners take arguments of any type.
  on(event: string, listener: (...args: any[]) => void): unknown;
  connect(): unknown;
  disconnect(): unknown;
}

/** Creates the underlying socket; the default is socket.io-client's `io`. */
export type SocketFactory = (url: string | undefined, options: SocketIOOptions) => SocketLike;

/** Options of {@link createRealtime}. */
export interface RealtimeOptions {
  /** The sessiongate origin, e.g. `https://rt.example.com`; default: the page's origin. */
  url?: string;
  /** The Socket.IO path; default `/socket.io/`. */
  path?: string;
  /** Connect at once; default true. Otherwise call `connect()`. */
  autoConnect?: boolean;
  /** Retry after a dropped connection or a temporary refusal; default true. */
  reconnection?: boolean;
  /** Retries before giving up (state `disconnected`); default Infinity. */
  reconnectionAttempts?: number;
  /** First retry delay in ms; default 1000. */
  reconnectionDelay?: number;
  /** Largest retry delay in ms; default 5000. */
  reconnectionDelayMax?: number;
  /** Jitter of each retry delay, 0..1; default 0.5. */
  randomizationFactor?: number;
  /** Largest wait honoured from a `server_restart` event, in ms; default 30000. */
  restartDelayMax?: number;
  /**
   * Further socket.io-client options (`transports`, `auth`, ...). The client
   * always sets `withCredentials: true` and manages `autoConnect` itself.
   */
  socketOptions?: SocketIOOptions;
  /** Replaces socket.io-client's `io` (tests inject a fake here). */
  socketFactory?: SocketFactory;
}

/** Receives the state and what caused it. */
export type StateListener = (state: ConnectionState, detail: StateDetail) => void;

/** Receives the reason the server ended the session. */
export type SessionExpiredHandler = (reason: SessionExpiredReason) => void;

/**
 * A realtime connection to sessiongate, authenticated by the browser's
 * session cookie. Create one with {@link createRealtime}.
 *
 * Events are typed by `Events` (the {@link EventMap} plus your own). Handlers
 * receive the first argument the server sent; a handler that throws does not
 * stop the others (its error is re-thrown asynchronously).
 */
export interface Realtime<Events extends object = EventMap> {
  /** The current connection state. */
  readonly state: ConnectionState;
  /** The refusal code while `unauthorized`, the last retryable code while `reconnecting`. */
  readonly code: string | undefined;
  /** The session end reason while `expired`. */
  readonly expiredReason: SessionExpiredReason | undefined;

  /** Subscribes to a server event; returns a function that unsubscribes. */
  on<K extends keyof Events & string>(event: K, handler: (data: Events[K]) => void): () => void;
  /** Removes a handler added with `on`. */
  off<K extends keyof Events & string>(event: K, handler: (data: Events[K]) => void): void;
  /** Calls `listener` on each state change; returns a function that unsubscribes. */
  onStateChange(listener: StateListener): () => void;
  /**
   * Sets the function called once when the server ends the session
   * (`session_expired`). The connection then stays closed until `connect()`.
   * Set after the fact, it is called at once with the pending reason.
   */
  setSessionExpiredHandler(handler: SessionExpiredHandler | null): void;
  /** (Re)connects, for instance after a new login; resets retries and the expired state. */
  connect(): void;
  /** Closes the connection for good; later calls to `connect()` throw. */
  close(): void;
}

type Handler = (data: unknown) => void;

const refusalCodes: ReadonlySet<string> = new Set(REFUSAL_CODES);
const expiredReasons: ReadonlySet<string> = new Set(['revoked', 'expired', 'logged_out']);

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
 * server sends the socket away again straight after).
 */
export function createRealtime<Extra extends object = Record<never, never>>(
  options: RealtimeOptions = {},
): Realtime<EventMap & Extra> {
  return new RealtimeClient<EventMap & Extra>(options);
}

class RealtimeClient<Events extends object> implements Realtime<Events> {
  readonly #socket: SocketLike;
  readonly #backoff: BackoffOptions;
  readonly #reconnection: boolean;
  readonly #attemptsMax: number;
  readonly #restartDelayMax: number;
  readonly #handlers = new Map<string, Set<Handler>>();
  readonly #stateListeners = new Set<StateListener>();

  #state: ConnectionState;
  #code: string | undefined;
  #reason: SessionExpiredReason | undefined;
  #closed = false;
  #expiredHandler: SessionExpiredHandler | null = null;
  #expiredNotified = false;
  #retries = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastRestart: number | undefined;
  #restartStreak = 0;

  constructor(options: RealtimeOptions) {
    this.#reconnection = options.reconnection ?? true;
    this.#attemptsMax = options.reconnectionAttempts ?? Infinity;
    this.#restartDelayMax = options.restartDelayMax ?? 30_000;
    this.#backoff = {
      delay: options.reconnectionDelay ?? 1000,
      delayMax: options.reconnectionDelayMax ?? 5000,
      randomizationFactor: options.randomizationFactor ?? 0.5,
    };
    const factory = options.socketFactory ?? defaultFactory;
    this.#socket = factory(options.url, {
      ...options.socketOptions,
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
    s.on('connect_error', (err: unknown) => this.#onConnectError(err));
    s.on('disconnect', (reason: string) => this.#onDisconnect(reason));
    s.on('session_expired', (payload: unknown) => this.#onSessionExpired(payload));
    s.on('server_restart', (payload: unknown) => this.#onServerRestart(payload));
    s.io.on('reconnect_failed', () => {
      if (this.#state === 'reconnecting') this.#setState('disconnected');
    });

    this.#state = 'disconnected';
    if (options.autoConnect ?? true) this.connect();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get code(): string | undefined {
    return this.#code;
  }

  get expiredReason(): SessionExpiredReason | undefined {
    return this.#reason;
  }

  on<K extends keyof Events & string>(event: K, handler: (data: Events[K]) => void): () => void {
    let set = this.#handlers.get(event);
    if (!set) {
      const handlers = new Set<Handler>();
      set = handlers;
      this.#handlers.set(event, handlers);
      this.#socket.on(event, (data: unknown) => {
        for (const h of [...handlers]) invoke(() => h(data));
      });
    }
    set.add(handler as Handler);
    return () => this.off(event, handler);
  }

  off<K extends keyof Events & string>(event: K, handler: (data: Events[K]) => void): void {
    this.#handlers.get(event)?.delete(handler as Handler);
  }

  onStateChange(listener: StateListener): () => void {
    this.#stateListeners.add(listener);
    return () => {
      this.#stateListeners.delete(listener);
    };
  }

  setSessionExpiredHandler(handler: SessionExpiredHandler | null): void {
    this.#expiredHandler = handler;
    if (this.#state === 'expired') this.#notifyExpired();
  }

  connect(): void {
    if (this.#closed) throw new Error('sessiongate: connect() after close()');
    this.#clearTimer();
    this.#retries = 0;
    this.#expiredNotified = false;
    this.#setState('connecting');
    this.#socket.connect();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer();
    this.#socket.disconnect();
    this.#setState('disconnected');
    this.#handlers.forEach((set) => set.clear());
    this.#stateListeners.clear();
  }

  #onConnect(): void {
    this.#retries = 0;
    this.#setState('connected');
  }

  #onConnectError(err: unknown): void {
    if (this.#stopped()) return;
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

  #onDisconnect(reason: string): void {
    // "io client disconnect" is ours (close, expiry, refusal, restart), and
    // the state was set where it was decided; a pending timer is our own retry.
    if (this.#stopped() || reason === 'io client disconnect' || this.#timer !== undefined) return;
    if (
      reason === 'io server disconnect' ||
      !this.#socket.active ||
      !this.#socket.io.reconnection()
    ) {
      this.#setState('disconnected');
      return;
    }
    this.#setState('reconnecting');
  }

  #onSessionExpired(payload: unknown): void {
    if (this.#stopped()) return;
    const raw = isRecord(payload) ? payload['reason'] : undefined;
    const reason: SessionExpiredReason =
      typeof raw === 'string' && expiredReasons.has(raw)
        ? (raw as SessionExpiredReason)
        : 'revoked';
    this.#clearTimer();
    this.#setState('expired', { reason });
    this.#socket.disconnect();
    this.#notifyExpired();
  }

  #onServerRestart(payload: unknown): void {
    if (this.#stopped()) return;
    const raw = isRecord(payload) ? payload['retryAfterMs'] : undefined;
    const window =
      typeof raw === 'number' && Number.isFinite(raw)
        ? Math.min(this.#restartDelayMax, Math.max(0, raw))
        : this.#backoff.delayMax;
    // A server that is still shutting down sends a reconnected socket away
    // again (often with retryAfterMs 0): back off over such a streak.
    const now = Date.now();
    const streak =
      this.#lastRestart !== undefined && now - this.#lastRestart < window + this.#backoff.delayMax
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

  #retryLater(code: string | undefined): void {
    const detail: StateDetail = code === undefined ? {} : { code };
    if (!this.#reconnection || this.#retries >= this.#attemptsMax) {
      this.#setState('disconnected', detail);
      return;
    }
    const delay = backoffDelay(this.#retries, this.#backoff);
    this.#retries++;
    this.#setState('reconnecting', detail);
    this.#schedule(delay);
  }

  #schedule(delay: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#socket.connect();
    }, delay);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Reports whether the connection must stay as it is until `connect()`. */
  #stopped(): boolean {
    return this.#closed || this.#state === 'expired' || this.#state === 'unauthorized';
  }

  #notifyExpired(): void {
    const handler = this.#expiredHandler;
    const reason = this.#reason;
    if (this.#expiredNotified || !handler || reason === undefined) return;
    this.#expiredNotified = true;
    invoke(() => handler(reason));
  }

  #setState(state: ConnectionState, detail: StateDetail = {}): void {
    if (state === this.#state && detail.code === this.#code && detail.reason === this.#reason)
      return;
    this.#state = state;
    this.#code = detail.code;
    this.#reason = detail.reason;
    for (const l of [...this.#stateListeners]) invoke(() => l(state, detail));
  }
}

const defaultFactory: SocketFactory = (url, options) =>
  url === undefined ? io(options) : io(url, options);

/** Runs fn; an exception is re-thrown asynchronously so that it is reported but stops no one else. */
function invoke(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** Returns `data.code` of a socket.io-client connect_error, when it is a string. */
function errorCode(err: unknown): string | undefined {
  if (!isRecord(err)) return undefined;
  const data = err['data'];
  const code = isRecord(data) ? data['code'] : undefined;
  return typeof code === 'string' ? code : undefined;
}
