CREATE TABLE IF NOT EXISTS {{.Users}} (
  id bigserial PRIMARY KEY,
  email text NOT NULL,
  password_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS sessiongate_users_email_key ON {{.Users}} (lower(email));
