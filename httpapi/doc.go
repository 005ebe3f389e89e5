// Package httpapi is the HTTP surface of sessiongate beside the Socket.IO
// endpoint:
//
//   - POST /api/publish: a backend emits an event to rooms (Bearer key);
//   - POST /auth/login, POST /auth/logout, GET /auth/me: the embedded login,
//     which writes session rows and cookies exactly as express-session and
//     passport do, so that a Node app sharing the store sees the same sessions;
//   - GET /healthz, GET /readyz, GET /metrics: operations;
//   - everything else, optionally, a static handler (the demo page).
//
// The package depends on small interfaces (Publisher, SessionEnder, Pinger)
// and the root package's stores, never on the concrete Socket.IO server,
// gateway or backend: cmd/sessiongate wires those in.
//
// Raw session ids and cookies are never logged.
package httpapi
