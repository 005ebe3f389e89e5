{{/* hasUser is true when passport.user of the JSON is a number or a
non-empty string, as expresssession.UserID decides. */}}
{{- define "hasUser"}}coalesce(json_typeof({{.}} -> 'passport' -> 'user') = 'number' OR (json_typeof({{.}} -> 'passport' -> 'user') = 'string' AND {{.}} -> 'passport' ->> 'user' <> ''), false){{end -}}
-- Announces ended sessions on the channel sessiongate_revocations with the
-- payload "<reason> <hex sha256 of sid>". Row-level and guarded by WHEN
-- clauses, so an ordinary touch or set runs no function at all. A deleted
-- row that had already expired (a prune, connect-pg-simple's or
-- sessiongate's) announces nothing: its sockets were ended at its expiry,
-- and a prune of many rows must not flood the channel.
CREATE OR REPLACE FUNCTION {{.Func}}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('sessiongate_revocations',
    TG_ARGV[0] || ' ' || encode(sha256(convert_to(OLD.sid, 'UTF8')), 'hex'));
  RETURN NULL;
END
$fn$;

CREATE OR REPLACE TRIGGER {{.TrigRevoked}} AFTER DELETE ON {{.Table}}
  FOR EACH ROW
  WHEN (OLD.expire > (now() AT TIME ZONE 'UTC'))
  EXECUTE FUNCTION {{.Func}}('revoked');

CREATE OR REPLACE TRIGGER {{.TrigLoggedOut}} AFTER UPDATE ON {{.Table}}
  FOR EACH ROW
  WHEN (OLD.sess::text IS DISTINCT FROM NEW.sess::text
    AND {{template "hasUser" "OLD.sess"}}
    AND NOT {{template "hasUser" "NEW.sess"}})
  EXECUTE FUNCTION {{.Func}}('logged_out');

CREATE OR REPLACE TRIGGER {{.TrigExpired}} AFTER UPDATE ON {{.Table}}
  FOR EACH ROW
  WHEN (NEW.expire <= (now() AT TIME ZONE 'UTC') AND OLD.expire > (now() AT TIME ZONE 'UTC'))
  EXECUTE FUNCTION {{.Func}}('expired');
