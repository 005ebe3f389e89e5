// wire.mjs: how the cluster scripts print values as JSON lines. Binary
// values (Buffer, typed arrays, ArrayBuffer) travel as {"$bin": "<base64>"}
// both ways, so a test can tell a binary argument from a string.

// toWire returns v with every binary value replaced by {"$bin": base64}.
export function toWire(v) {
  if (v == null || typeof v !== "object") return v;
  if (ArrayBuffer.isView(v)) return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64") };
  if (v instanceof Set) return [...v].map(toWire);
  if (Array.isArray(v)) return v.map(toWire);
  if (typeof v.toJSON === "function") return toWire(v.toJSON());
  const o = {};
  for (const [k, x] of Object.entries(v)) o[k] = toWire(x);
  return o;
}

// fromWire returns v with every {"$bin": base64} replaced by a Buffer.
export function fromWire(v) {
  if (v == null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(fromWire);
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === "$bin" && typeof v.$bin === "string") return Buffer.from(v.$bin, "base64");
  const o = {};
  for (const [k, x] of Object.entries(v)) o[k] = fromWire(x);
  return o;
}

// printer returns a function writing one JSON line per object to stdout.
export function printer() {
  return (o) => process.stdout.write(JSON.stringify(toWire(o)) + "\n");
}
