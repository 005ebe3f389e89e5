'use strict';

// A real Express + express-session + connect-pg-simple + passport app: the
// Node peer of sessiongate's interop tests. See README.md.

const express = require('express');
const session = require('express-session');
const PgStore = require('connect-pg-simple')(session);
const passport = require('passport');
const LocalStrategy = require('passport-local').Strategy;
const pg = require('pg');
const crypto = require('crypto');

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`express-app: ${name} is required`);
    process.exit(2);
  }
  return v;
}

// USERS = "email:password:id,..."; a numeric id becomes a number, so that
// passport writes "passport":{"user":42}.
function parseUsers(spec) {
  return spec.split(',').filter(Boolean).map((entry) => {
    const parts = entry.split(':');
    if (parts.length !== 3) {
      console.error(`express-app: bad USERS entry ${JSON.stringify(entry)}`);
      process.exit(2);
    }
    const [email, password, rawID] = parts;
    const id = /^[0-9]+$/.test(rawID) ? Number(rawID) : rawID;
    return { id, email, password };
  });
}

// pgtest hands out URLs with ?search_path=<schema>; node-pg does not know
// that parameter, so it becomes the startup option -c search_path=<schema>.
function poolConfig(databaseURL) {
  const u = new URL(databaseURL);
  const searchPath = u.searchParams.get('search_path');
  u.searchParams.delete('search_path');
  const config = { connectionString: u.toString() };
  if (searchPath) {
    config.options = `-c search_path=${searchPath}`;
  }
  return config;
}

const users = parseUsers(process.env.USERS || '');
const secrets = required('SESSION_SECRETS').split(',');
const pool = new pg.Pool(poolConfig(required('DATABASE_URL')));
pool.on('error', (err) => console.error('express-app: pg pool:', err));

const store = new PgStore({
  pool,
  tableName: process.env.SESSION_TABLE || 'Session',
  createTableIfMissing: true,
});

passport.use(new LocalStrategy({ usernameField: 'email' }, (email, password, done) => {
  const user = users.find((u) => u.email === email && u.password === password);
  done(null, user || false);
}));
passport.serializeUser((user, done) => done(null, user.id));
passport.deserializeUser((id, done) => {
  const user = users.find((u) => u.id === id);
  done(null, user || false);
});

const app = express();
// The raw body is kept for the hooks' signature check, which covers the
// exact bytes sessiongate sent.
app.use(express.json({ verify: (req, _res, buf) => { req.rawBody = buf; } }));
app.use(session({
  store,
  secret: secrets,
  resave: false,
  saveUninitialized: false,
  cookie: { maxAge: 3600000, sameSite: 'lax', httpOnly: true },
}));
app.use(passport.session());

const publicUser = (u) => ({ id: u.id, email: u.email });

app.post('/login', (req, res, next) => {
  passport.authenticate('local', (err, user) => {
    if (err) return next(err);
    if (!user) return res.status(401).json({ error: 'invalid credentials' });
    req.login(user, (err) => {
      if (err) return next(err);
      res.json({ user: publicUser(user) });
    });
  })(req, res, next);
});

app.post('/logout', (req, res, next) => {
  req.logout((err) => {
    if (err) return next(err);
    res.json({ ok: true });
  });
});

app.get('/me', (req, res) => {
  if (!req.user) return res.status(401).json({ error: 'not authenticated' });
  res.json({ user: publicUser(req.user) });
});

// Reports cookie.expires as loaded from the store, then touches the session
// (cookie.expires = now + maxAge). As on any request without a change to the
// session, express-session then calls the store's touch, which moves only
// the expire column: sess.cookie.expires in the row stays as it was, and no
// Set-Cookie is sent (rolling is off).
const iso = (d) => (d ? d.toISOString() : null);
app.get('/session-touch', (req, res) => {
  if (!req.user) return res.status(401).json({ error: 'not authenticated' });
  const previousExpires = iso(req.session.cookie.expires);
  req.session.touch();
  res.json({ previousExpires, expires: iso(req.session.cookie.expires) });
});

// sessiongate's hooks (docs/contract.md, Subscriptions). The forwarded
// Cookie went through express-session and passport above, so req.user is
// the user of the socket's session; the body's user is not trusted.
const hookSecret = process.env.HOOK_SECRET || '';
const hookCalls = { subscribe: 0, slow: 0, events: 0 };

function signed(req) {
  const header = req.get('X-Sessiongate-Signature') || '';
  if (!hookSecret || !req.rawBody || !header.startsWith('sha256=')) return false;
  const want = crypto.createHmac('sha256', hookSecret).update(req.rawBody).digest();
  const got = Buffer.from(header.slice('sha256='.length), 'hex');
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

// Rules: incident:* is open to user 1 (alice) for 60 s; admin:* is 403;
// broken:* is a 500; notjson:* a 200 that is not JSON; anything else
// {"allow": false}.
app.post('/hooks/subscribe', (req, res) => {
  hookCalls.subscribe++;
  if (!signed(req)) return res.status(401).json({ error: 'bad signature' });
  const room = String((req.body && req.body.room) || '');
  if (room.startsWith('admin:')) return res.status(403).json({ error: 'forbidden' });
  if (room.startsWith('broken:')) return res.status(500).json({ error: 'broken' });
  if (room.startsWith('notjson:')) return res.type('text').send('yes');
  if (room.startsWith('incident:') && req.user && req.user.id === 1) {
    return res.json({ allow: true, ttl: 60 });
  }
  res.json({ allow: false });
});

// Never answers: the hook timeout's test.
app.post('/hooks/slow', () => {
  hookCalls.slow++;
});

// Client events (docs/contract.md, Client events): echoes the event for
// req.user; without one 403. Event "reject" is a 422, "fail" a 500, "slow"
// never answers.
app.post('/hooks/events', (req, res) => {
  hookCalls.events++;
  if (!signed(req)) return res.status(401).json({ error: 'bad signature' });
  if (!req.user) return res.status(403).json({ error: 'not authenticated' });
  const { event, args } = req.body || {};
  if (event === 'reject') return res.status(422).json({ error: 'rejected' });
  if (event === 'fail') return res.status(500).json({ error: 'failed' });
  if (event === 'slow') return undefined;
  res.json({ ok: true, user: req.user.id, event, args, seq: hookCalls.events });
});

app.get('/hooks/count', (_req, res) => res.json(hookCalls));

// Creates the table (createTableIfMissing acts on the first query) before
// announcing readiness, so a test may insert rows straight away.
store.get('warm-up', (err) => {
  if (err) {
    console.error('express-app: session store:', err);
    process.exit(1);
  }
  const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    store.close().then(() => pool.end()).finally(() => process.exit(0));
  });
});
