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
];
//# sourceMappingURL=types.js.map