/**
 * @sessiongate/client — the browser side of sessiongate: a socket.io-client v4
 * connection authenticated by the express-session cookie, with typed events,
 * a connection state for the UI, the session-expired, refusal and
 * server-restart behaviour of the sessiongate contract handled, remembered
 * room subscriptions and client events answered by the application.
 *
 * @packageDocumentation
 */
export { createRealtime, } from './realtime.js';
export { ACK_CODES, AckError, CallError, SubscriptionError, isTemporaryAck, } from './ackcodes.js';
export { REFUSAL_CODES, } from './types.js';
//# sourceMappingURL=index.js.map