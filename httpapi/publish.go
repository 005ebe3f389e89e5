package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"
)

// MaxPublishBody is the largest body of /api/publish and of the room
// operations; a larger one is answered 413.
const MaxPublishBody = 1 << 20

// Bounds of the room lists of /api/publish and the room operations
// ("to", "except", "rooms"). MaxRooms leaves room for a publish to every
// user of a large deployment in one request (the benchmarks publish to
// 2,000 user rooms at once) while bounding what one request makes every
// node of a cluster decode.
const (
	MaxRooms    = 10000
	MaxRoomName = 256 // bytes
)

// opTimeout bounds one publish or room operation: with a cluster adapter it
// waits for the bus (a publish, a request to the other nodes).
const opTimeout = 5 * time.Second

// reservedEvents are event names a publisher may not emit: the ones
// socket.io-client reserves, and the ones sessiongate sends, which clients
// act upon.
var reservedEvents = map[string]bool{
	"connect":         true,
	"connect_error":   true,
	"disconnect":      true,
	"disconnecting":   true,
	"newListener":     true,
	"removeListener":  true,
	"session_expired": true,
	"server_restart":  true,
	"presence":        true, // contract §15: a forged one would corrupt clients' member lists
	"rate_limited":    true, // §14: the client backs off on it
	"recovery":        true, // §16: the client reads its offset and missed flag
}

// Target selects sockets, on every node of a cluster: those in any of To and
// in none of Except. To is never empty: the HTTP API has no "every socket".
type Target struct {
	To     []string
	Except []string
}

// PublishRequest is a parsed, valid /api/publish body.
type PublishRequest struct {
	Target
	Event string          // not reserved
	Data  json.RawMessage // nil when the body had no "data"
}

// ParsePublishRequest parses and validates a /api/publish body. The error
// message is safe to send to the caller.
func ParsePublishRequest(body []byte) (*PublishRequest, error) {
	var raw struct {
		To     json.RawMessage `json:"to"`
		Except json.RawMessage `json:"except"`
		Event  json.RawMessage `json:"event"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errors.New("body is not a JSON object")
	}
	t, err := parseTarget(raw.To, raw.Except)
	if err != nil {
		return nil, err
	}
	req := &PublishRequest{Target: t, Data: raw.Data}
	if isAbsent(raw.Event) {
		return nil, errors.New(`"event" is required`)
	}
	if raw.Event[0] != '"' || json.Unmarshal(raw.Event, &req.Event) != nil {
		return nil, errors.New(`"event" must be a string`)
	}
	if req.Event == "" {
		return nil, errors.New(`"event" is empty`)
	}
	if reservedEvents[req.Event] {
		return nil, fmt.Errorf(`"event" %q is reserved`, req.Event)
	}
	return req, nil
}

// isAbsent reports whether a field was left out or null.
func isAbsent(v json.RawMessage) bool {
	return v == nil || bytes.Equal(v, []byte("null"))
}

// parseTarget parses "to" (required, at least one room) and "except"
// (optional).
func parseTarget(to, except json.RawMessage) (Target, error) {
	var t Target
	var err error
	if t.To, err = parseRooms("to", to, true); err != nil {
		return Target{}, err
	}
	if t.Except, err = parseRooms("except", except, false); err != nil {
		return Target{}, err
	}
	return t, nil
}

// parseRooms parses the room list of field: an array of 1 to MaxRooms
// non-empty strings of at most MaxRoomName bytes. Absent or null is an
// error when required, else no rooms.
func parseRooms(field string, v json.RawMessage, required bool) ([]string, error) {
	if isAbsent(v) {
		if required {
			return nil, fmt.Errorf("%q is required", field)
		}
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return nil, fmt.Errorf("%q must be an array of room names", field)
	}
	switch {
	case len(items) == 0 && required:
		return nil, fmt.Errorf("%q must name at least one room", field)
	case len(items) > MaxRooms:
		return nil, fmt.Errorf("%q names more than %d rooms", field, MaxRooms)
	}
	rooms := make([]string, 0, len(items))
	for i, it := range items {
		var room string
		if it[0] != '"' || json.Unmarshal(it, &room) != nil {
			return nil, fmt.Errorf("%q[%d] must be a string", field, i)
		}
		switch {
		case room == "":
			return nil, fmt.Errorf("%q[%d] is empty", field, i)
		case len(room) > MaxRoomName:
			return nil, fmt.Errorf("%q[%d] is longer than %d bytes", field, i, MaxRoomName)
		case !utf8.ValidString(room):
			return nil, fmt.Errorf("%q[%d] is not valid UTF-8", field, i)
		}
		rooms = append(rooms, room)
	}
	return rooms, nil
}

// publish serves POST /api/publish (contract §6).
func (h *Handler) publish(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readKeyed(w, r, h.publishes)
	if !ok {
		return
	}
	req, err := ParsePublishRequest(body)
	if err != nil {
		h.publishes.inc(PublishBadRequest)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	if err := h.cfg.Publisher.Publish(ctx, req.Target, req.Event, req.Data); err != nil {
		h.publishes.inc(PublishError)
		h.log.Error("publish", "event", req.Event, "rooms", len(req.To), "except", len(req.Except), "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	h.publishes.inc(PublishOK)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// readKeyed checks the Bearer PUBLISH_KEY of r and reads its body (at most
// MaxPublishBody, within BodyTimeout), counting a refusal in c. It answers
// the refusal itself and reports whether to go on.
func (h *Handler) readKeyed(w http.ResponseWriter, r *http.Request, c counters) ([]byte, bool) {
	if !bearerMatches(r.Header.Get("Authorization"), h.cfg.PublishKey) {
		c.inc(PublishUnauthorized)
		w.Header().Set("WWW-Authenticate", `Bearer realm="sessiongate"`)
		writeError(w, http.StatusUnauthorized, "invalid or missing publish key")
		return nil, false
	}
	h.setBodyDeadline(w)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPublishBody))
	if err != nil {
		c.inc(PublishBadRequest)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", MaxPublishBody))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "cannot read body")
		return nil, false
	}
	return body, true
}
