'use strict';

// Reads express-session's session id from Cookie headers exactly as
// express-session 1.19.0 does (its own cookie and cookie-signature), for
// the Go tests to compare with (expresssession TestCookieOracle).
//
// stdin: one JSON line per case, {"header": "...", "name": "...", "secrets": [...]},
// where header holds the header's bytes as characters U+0000–U+00FF, as Node
// reads them. stdout: one JSON line per case, {"raw": <cookie value or
// null>, "sid": <unsigned session id or null>}.

const path = require('node:path');
const readline = require('node:readline');

const sessionDir = path.dirname(require.resolve('express-session'));
const cookie = require(require.resolve('cookie', { paths: [sessionDir] }));
const signature = require(require.resolve('cookie-signature', { paths: [sessionDir] }));

// express-session's getcookie and unsigncookie, without the cookie-parser
// fallbacks.
function sessionID(raw, secrets) {
  if (!raw || raw.substr(0, 2) !== 's:') return null;
  for (const secret of secrets) {
    const sid = signature.unsign(raw.slice(2), secret);
    if (sid !== false) return sid || null; // an empty id counts as none
  }
  return null;
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const { header, name, secrets } = JSON.parse(line);
  const cookies = cookie.parse(header);
  const raw = Object.prototype.hasOwnProperty.call(cookies, name) ? cookies[name] : null;
  process.stdout.write(JSON.stringify({ raw, sid: sessionID(raw, secrets) }) + '\n');
});
