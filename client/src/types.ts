import { CODES } from './codes.js';

/** One row of the refusal table (generated from the server's codes.json). */
type CodeRow = (typeof CODES)[number];

/**
 * A code the server sends in a CONNECT_ERROR when it refuses a handshake
 * for good (contract §2): retrying cannot help, the browser's cookie or
 * origin must change first, so the client stops and reports `unauthorized`.
 */
export type RefusalCode = Extract<CodeRow, { retry: false }>['code'];

/**
 * A code of a CONNECT_ERROR that is temporary (database down, too many
 * attempts): the client retries with backoff.
 */
export type RetryableCode = Extract<CodeRow, { retry: true }>['code'];

/**
 * The final refusal codes, {@link RefusalCode}: the rows of the server's
 * refusal table (codes.json) that say `retry: false`.
 */
export const REFUSAL_CODES: readonly RefusalCode[] = CODES.filter(
  (c): c is Extract<CodeRow, { retry: false }> => !c.retry,
).map((c) => c.code);

/** Why the server ended the session of an open socket (contract §3). */
export type SessionExpiredReason = 'revoked' | 'expired' | 'logged_out';

/**
 * The connection state, for a UI.
 *
 * - `connecting`: the first attempt (or one started by `connect()`) is under way.
 * - `connected`: the server admitted the socket.
 * - `reconnecting`: the connection dropped or failed temporarily; a retry is scheduled.
 * - `rate_limited`: the server sent the socket away for sending far over the
 *   per-user rate limit (`rate_limited`, contract §14); the client waits at
 *   least the server's `retryAfterMs`, with a backoff that grows while it
 *   happens again, then reconnects (state `reconnecting`).
 * - `disconnected`: closed by `close()`, by the server, or after the last retry failed.
 * - `unauthorized`: the server refused the handshake with a {@link RefusalCode}; no retry.
 * - `expired`: the server ended the session; no retry.
 */
export type ConnectionState =
  | 'connecting'
  | 'connected'
  | 'reconnecting'
  | 'rate_limited'
  | 'disconnected'
  | 'unauthorized'
  | 'expired';

/** Details that come with a state change. */
export interface StateDetail {
  /**
   * The refusal code (`unauthorized`), the retryable code (`reconnecting`),
   * or `RATE_LIMITED` (`rate_limited`) that caused it.
   */
  code?: string;
  /** The session end reason (`expired`). */
  reason?: SessionExpiredReason;
  /** `rate_limited`: the wait the server asked for, in ms. */
  retryAfterMs?: number;
  /** `rate_limited`: how long the client waits before it connects again, in ms (≥ `retryAfterMs`). */
  delayMs?: number;
  /**
   * `connected`: true when the server gave back the socket of the dropped
   * connection (contract §16), with its rooms; the events it missed were
   * delivered before this state. Absent on any other connection.
   */
  recovered?: boolean;
}

/**
 * Payload of `recovery` (contract §16), sent after each CONNECT of a
 * connection with recovery; see `Realtime.onRecovery`.
 */
export interface Recovery {
  /** The socket of the dropped connection came back, and the events it missed with it. */
  recovered: boolean;
  /** The client asked to recover and could not: it may have missed events (refetch). */
  missed: boolean;
}

/** Payload of `rate_limited` (contract §14), sent just before the server disconnects the socket. */
export interface RateLimited {
  /** Milliseconds until the user's bucket holds a token again. */
  retryAfterMs: number;
}

/** Payload of `presence` (contract §15): a presence room's members changed. */
export interface PresenceEvent {
  room: string;
  /** Users who became members. */
  joined: string[];
  /** Users who stopped being members. */
  left: string[];
  /** The number of members after the change. */
  count: number;
  /** The lists were cut at the server's `PRESENCE_MAX_MEMBERS`. */
  truncated?: boolean;
}

/** Payload of `incident:created`. */
export interface IncidentCreated {
  id: string;
  title: string;
  /** For example `low`, `medium`, `high`, `critical`; the server decides. */
  severity: string;
  /** ISO 8601 time. */
  createdAt: string;
}

/** Payload of `notification`. */
export interface Notification {
  id: string;
  message: string;
  /** ISO 8601 time. */
  createdAt: string;
}

/**
 * The server events the client knows, by name, with their payload type.
 * Add your own with the type parameter of `createRealtime`:
 *
 * ```ts
 * const rt = createRealtime<{ 'deploy:finished': { sha: string } }>();
 * rt.on('deploy:finished', (d) => d.sha);
 * ```
 */
export interface EventMap {
  'incident:created': IncidentCreated;
  notification: Notification;
  /** Also kept for you: see `Realtime.onPresence`. */
  presence: PresenceEvent;
  /** Also handled for you: state `rate_limited`. */
  rate_limited: RateLimited;
  /** Also handled for you: see `Realtime.onRecovery`. */
  recovery: Recovery;
}
