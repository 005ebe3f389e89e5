package httpapi

import (
	"context"
	"net/http"
	"time"
)

// readyTimeout bounds the store ping of /readyz.
const readyTimeout = 2 * time.Second

// readyLogInterval is how often at most /readyz logs that the store does
// not answer: a probe loop against a down store writes a line per interval,
// with the count of failures left out, not one per probe.
const readyLogInterval = 30 * time.Second

// healthz serves GET /healthz: the process is up.
func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyBody is the answer of /readyz.
type readyBody struct {
	Status   string   `json:"status"`        // "ok" or "unavailable"
	Bus      string   `json:"bus,omitempty"` // "ok" or "down"; absent on a single node
	Warnings []string `json:"warnings,omitempty"`
}

// BusDownWarning is the /readyz warning of a node whose cluster bus does not
// answer.
const BusDownWarning = "cluster bus down: this node serves its own sockets only and misses what other nodes publish until it reconnects"

// checkBus sets the "bus" of body, with a warning and a log line (at most
// once per readyLogInterval, the reason included) while it is down.
func (h *Handler) checkBus(ctx context.Context, body *readyBody) {
	if h.cfg.Bus == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := h.cfg.Bus.Ping(ctx); err != nil {
		body.Bus = "down"
		// Clipped: the slice may be the Warnings func's own.
		body.Warnings = append(body.Warnings[:len(body.Warnings):len(body.Warnings)], BusDownWarning)
		h.busDown.Store(true)
		if ok, _ := h.busLog.Allow("", h.now()); ok {
			h.log.Warn("cluster bus down", "err", err, "failures_not_logged", h.busQuiet.Swap(0))
		} else {
			h.busQuiet.Add(1)
		}
		return
	}
	body.Bus = "ok"
	if h.busDown.Swap(false) {
		h.log.Info("cluster bus answers again", "failures_not_logged", h.busQuiet.Swap(0))
	}
}

// readyz serves GET /readyz: 200 {"status":"ok"} when the store answers,
// else 503 {"status":"unavailable"}, with the Warnings if any. Why the
// store does not answer (an error that may name the database's user, host
// and name) goes to the log only.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	body := readyBody{Status: "ok"}
	if h.cfg.Warnings != nil {
		body.Warnings = h.cfg.Warnings()
	}
	h.checkBus(r.Context(), &body)
	if h.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := h.cfg.Ready.Ping(ctx); err != nil {
			h.readyDown.Store(true)
			if ok, _ := h.readyLog.Allow("", h.now()); ok {
				h.log.Warn("not ready: store does not answer", "err", err, "failures_not_logged", h.readyQuiet.Swap(0))
			} else {
				h.readyQuiet.Add(1)
			}
			body.Status = "unavailable"
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		if h.readyDown.Swap(false) {
			h.log.Info("ready: store answers again", "failures_not_logged", h.readyQuiet.Swap(0))
		}
	}
	writeJSON(w, http.StatusOK, body)
}
