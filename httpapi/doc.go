// Package httpapi is the HTTP surface of sessiongate beside the Socket.IO
// endpoint:
//
//   - POST /api/publish: a backend emits an event to rooms, minus "except"
//     rooms (Bearer key); POST /api/rooms/join, /api/rooms/leave and
//     /api/disconnect, with the same key, make the sockets of rooms join or
//     leave rooms or disconnect them, as @socket.io/redis-emitter does. All
//     go through the namespace's adapter, so with a cluster they reach every
//     node;
//   - POST /auth/login, POST /auth/logout, GET /auth/me: the embedded login,
//     which writes session rows and cookies exactly as express-session and
//     passport do, so that a Node app sharing the store sees the same sessions;
//   - GET /healthz, GET /readyz (with the cluster bus's state): operations; GET /metrics, behind a Bearer
//     key, when given a metrics handler (package prometheus makes it);
//   - everything else, optionally, a static handler (the demo page).
//
// The endpoints a session cookie authorises (login, logout, the demo
// incident) refuse cross-site requests: a foreign Origin or Sec-Fetch-Site
// answers 403, and login and logout take only application/json bodies (415
// otherwise), which no HTML form can send. Every body is bounded in size
// and in the time it takes to arrive.
//
// The package depends on small interfaces (Publisher, RoomOperator,
// SessionEnder, Pinger)
// and the root package's stores, never on the concrete Socket.IO server,
// gateway or backend: cmd/sessiongate wires those in. Its own counters are
// plain atomics behind Handler.Stats.
//
// Raw session ids and cookies are never logged.
package httpapi
