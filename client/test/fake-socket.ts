import type { ManagerLike, SocketFactory, SocketIOOptions, SocketLike } from '../src/index.js';

type Listener = (...args: unknown[]) => void;

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

  constructor(
    readonly url: string | undefined,
    readonly options: SocketIOOptions,
  ) {
    super();
    this.io = new FakeManager(options.reconnection ?? true);
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
    if (wasConnected) this.emit('disconnect', 'io client disconnect');
    return this;
  }

  /** The server admits the socket. */
  serverAccept(): void {
    this.connected = true;
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
