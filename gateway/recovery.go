package gateway

import (
	"encoding/json"
	"slices"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/socketio"
)

// Connection state recovery (the contract's section 16) with a Gateway:
// set socketio.Options.Recovery with Key g.RecoveryKey, State
// g.RecoveryState and, unless every client is known to expect offsets,
// Enabled AsksRecovery. The handshake hook runs for every recovery as for
// any CONNECT (the cookie, the row, its expiry, the user): a session that
// ended during the drop is refused with its usual code and never gets the
// events it missed.

// EventRecovery is the event sent right after every CONNECT of a socket
// with recovery (socketio.RecoveryOptions.OffsetEvent): {"recovered":
// bool, "missed": bool} and the offset as its last argument; missed tells
// a client that asked to recover and could not that it may have missed
// events (refetch).
const EventRecovery = "recovery"

// RecoveryAuthField is the field of the CONNECT auth with which a client
// asks for recovery ({"recovery": true}): the @sessiongate/client sends
// it, since it strips the offsets before the application sees them.
const RecoveryAuthField = "recovery"

// AsksRecovery reports whether the CONNECT of s asked for recovery
// (RecoveryAuthField true): socketio.RecoveryOptions.Enabled when stock
// clients, which would see offsets as an extra argument, are to be left
// out.
func AsksRecovery(s *socketio.Socket) bool {
	var auth map[string]json.RawMessage
	if json.Unmarshal(s.Handshake().Auth, &auth) != nil {
		return false
	}
	return string(auth[RecoveryAuthField]) == "true"
}

// RecoveryKey is socketio.RecoveryOptions.Key: the hash of the session
// whose signed cookie the socket's handshake carries, to which its pid is
// bound (a socket of another session cannot recover it). False without a
// validly signed cookie: the handshake hook refuses that socket anyway.
func (g *Gateway) RecoveryKey(s *socketio.Socket) (string, bool) {
	sid, err := expresssession.SessionIDFromHeader(s.Handshake().Header, g.cookieName, g.secrets)
	if err != nil {
		return "", false
	}
	return sessiongate.SessionHash(sid), true
}

// recoveryState is what the gateway saves with a dropped socket.
type recoveryState struct {
	Subs    []string `json:"subs,omitempty"`    // rooms joined by subscribe
	Session []string `json:"session,omitempty"` // rooms rendered from the session (SESSION_ROOMS)
}

// RecoveryState is socketio.RecoveryOptions.State: the rooms the socket
// subscribed to and those its session rendered, so that its recovery
// restores the subscriptions as such and moves the session rooms to what
// the row renders now. Room names only: no session data.
func (g *Gateway) RecoveryState(s *socketio.Socket) json.RawMessage {
	c := connOf(s)
	if c == nil {
		return nil
	}
	var st recoveryState
	c.subsMu.Lock()
	for r := range c.subs {
		st.Subs = append(st.Subs, r)
	}
	c.subsMu.Unlock()
	c.moveMu.Lock()
	st.Session = slices.Clone(c.joined)
	c.moveMu.Unlock()
	b, _ := json.Marshal(st)
	return b
}

// restoreRooms returns the saved rooms a recovered socket rejoins, and
// marks its restored subscriptions on c: every saved room but the session
// rooms the row no longer renders (c.joined holds those it renders now,
// joined anyway) and the user room (joined anyway).
func restoreRooms(c *conn, rec *socketio.Recovered) []string {
	var st recoveryState
	_ = json.Unmarshal(rec.State, &st) // none saved: no subscriptions, no session rooms
	user := c.identity.Room()
	keep := make([]string, 0, len(rec.Rooms))
	for _, r := range rec.Rooms {
		if r == user || (slices.Contains(st.Session, r) && !slices.Contains(c.joined, r)) {
			continue
		}
		keep = append(keep, r)
		if slices.Contains(st.Subs, r) && !slices.Contains(c.joined, r) {
			if c.subs == nil {
				c.subs = make(map[string]bool)
			}
			c.subs[r] = true
		}
	}
	return keep
}
