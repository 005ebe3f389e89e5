package gateway

import (
	"context"
	"time"

	"github.com/sessiongate/sessiongate"
)

// checkUser is the handshake's last check when Config.Users is set: the
// session's user must still exist (NOT_AUTHENTICATED otherwise, as for a
// session without one). A failing lookup admits no one (INTERNAL), unless
// the client left meanwhile.
func (g *Gateway) checkUser(ctx context.Context, userID, short string) *refusal {
	if g.users == nil {
		return nil
	}
	uctx, cancel := context.WithTimeout(ctx, storeTimeout)
	active, err := g.users.ActiveUsers(uctx, []string{userID})
	cancel()
	switch {
	case err != nil && ctx.Err() != nil:
		return &refusal{code: HandshakeClientGone, short: short, err: err}
	case err != nil:
		return &refusal{code: sessiongate.ECodeInternal, short: short, err: err}
	case !active[userID]:
		return &refusal{code: sessiongate.ECodeNotAuthenticated, short: short}
	}
	return nil
}

// goneUsers returns the users of a checked batch that Config.Users no
// longer names, asking once for the whole batch (its distinct users of
// sessions that are otherwise still good). It returns nil when there is no
// UserChecker or it fails: the failure is logged, and the sessions stay
// until the next check, as when their rows cannot be read.
func (g *Gateway) goneUsers(ctx context.Context, items []checked, rows map[string]*sessiongate.Session, now time.Time) map[string]bool {
	if g.users == nil {
		return nil
	}
	seen := make(map[string]bool, len(items))
	var ids []string
	for _, it := range items {
		if !seen[it.userID] && endReason(rows[it.sid], now, it.userID) == "" {
			seen[it.userID] = true
			ids = append(ids, it.userID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	uctx, cancel := context.WithTimeout(ctx, storeTimeout)
	active, err := g.users.ActiveUsers(uctx, ids)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			g.log.Error("user check failed", "users", len(ids), "err", err)
		}
		return nil
	}
	gone := make(map[string]bool)
	for _, id := range ids {
		if !active[id] {
			gone[id] = true
		}
	}
	return gone
}
