-- The session table mirrors connect-pg-simple's. sess is the JSON text byte
-- for byte; expire is UTC as JavaScript's toISOString() writes it
-- ("2006-01-02T15:04:05.000Z"): fixed width, so text order is time order.
CREATE TABLE IF NOT EXISTS session (
  sid TEXT NOT NULL PRIMARY KEY,
  sess TEXT NOT NULL,
  expire TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS "IDX_session_expire" ON session (expire);

CREATE TABLE IF NOT EXISTS sessiongate_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time TEXT NOT NULL,
  action TEXT NOT NULL,
  severity TEXT NOT NULL,
  user_id TEXT NOT NULL DEFAULT '',
  session_hash TEXT NOT NULL DEFAULT '',
  remote_addr TEXT NOT NULL DEFAULT '',
  user_agent TEXT NOT NULL DEFAULT '',
  socket_id TEXT NOT NULL DEFAULT '',
  details TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX IF NOT EXISTS sessiongate_audit_time_idx ON sessiongate_audit (time);

CREATE TABLE IF NOT EXISTS sessiongate_users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  email TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  created_at TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS sessiongate_users_email_key ON sessiongate_users (lower(email));
