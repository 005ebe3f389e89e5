/** Settings of an exponential backoff with jitter, in milliseconds. */
export interface BackoffOptions {
  /** First delay. */
  delay: number;
  /** Upper bound of every delay. */
  delayMax: number;
  /** Each delay is moved by up to ± this fraction of itself (0 ≤ f ≤ 1). */
  randomizationFactor: number;
}

/**
 * backoffDelay returns the delay before retry number `attempt` (0-based):
 * `delay · 2^attempt`, moved at random by up to ± randomizationFactor of
 * itself, and kept within [0, delayMax]. It uses the same settings and shape
 * as socket.io-client's own reconnection, so a refused-but-retryable
 * handshake is retried at the pace of a dropped transport.
 */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const base = Math.min(opts.delayMax, opts.delay * 2 ** attempt);
  const factor = Math.min(1, Math.max(0, opts.randomizationFactor));
  const jittered = base + base * factor * (2 * random() - 1);
  return Math.round(Math.min(opts.delayMax, Math.max(0, jittered)));
}
