/**
 * Codes the server sends in a CONNECT_ERROR when it refuses a handshake
 * (contract §2). Retrying cannot help: the browser's cookie or origin must
 * change first, so the client stops and reports `unauthorized`.
 */
export const REFUSAL_CODES = [
  'NO_COOKIE',
  'BAD_SIGNATURE',
  'SESSION_NOT_FOUND',
  'SESSION_EXPIRED',
  'NOT_AUTHENTICATED',
  'ORIGIN_NOT_ALLOWED',
] as const;

/** A handshake refusal code; see {@link REFUSAL_CODES}. */
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/**
 * Codes of a CONNECT_ERROR that is temporary (database down, too many
 * attempts): the client retries with backoff.
 */
export type RetryableCode = 'RATE_LIMITED' | 'INTERNAL';

/** Why the server ended the session of an open socket (contract §3). */
export type SessionExpiredReason = 'revoked' | 'expired' | 'logged_out';

/**
 * The connection state, for a UI.
 *
 * - `connecting`: the first attempt (or one started by `connect()`) is under way.
 * - `connected`: the server admitted the socket.
 * - `reconnecting`: the connection dropped or failed temporarily; a retry is scheduled.
 * - `disconnected`: closed by `close()`, by the server, or after the last retry failed.
 * - `unauthorized`: the server refused the handshake with a {@link RefusalCode}; no retry.
 * - `expired`: the server ended the session; no retry.
 */
export type ConnectionState =
  'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'unauthorized' | 'expired';

/** Details that come with a state change. */
export interface StateDetail {
  /** The refusal code (`unauthorized`) or the retryable code (`reconnecting`) that caused it. */
  code?: string;
  /** The session end reason (`expired`). */
  reason?: SessionExpiredReason;
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
}
