/**
 * backoffDelay returns the delay before retry number `attempt` (0-based):
 * `delay · 2^attempt`, moved at random by up to ± randomizationFactor of
 * itself, and kept within [0, delayMax]. It uses the same settings and shape
 * as socket.io-client's own reconnection, so a refused-but-retryable
 * handshake is retried at the pace of a dropped transport.
 */
export function backoffDelay(attempt, opts, random = Math.random) {
    const base = Math.min(opts.delayMax, opts.delay * 2 ** attempt);
    const factor = Math.min(1, Math.max(0, opts.randomizationFactor));
    const jittered = base + base * factor * (2 * random() - 1);
    return Math.round(Math.min(opts.delayMax, Math.max(0, jittered)));
}
//# sourceMappingURL=backoff.js.map