package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sessiongate/sessiongate"
)

// RoomOperator applies the room operations of the HTTP API, as
// @socket.io/redis-emitter's socketsJoin, socketsLeave and
// disconnectSockets do: through the namespace's adapter, so that they reach
// the sockets of every node of a cluster.
type RoomOperator interface {
	// JoinRooms makes the sockets t selects join rooms; LeaveRooms leave
	// them.
	JoinRooms(ctx context.Context, t Target, rooms []string) error
	LeaveRooms(ctx context.Context, t Target, rooms []string) error
	// DisconnectSockets disconnects the sockets t selects from the
	// namespace (the client does not reconnect); with close, their
	// connections are closed too.
	DisconnectSockets(ctx context.Context, t Target, close bool) error
}

// A RoomOp is one of the room operations.
type RoomOp string

// The room operations, and their paths.
const (
	RoomJoin       RoomOp = "join"       // POST /api/rooms/join
	RoomLeave      RoomOp = "leave"      // POST /api/rooms/leave
	RoomDisconnect RoomOp = "disconnect" // POST /api/disconnect
)

// RoomRequest is a parsed, valid body of a room operation.
type RoomRequest struct {
	Target
	Rooms []string // join and leave: the rooms, at least one
	Close bool     // disconnect: close the connections too
}

// roomFields are the fields each operation takes: an unknown one (a typo of
// "except", say) is refused rather than ignored, since ignoring it would
// act on more sockets than meant.
var roomFields = map[RoomOp][]string{
	RoomJoin:       {"to", "except", "rooms"},
	RoomLeave:      {"to", "except", "rooms"},
	RoomDisconnect: {"to", "except", "close"},
}

// ParseRoomRequest parses and validates the body of the room operation op.
// The error message is safe to send to the caller.
func ParseRoomRequest(op RoomOp, body []byte) (*RoomRequest, error) {
	fields, ok := roomFields[op]
	if !ok {
		return nil, fmt.Errorf("unknown room operation %q", op)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, errors.New("body is not a JSON object")
	}
	for k := range raw {
		if !slices.Contains(fields, k) {
			return nil, fmt.Errorf("unknown field %q (this operation takes %s)", k, strings.Join(quoted(fields), ", "))
		}
	}
	t, err := parseTarget(raw["to"], raw["except"])
	if err != nil {
		return nil, err
	}
	req := &RoomRequest{Target: t}
	if op == RoomDisconnect {
		if v := raw["close"]; !isAbsent(v) {
			if err := json.Unmarshal(v, &req.Close); err != nil {
				return nil, errors.New(`"close" must be true or false`)
			}
		}
		return req, nil
	}
	if req.Rooms, err = parseRooms("rooms", raw["rooms"], true); err != nil {
		return nil, err
	}
	for i, room := range req.Rooms {
		// A user's room holds that user's sockets and nothing else: the
		// gateway joins it, publishes to it reach exactly that user.
		if strings.HasPrefix(room, userRoomPrefix) {
			return nil, fmt.Errorf(`"rooms"[%d] %q is reserved: a user's room holds only that user's sockets`, i, room)
		}
	}
	return req, nil
}

// userRoomPrefix begins the room of each user (sessiongate.Identity.Room).
var userRoomPrefix = sessiongate.Identity{}.Room()

func quoted(s []string) []string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = `"` + v + `"`
	}
	return q
}

// roomOp serves the room operation op (contract §6).
func (h *Handler) roomOp(op RoomOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := h.readKeyed(w, r, h.roomOps)
		if !ok {
			return
		}
		req, err := ParseRoomRequest(op, body)
		if err != nil {
			h.roomOps.inc(PublishBadRequest)
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
		defer cancel()
		switch op {
		case RoomJoin:
			err = h.cfg.Rooms.JoinRooms(ctx, req.Target, req.Rooms)
		case RoomLeave:
			err = h.cfg.Rooms.LeaveRooms(ctx, req.Target, req.Rooms)
		case RoomDisconnect:
			err = h.cfg.Rooms.DisconnectSockets(ctx, req.Target, req.Close)
		}
		if err != nil {
			h.roomOps.inc(PublishError)
			h.log.Error("room operation", "op", op, "rooms", len(req.To), "except", len(req.Except), "err", err)
			writeError(w, http.StatusInternalServerError, "internal error")
			return
		}
		h.roomOps.inc(PublishOK)
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}
}
