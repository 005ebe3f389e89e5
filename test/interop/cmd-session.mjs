// cmd-session.mjs: one official socket.io-client v4 socket for the
// end-to-end tests of cmd/sessiongate.
//
//   node cmd-session.mjs <url> <cookie header> [transports]
//
// It connects with the Cookie header (as a browser would send the
// express-session cookie), never reconnects, and prints one JSON line per
// thing that happens: {"type":"connect"}, {"type":"connect_error",...},
// {"type":"event","event":...,"args":[...]}, {"type":"disconnect","reason":...}.
// It exits 0 after a disconnect or a connect_error, 3 after 20 s.
import { io } from "socket.io-client";

const [url, cookie, transports = "polling,websocket"] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const socket = io(url, {
  transports: transports.split(","),
  extraHeaders: { Cookie: cookie },
  reconnection: false,
});

socket.on("connect", () => out({ type: "connect", transport: socket.io.engine.transport.name }));
socket.on("connect_error", (err) => {
  out({ type: "connect_error", message: err.message, data: err.data ?? null });
  process.exit(0);
});
socket.onAny((event, ...args) => out({ type: "event", event, args }));
socket.on("disconnect", (reason) => {
  out({ type: "disconnect", reason });
  setImmediate(() => process.exit(0));
});
setTimeout(() => {
  out({ type: "timeout" });
  process.exit(3);
}, 20000);
