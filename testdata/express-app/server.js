'use strict';

// A real Express + express-session + connect-pg-simple + passport app: the
// Node peer of sessiongate's interop tests. See README.md.

const express = require('express');
const session = require('express-session');
const PgStore = require('connect-pg-simple')(session);
const passport = require('passport');
const LocalStrategy = require('passport-local').Strategy;
const pg = require('pg');

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
app.use(express.json());
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
