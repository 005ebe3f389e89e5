package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/backoff"
)

// Backoff bounds between attempts to reconnect the listener.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// WatchRevocations listens on Channel over a dedicated connection (not one
// of the pool's) and calls fn for each ended session. When the connection is
// lost it reconnects with capped exponential backoff (100ms to 5s), listens
// again and then calls fn with Resync set, since endings may have been missed
// meanwhile; it does so after its first LISTEN too. It returns ctx.Err() when ctx is done. Payloads that do not
// parse are ignored.
func (db *DB) WatchRevocations(ctx context.Context, fn func(sessiongate.Revocation)) error {
	retry := backoff.Backoff{Min: minBackoff, Max: maxBackoff}
	// Whether endings may have been missed since the last listen: also
	// before the first, as sockets may have been admitted before the
	// listener was up (a resync of no live sessions costs nothing).
	gap := true
	for {
		conn, err := db.listen(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			gap = true
			if !retry.Wait(ctx) {
				return ctx.Err()
			}
			continue
		}
		retry.Reset()
		if db.testHookListening != nil {
			db.testHookListening(conn.PgConn().PID())
		}
		if gap {
			fn(sessiongate.Revocation{Resync: true})
		}
		receive(ctx, conn, fn)
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(closeCtx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		gap = true // the connection was lost
	}
}

func (db *DB) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, db.listenCf)
	if err != nil {
		return nil, fmt.Errorf("listener: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("listener: listen: %w", err)
	}
	return conn, nil
}

// receive delivers notifications until the connection fails or ctx ends.
func receive(ctx context.Context, conn *pgx.Conn, fn func(sessiongate.Revocation)) {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return
		}
		if n.Channel != Channel {
			continue
		}
		if r, err := ParsePayload(n.Payload); err == nil {
			fn(r)
		}
	}
}

// ParsePayload parses a notification of the revocation trigger,
// "<reason> <SessionHash(sid)>", where reason is revoked, expired or
// logged_out and the hash is 64 lowercase hex digits.
func ParsePayload(payload string) (sessiongate.Revocation, error) {
	reason, hash, ok := strings.Cut(payload, " ")
	if !ok {
		return sessiongate.Revocation{}, fmt.Errorf("parse revocation %q: no space", payload)
	}
	switch r := sessiongate.EndReason(reason); r {
	case sessiongate.EndRevoked, sessiongate.EndExpired, sessiongate.EndLoggedOut:
	default:
		return sessiongate.Revocation{}, fmt.Errorf("parse revocation %q: unknown reason", payload)
	}
	if len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return sessiongate.Revocation{}, fmt.Errorf("parse revocation %q: bad session hash", payload)
	}
	return sessiongate.Revocation{SessionHash: hash, Reason: sessiongate.EndReason(reason)}, nil
}
