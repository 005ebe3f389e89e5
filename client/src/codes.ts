// Code generated from codes.json by `go test -run TestClientCodes -update .` in the
// repository root; DO NOT EDIT. The client's tests check that it matches codes.json.

/**
 * The refusal table of the sessiongate contract (§2): every code the server
 * may send in a CONNECT_ERROR, the message it comes with, and whether the
 * client retries it with backoff (`retry: true`) or stops (`retry: false`).
 */
export const CODES = [
  { code: 'ORIGIN_NOT_ALLOWED', message: 'unauthorized', retry: false },
  { code: 'NO_COOKIE', message: 'unauthorized', retry: false },
  { code: 'BAD_SIGNATURE', message: 'unauthorized', retry: false },
  { code: 'SESSION_NOT_FOUND', message: 'unauthorized', retry: false },
  { code: 'SESSION_EXPIRED', message: 'unauthorized', retry: false },
  { code: 'NOT_AUTHENTICATED', message: 'unauthorized', retry: false },
  { code: 'TOO_MANY_CONNECTIONS', message: 'too many connections', retry: false },
  { code: 'RATE_LIMITED', message: 'rate limited', retry: true },
  { code: 'INTERNAL', message: 'internal error', retry: true },
] as const;
