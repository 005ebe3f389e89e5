package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// MaxPublishBody is the largest /api/publish body accepted; a larger one is
// answered 413.
const MaxPublishBody = 1 << 20

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
}

// PublishRequest is a parsed, valid /api/publish body.
type PublishRequest struct {
	To    []string        // rooms, at least one, none empty
	Event string          // not reserved
	Data  json.RawMessage // nil when the body had no "data"
}

// ParsePublishRequest parses and validates a /api/publish body. The error
// message is safe to send to the caller.
func ParsePublishRequest(body []byte) (*PublishRequest, error) {
	var raw struct {
		To    json.RawMessage `json:"to"`
		Event json.RawMessage `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errors.New("body is not a JSON object")
	}
	if raw.To == nil || bytes.Equal(raw.To, []byte("null")) {
		return nil, errors.New(`"to" is required`)
	}
	var rooms []json.RawMessage
	if err := json.Unmarshal(raw.To, &rooms); err != nil {
		return nil, errors.New(`"to" must be an array of room names`)
	}
	if len(rooms) == 0 {
		return nil, errors.New(`"to" must name at least one room`)
	}
	req := &PublishRequest{To: make([]string, 0, len(rooms)), Data: raw.Data}
	for i, r := range rooms {
		var room string
		if r[0] != '"' || json.Unmarshal(r, &room) != nil {
			return nil, fmt.Errorf(`"to"[%d] must be a string`, i)
		}
		if room == "" {
			return nil, fmt.Errorf(`"to"[%d] is empty`, i)
		}
		req.To = append(req.To, room)
	}
	if raw.Event == nil || bytes.Equal(raw.Event, []byte("null")) {
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

// publish serves POST /api/publish (contract §6).
func (h *Handler) publish(w http.ResponseWriter, r *http.Request) {
	if !bearerMatches(r.Header.Get("Authorization"), h.cfg.PublishKey) {
		h.publishes.inc(PublishUnauthorized)
		w.Header().Set("WWW-Authenticate", `Bearer realm="sessiongate"`)
		writeError(w, http.StatusUnauthorized, "invalid or missing publish key")
		return
	}
	h.setBodyDeadline(w)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPublishBody))
	if err != nil {
		h.publishes.inc(PublishBadRequest)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", MaxPublishBody))
			return
		}
		writeError(w, http.StatusBadRequest, "cannot read body")
		return
	}
	req, err := ParsePublishRequest(body)
	if err != nil {
		h.publishes.inc(PublishBadRequest)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.cfg.Publisher.Publish(req.To, req.Event, req.Data); err != nil {
		h.publishes.inc(PublishError)
		h.log.Error("publish", "event", req.Event, "rooms", len(req.To), "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	h.publishes.inc(PublishOK)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
