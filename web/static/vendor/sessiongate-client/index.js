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
export { createRealtime, } from './realtime.js';
export { MAX_PRESENCE_USERS } from './presence.js';
export { ACK_CODES, AckError, CallError, SubscriptionError, isTemporaryAck, } from './ackcodes.js';
export { REFUSAL_CODES, } from './types.js';
//# sourceMappingURL=index.js.map