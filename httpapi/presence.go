package httpapi

import (
	"github.com/sessiongate/sessiongate"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxPresenceUsers is the most users GET /api/presence lists.
const MaxPresenceUsers = 1000

// PresenceState is who is in a presence room, across the cluster.
type PresenceState struct {
	Users       []string // at most the limit asked for
	Count       int      // every member
	Connections int      // sockets in the room
	Truncated   bool     // Users does not hold every member
}

// PresenceSource answers GET /api/presence (contract §15), as
// *gateway.Gateway does through cmd/sessiongate. Presence returns at most
// limit users of room; ok is false when room is not a presence room.
type PresenceSource interface {
	Presence(room string, limit int) (st PresenceState, ok bool)
}

// presenceBody is the answer of GET /api/presence.
type presenceBody struct {
	Room        string   `json:"room"`
	Users       []string `json:"users"`
	Count       int      `json:"count"`
	Connections int      `json:"connections"`
	Truncated   bool     `json:"truncated,omitempty"`
}

// codedError is the body of a refusal with a machine code:
// {"error":{"code","message"}}.
type codedError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// presence serves GET /api/presence?room= behind the Bearer PUBLISH_KEY.
func (h *Handler) presence(w http.ResponseWriter, r *http.Request) {
	if !bearerMatches(r.Header.Get("Authorization"), h.cfg.PublishKey) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sessiongate"`)
		writeError(w, http.StatusUnauthorized, "invalid or missing publish key")
		return
	}
	room := r.URL.Query().Get("room")
	msg := ""
	switch {
	case room == "":
		msg = "room is required"
	case len(room) > MaxRoomName:
		msg = "room is longer than 256 bytes"
	case !utf8.ValidString(room) || strings.IndexFunc(room, unicode.IsControl) >= 0:
		msg = "room is not valid UTF-8 without control characters"
	}
	var st PresenceState
	if msg == "" {
		var ok bool
		if st, ok = h.cfg.Presence.Presence(room, MaxPresenceUsers); !ok {
			msg = "not a presence room (PRESENCE_ROOMS)"
		}
	}
	if msg != "" {
		var e codedError
		e.Error.Code, e.Error.Message = sessiongate.ECodeInvalidRoom, msg
		writeJSON(w, http.StatusBadRequest, e)
		return
	}
	if st.Users == nil {
		st.Users = []string{}
	}
	writeJSON(w, http.StatusOK, presenceBody{Room: room, Users: st.Users, Count: st.Count, Connections: st.Connections, Truncated: st.Truncated})
}
