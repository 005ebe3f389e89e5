// client.mjs: official socket.io-client v4 sockets for the cluster tests.
//
//   node client.mjs '<spec JSON>'
//
// spec: {"clients": [{
//   "name": "a",                       // names the client in every line
//   "url": "http://127.0.0.1:port",    // the node it connects to
//   "nsp": "/",                        // optional
//   "cookie": "connect.sid=…",         // Cookie header (extraHeaders), optional
//   "auth": {...},                     // handshake auth, optional (node-server.mjs reads rooms, data)
//   "transports": ["websocket"]        // optional; default websocket
// }]}
//
// Every client connects at once and never reconnects; each thing that
// happens is one JSON line: {"client","type":"connect","id"},
// {"client","type":"connect_error","message","code","data"},
// {"client","type":"event","event","args"} (binary as {"$bin": base64}; an
// event asking for an ack is answered with the client's name and flagged
// "ack": true), {"client","type":"disconnect","reason"}. It exits when stdin
// ends, closing its sockets.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";
import { printer } from "./wire.mjs";

const spec = JSON.parse(process.argv[2] ?? "{}");
const out = printer();
const sockets = [];

for (const c of spec.clients ?? []) {
  const headers = {};
  if (c.cookie) headers.Cookie = c.cookie;
  const socket = io(c.url + (c.nsp && c.nsp !== "/" ? c.nsp : ""), {
    forceNew: true,
    reconnection: false,
    transports: c.transports ?? ["websocket"],
    extraHeaders: headers,
    auth: c.auth ?? {},
  });
  const name = c.name;
  socket.on("connect", () => out({ client: name, type: "connect", id: socket.id }));
  socket.on("connect_error", (err) =>
    out({ client: name, type: "connect_error", message: err.message, code: err.data?.code ?? null, data: err.data ?? null }));
  socket.onAny((event, ...args) => {
    let ack = false;
    if (typeof args[args.length - 1] === "function") {
      args.pop()(name);
      ack = true;
    }
    out({ client: name, type: "event", event, args, ack });
  });
  socket.on("disconnect", (reason) => out({ client: name, type: "disconnect", reason }));
  sockets.push(socket);
}

createInterface({ input: process.stdin }).on("close", () => {
  for (const s of sockets) s.close();
  setTimeout(() => process.exit(0), 200).unref();
});
