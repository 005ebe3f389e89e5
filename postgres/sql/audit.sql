CREATE TABLE IF NOT EXISTS {{.Audit}} (
  id bigserial PRIMARY KEY,
  time timestamptz NOT NULL,
  action text NOT NULL,
  severity text NOT NULL,
  user_id text NOT NULL DEFAULT '',
  session_hash text NOT NULL DEFAULT '',
  remote_addr text NOT NULL DEFAULT '',
  user_agent text NOT NULL DEFAULT '',
  socket_id text NOT NULL DEFAULT '',
  details text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sessiongate_audit_time_idx ON {{.Audit}} (time);
-- count: how many events a row stands for (refusals are aggregated); rows
-- written before the column existed stand for one.
ALTER TABLE {{.Audit}} ADD COLUMN IF NOT EXISTS count integer NOT NULL DEFAULT 1;
