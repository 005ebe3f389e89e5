package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
)

// EventIncidentCreated is the event POST /api/demo/incident publishes.
const EventIncidentCreated = "incident:created"

// incident is the payload of EventIncidentCreated.
type incident struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	Severity  string `json:"severity"`
	CreatedAt string `json:"createdAt"` // as JavaScript's toISOString
}

var severities = map[string]bool{"low": true, "medium": true, "high": true, "critical": true}

// incidentSeq numbers demo incidents.
var incidentSeq atomic.Int64

// demoIncident serves POST /api/demo/incident for the demo page: it
// publishes an incident to the caller's own room "user:<id>", the caller
// being the user of the session cookie. The optional body
// {"title","severity"} overrides the defaults.
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
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, `body must be {"title":"…","severity":"…"}`)
			return
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
	room := sessiongate.Identity{UserID: strconv.FormatInt(user.ID, 10)}.Room()
	if err := h.cfg.Publisher.Publish(r.Context(), Target{To: []string{room}}, EventIncidentCreated, data); err != nil {
		h.internalError(w, "demo incident: publish", fmt.Errorf("publish: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "incident": in})
}
