import { backoffDelay, type BackoffOptions } from './backoff.js';

/**
 * The error codes of acknowledgements, and what the client does with each:
 * the one place the retry rules are written.
 *
 * The server's side of this table lives in docs/contract.md: §12
 * Subscriptions (`subscribe` / `unsubscribe` acks) and the client events
 * section, §13 (`rt.call` acks). Handshake refusals are another table, generated
 * from codes.json into codes.ts.
 *
 * - `temporary`: the same request may succeed later. A subscription is
 *   idempotent, so the client retries it by itself with backoff (after at
 *   least `retryAfterMs` for `RATE_LIMITED`) up to `subscribeRetries` times.
 *   A call is not retried by the client (an event such as "acknowledge
 *   incident 7" may have reached the application before a timeout): the
 *   error says `temporary` and the caller decides.
 * - `client`: the client itself makes this code; the server never sends it.
 *
 * A code the table does not know is temporary when the server says so
 * (`"temporary": true`), final otherwise.
 */
export const ACK_CODES = [
  // subscribe / unsubscribe (contract §12)
  { code: 'INVALID_ROOM', temporary: false, client: false },
  { code: 'FORBIDDEN', temporary: false, client: false },
  // subscribe / unsubscribe and client events
  { code: 'UNAVAILABLE', temporary: true, client: false },
  // Also made by the client for a call while the server has sent it away
  // (state `rate_limited`), with the time left as `retryAfterMs`.
  { code: 'RATE_LIMITED', temporary: true, client: false },
  // client events (contract §13)
  { code: 'REJECTED', temporary: false, client: false },
  { code: 'UNKNOWN_EVENT', temporary: false, client: false },
  { code: 'INVALID_EVENT', temporary: false, client: false },
  // made by the client
  { code: 'TIMEOUT', temporary: true, client: true },
  { code: 'DISCONNECTED', temporary: true, client: true },
  { code: 'CANCELLED', temporary: false, client: true },
] as const;

/** A code of the {@link ACK_CODES} table. */
export type AckCode = (typeof ACK_CODES)[number]['code'];

const temporaryByCode: ReadonlyMap<string, boolean> = new Map(
  ACK_CODES.map((r) => [r.code, r.temporary]),
);

/**
 * isTemporaryAck reports whether an ack error with `code` may succeed when
 * asked again: the table's answer for a known code, else the server's
 * `temporary` flag.
 */
export function isTemporaryAck(code: string, serverSays?: boolean): boolean {
  return temporaryByCode.get(code) ?? serverSays === true;
}

/** What an ack error carries; the shape of `{"error": {...}}` in a reply. */
export interface AckErrorDetail {
  code: string;
  message: string;
  temporary: boolean;
  /** For `RATE_LIMITED`: wait at least this long before asking again. */
  retryAfterMs?: number;
}

/** The failure of a request answered by an acknowledgement. */
export class AckError extends Error {
  /** A code of {@link ACK_CODES}, or another code the server sent. */
  readonly code: string;
  /** The same request may succeed later (see {@link ACK_CODES}). */
  readonly temporary: boolean;
  /** For `RATE_LIMITED`: the server's wait before asking again, in ms. */
  readonly retryAfterMs: number | undefined;

  constructor(detail: AckErrorDetail) {
    super(detail.message);
    this.name = 'AckError';
    this.code = detail.code;
    this.temporary = detail.temporary;
    this.retryAfterMs = detail.retryAfterMs;
  }
}

/** A `subscribe` or `unsubscribe` that failed, for good or after its retries. */
export class SubscriptionError extends AckError {
  /** The room asked for. */
  readonly room: string;

  constructor(room: string, detail: AckErrorDetail) {
    super(detail);
    this.name = 'SubscriptionError';
    this.room = room;
  }
}

/** An `rt.call` that failed: the server's or application's error, a timeout, no connection. */
export class CallError extends AckError {
  /** The event emitted. */
  readonly event: string;

  constructor(event: string, detail: AckErrorDetail) {
    super(detail);
    this.name = 'CallError';
    this.event = event;
  }
}

/**
 * ackErrorOf returns the error of an ack reply `{"error": {"code", "message",
 * "temporary"?, "retryAfterMs"?}}`, or undefined when the reply is not one.
 */
export function ackErrorOf(reply: unknown): AckErrorDetail | undefined {
  if (!isRecord(reply)) return undefined;
  const e = reply['error'];
  if (!isRecord(e) || typeof e['code'] !== 'string') return undefined;
  const code = e['code'];
  const message = typeof e['message'] === 'string' ? e['message'] : code;
  const detail: AckErrorDetail = {
    code,
    message,
    temporary: isTemporaryAck(code, e['temporary'] === true),
  };
  const wait = e['retryAfterMs'];
  if (typeof wait === 'number' && Number.isFinite(wait) && wait >= 0) detail.retryAfterMs = wait;
  return detail;
}

/** An error the client makes itself (`TIMEOUT`, `DISCONNECTED`, `CANCELLED`). */
export function clientError(code: AckCode, message: string): AckErrorDetail {
  return { code, message, temporary: isTemporaryAck(code) };
}

/**
 * ackRetryDelay returns how long to wait before asking again after the
 * temporary error `detail`, the `attempt`-th in a row (0-based): the
 * client's backoff (the same as its reconnection's), and never less than
 * the server's `retryAfterMs`, moved later at random by up to
 * randomizationFactor of it: the tabs of one user share one rate-limit
 * bucket (contract §14), and retrying all at the same moment would have
 * most of them refused again.
 */
export function ackRetryDelay(
  detail: AckErrorDetail,
  attempt: number,
  backoff: BackoffOptions,
  random: () => number = Math.random,
): number {
  const wait = detail.retryAfterMs ?? 0;
  const factor = Math.min(1, Math.max(0, backoff.randomizationFactor));
  const floor = Math.ceil(wait * (1 + factor * random()));
  return Math.max(backoffDelay(attempt, backoff, random), floor);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}
