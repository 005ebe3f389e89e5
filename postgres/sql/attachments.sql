-- The attachments table of @socket.io/postgres-adapter (its README's DDL):
-- a cluster message with binary data, or of 8000 bytes or more, is stored
-- here in msgpack and its NOTIFY carries the row's id. Every node deletes
-- the rows older than its cleanup interval (30 s).
CREATE TABLE IF NOT EXISTS {{.Attachments}} (
  id bigserial UNIQUE,
  created_at timestamptz DEFAULT NOW(),
  payload bytea
);
