/**
 * @sessiongate/client — the browser side of sessiongate: a socket.io-client v4
 * connection authenticated by the express-session cookie, with typed events,
 * a connection state for the UI, and the session-expired, refusal and
 * server-restart behaviour of the sessiongate contract handled.
 *
 * @packageDocumentation
 */
export {
  createRealtime,
  type Realtime,
  type RealtimeOptions,
  type SessionExpiredHandler,
  type SocketFactory,
  type SocketIOOptions,
  type SocketLike,
  type ManagerLike,
  type StateListener,
} from './realtime.js';
export {
  REFUSAL_CODES,
  type ConnectionState,
  type EventMap,
  type IncidentCreated,
  type Notification,
  type RefusalCode,
  type RetryableCode,
  type SessionExpiredReason,
  type StateDetail,
} from './types.js';
