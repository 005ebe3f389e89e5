/**
 * @sessiongate/client — the browser side of sessiongate: a socket.io-client v4
 * connection authenticated by the express-session cookie, with typed events,
 * a connection state for the UI, the session-expired, refusal and
 * server-restart and rate-limit behaviour of the sessiongate contract handled,
 * remembered room subscriptions with their presence, client events
 * answered by the application, and connection state recovery.
 *
 * @packageDocumentation
 */
export {
  createRealtime,
  type CallOptions,
  type Realtime,
  type RealtimeOptions,
  type RecoveryListener,
  type SessionExpiredHandler,
  type SocketFactory,
  type SocketIOOptions,
  type SocketLike,
  type ManagerLike,
  type StateListener,
  type Subscription,
  type SubscriptionErrorListener,
} from './realtime.js';
export { MAX_PRESENCE_USERS, type PresenceHandler, type PresenceSnapshot } from './presence.js';
export {
  ACK_CODES,
  AckError,
  CallError,
  SubscriptionError,
  isTemporaryAck,
  type AckCode,
  type AckErrorDetail,
} from './ackcodes.js';
export {
  REFUSAL_CODES,
  type ConnectionState,
  type EventMap,
  type IncidentCreated,
  type Notification,
  type PresenceEvent,
  type RateLimited,
  type Recovery,
  type RefusalCode,
  type RetryableCode,
  type SessionExpiredReason,
  type StateDetail,
} from './types.js';
