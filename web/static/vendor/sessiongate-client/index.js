/**
 * @sessiongate/client — the browser side of sessiongate: a socket.io-client v4
 * connection authenticated by the express-session cookie, with typed events,
 * a connection state for the UI, and the session-expired, refusal and
 * server-restart behaviour of the sessiongate contract handled.
 *
 * @packageDocumentation
 */
export { createRealtime, } from './realtime.js';
export { REFUSAL_CODES, } from './types.js';
//# sourceMappingURL=index.js.map