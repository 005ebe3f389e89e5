package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
)

// EventIncidentCreated is the event POST /api/demo/incident publishes.
const EventIncidentCreated = "incident:created"

// DemoIncidentRoomPrefix starts the rooms POST /api/demo/incident may
// publish to besides the caller's own: the demo's incident rooms.
const DemoIncidentRoomPrefix = "incident:"

// incident is the payload of EventIncidentCreated.
type incident struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	Severity  string `json:"severity"`
	CreatedAt string `json:"createdAt"` // as JavaScript's toISOString
	// Room is the incident room it was published to; absent when it went
	// to the caller's own room. The page tells the two apart by it, since a
	// Socket.IO event does not say through which room it came.
	Room string `json:"room,omitempty"`
}

var severities = map[string]bool{"low": true, "medium": true, "high": true, "critical": true}

// incidentSeq numbers demo incidents.
var incidentSeq atomic.Int64

// demoIncident serves POST /api/demo/incident for the demo page: it
// publishes an incident to the caller's own room "user:<id>", the caller
// being the user of the session cookie. The optional body
// {"title","severity"} overrides the defaults; its "room", an incident room
// (DemoIncidentRoomPrefix), publishes there instead, with the room in the
// payload. Any signed-in user may post to an incident room: the endpoint
// exists only in the demo, whose incidents are made up, and who may watch
// a room is the subscribe rule's business, not the poster's.
func (h *Handler) demoIncident(w http.ResponseWriter, r *http.Request) {
	if h.checkBrowserRequest(w, r, false) != nil {
		return
	}
	user, err := h.currentUser(r)
	switch {
	case errors.Is(err, errNotAuthenticated):
		writeError(w, http.StatusUnauthorized, errNotAuthenticated.Error())
		return
	case err != nil:
		h.internalError(w, "demo incident", err)
		return
	}
	in := incident{Title: "Database latency above threshold", Severity: "high"}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLoginBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "cannot read body")
		return
	}
	if len(body) > 0 {
		var req struct {
			Title    string `json:"title"`
			Severity string `json:"severity"`
			Room     string `json:"room"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, `body must be {"title":"…","severity":"…","room":"…"}`)
			return
		}
		if req.Room != "" {
			if !validDemoRoom(req.Room) {
				writeError(w, http.StatusBadRequest, `"room" must be `+DemoIncidentRoomPrefix+`<id>, at most 256 bytes of UTF-8 without control characters`)
				return
			}
			in.Room = req.Room
		}
		if req.Title != "" {
			in.Title = req.Title
		}
		if req.Severity != "" {
			if !severities[req.Severity] {
				writeError(w, http.StatusBadRequest, `"severity" must be low, medium, high or critical`)
				return
			}
			in.Severity = req.Severity
		}
	}
	in.ID = "inc-" + strconv.FormatInt(incidentSeq.Add(1), 10)
	in.CreatedAt = expresssession.ISOString(h.now())
	data, err := json.Marshal(in)
	if err != nil {
		h.internalError(w, "demo incident: encode", err)
		return
	}
	room := in.Room
	if room == "" {
		room = sessiongate.Identity{UserID: strconv.FormatInt(user.ID, 10)}.Room()
	}
	if err := h.cfg.Publisher.Publish(r.Context(), Target{To: []string{room}}, EventIncidentCreated, data); err != nil {
		h.internalError(w, "demo incident: publish", fmt.Errorf("publish: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "incident": in})
}

// validDemoRoom reports whether room is an incident room a client could
// also name in a subscribe (contract §12's room syntax).
func validDemoRoom(room string) bool {
	id, ok := strings.CutPrefix(room, DemoIncidentRoomPrefix)
	return ok && id != "" && len(room) <= MaxRoomName && utf8.ValidString(room) &&
		strings.IndexFunc(room, unicode.IsControl) < 0
}

// demoUsers serves GET /api/demo/users for the demo page, which names the
// watchers of a room by email: the demo users that exist (Config.DemoUsers),
// {"users":[{"id","email"}]}, to a signed-in caller. Only the demo's own
// accounts are listed, whose emails the demo prints at start anyway.
func (h *Handler) demoUsers(w http.ResponseWriter, r *http.Request) {
	switch _, err := h.currentUser(r); {
	case errors.Is(err, errNotAuthenticated):
		writeError(w, http.StatusUnauthorized, errNotAuthenticated.Error())
		return
	case err != nil:
		h.internalError(w, "demo users", err)
		return
	}
	users := make([]userBody, 0, len(h.cfg.DemoUsers))
	for _, email := range h.cfg.DemoUsers {
		u, err := h.cfg.Users.UserByEmail(r.Context(), email)
		switch {
		case sessiongate.ErrorCode(err) == sessiongate.ECodeNotFound:
			continue // deleted with `sessiongate users delete`
		case err != nil:
			h.internalError(w, "demo users", err)
			return
		}
		users = append(users, userBody{ID: u.ID, Email: u.Email})
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
}
