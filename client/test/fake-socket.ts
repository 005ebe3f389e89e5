import {
  createRealtime,
  type ConnectionState,
  type ManagerLike,
  type RealtimeOptions,
  type SocketFactory,
  type SocketIOOptions,
  type SocketLike,
  type StateDetail,
} from '../src/index.js';

type Listener = (...args: unknown[]) => void;

/** An emit waiting for its acknowledgement; the test answers it. */
export interface PendingAck {
  event: string;
  data: unknown;
  /** The server's acknowledgement. */
  answer(reply: unknown): void;
  fail?: () => void;
  timer?: ReturnType<typeof setTimeout>;
}

class Emitter {
  readonly #listeners = new Map<string, Listener[]>();

  on(event: string, listener: Listener): this {
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), listener]);
    return this;
  }

  emit(event: string, ...args: unknown[]): void {
    for (const l of this.#listeners.get(event) ?? []) l(...args);
  }
}

/** A Manager stand-in: reconnection on or off, and `reconnect_failed` on demand. */
export class FakeManager extends Emitter implements ManagerLike {
  constructor(private readonly enabled: boolean) {
    super();
  }

  reconnection(): boolean {
    return this.enabled;
  }
}

/**
 * A socket.io-client Socket stand-in that models what the client relies on:
 * `active` is true from connect() until disconnect() or a namespace refusal,
 * and the test plays the server's part with the methods below.
 */
export class FakeSocket extends Emitter implements SocketLike {
  readonly io: FakeManager;
  active = false;
  connected = false;
  connectCalls = 0;
  disconnectCalls = 0;
  /** socket.io-client's private pid: set by a CONNECT of a server with recovery. */
  _pid: string | undefined;
  recovered = false;

  constructor(
    readonly url: string | undefined,
    readonly options: SocketIOOptions,
  ) {
    super();
    this.io = new FakeManager(options.reconnection ?? true);
  }

  /** Emits with an ack callback that are not answered yet, oldest first. */
  readonly pending: PendingAck[] = [];
  /** Every emit with an ack, in order. */
  readonly sent: Array<{ event: string; data: unknown }> = [];

  /** Models socket.io-client's `timeout(ms).emit(...)`: the callback gets an error on timeout or disconnect. */
  timeout(ms: number): { emit(event: string, ...args: unknown[]): void } {
    return {
      emit: (event, ...args) => {
        const cb = args.pop() as (err: unknown, reply?: unknown) => void;
        const data = args[0];
        this.sent.push({ event, data });
        const p: PendingAck = {
          event,
          data,
          answer: (reply) => {
            if (!this.#take(p)) throw new Error(`ack of ${event} already settled`);
            cb(null, reply);
          },
          fail: () => cb(new Error('socket has been disconnected')),
        };
        const timer = setTimeout(() => {
          if (this.#take(p)) cb(new Error('operation has timed out'));
        }, ms);
        p.timer = timer;
        this.pending.push(p);
      },
    };
  }

  /** The oldest unanswered ack of `event`; throws when there is none. */
  next(event: string): PendingAck {
    const p = this.pending.find((x) => x.event === event);
    if (!p) throw new Error(`no pending ${event} (pending: ${this.pending.map((x) => x.event)})`);
    return p;
  }

  #take(p: PendingAck): boolean {
    const i = this.pending.indexOf(p);
    if (i < 0) return false;
    this.pending.splice(i, 1);
    clearTimeout(p.timer);
    return true;
  }

  /** socket.io-client's _clearAcks: every unanswered ack errs on a disconnect. */
  #clearAcks(): void {
    for (const p of [...this.pending]) {
      this.#take(p);
      p.fail?.();
    }
  }

  connect(): this {
    this.connectCalls++;
    this.active = true;
    return this;
  }

  disconnect(): this {
    this.disconnectCalls++;
    const wasConnected = this.connected;
    this.active = false;
    this.connected = false;
    if (wasConnected) {
      this.emit('disconnect', 'io client disconnect');
      this.#clearAcks();
    }
    return this;
  }

  /**
   * The server admits the socket; with `pid`, a server with recovery
   * (contract §16). Like socket.io-client's onconnect: `recovered` when the
   * pid is the previous one, then the events received before the CONNECT
   * (the replayed ones), then `connect`.
   */
  serverAccept(pid?: string, replay: Array<[string, ...unknown[]]> = []): void {
    this.recovered = pid !== undefined && this._pid === pid;
    this._pid = pid;
    this.connected = true;
    for (const [event, ...args] of replay) this.emit(event, ...args);
    this.emit('connect');
  }

  /** The server answers CONNECT with CONNECT_ERROR: socket.io-client deactivates the socket. */
  serverRefuse(code: string, message = 'unauthorized'): void {
    this.active = false;
    this.emit('connect_error', Object.assign(new Error(message), { data: { code } }));
  }

  /** The transport failed before CONNECT: the Manager keeps the socket active and retries. */
  transportError(): void {
    this.emit(
      'connect_error',
      Object.assign(new Error('xhr poll error'), { type: 'TransportError' }),
    );
  }

  /** The connection dropped (e.g. "transport close", "ping timeout") or the server disconnected. */
  drop(reason: string): void {
    if (!this.connected) return;
    this.connected = false;
    if (reason === 'io server disconnect') this.active = false;
    this.emit('disconnect', reason);
    this.#clearAcks();
  }

  /** The server emits an event. */
  serverEmit(event: string, ...args: unknown[]): void {
    this.emit(event, ...args);
  }
}

/** Returns a factory that records the sockets it creates. */
export function fakeFactory(): { factory: SocketFactory; sockets: FakeSocket[] } {
  const sockets: FakeSocket[] = [];
  return {
    sockets,
    factory: (url, options) => {
      const s = new FakeSocket(url, options);
      sockets.push(s);
      return s;
    },
  };
}

/**
 * Creates a Realtime over a fake socket and records its state changes:
 * `socket` is the first fake socket, `sockets` every one it opened.
 */
export function fakeRealtime<Extra extends object = Record<never, never>>(
  options: RealtimeOptions = {},
) {
  const { factory, sockets } = fakeFactory();
  const rt = createRealtime<Extra>({ ...options, socketFactory: factory });
  const states: Array<[ConnectionState, StateDetail]> = [];
  rt.onStateChange((state, detail) => states.push([state, detail]));
  const socket = sockets[0] as FakeSocket;
  return { rt, socket, states, sockets };
}
