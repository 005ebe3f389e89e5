package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net/http"
	"strings"
	"time"
)

// BearerAuth returns a handler that serves next to requests bearing
// "Authorization: Bearer <key>" and answers 401 with a JSON error to any
// other. The key is compared in constant time.
func BearerAuth(key string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bearerMatches(r.Header.Get("Authorization"), key) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessiongate"`)
			writeError(w, http.StatusUnauthorized, "invalid or missing bearer key")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerMatches reports whether header is "Bearer <key>". It compares the
// digests in constant time, so that neither the key nor its length leaks.
func bearerMatches(header, key string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	want := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// browserRefusal is why checkBrowserRequest refused a request: its status,
// the message sent and the Login* result it counts as.
type browserRefusal struct {
	status int
	msg    string
	result string
}

var (
	refusedCrossOrigin = &browserRefusal{http.StatusForbidden, "cross-origin request refused", LoginCrossOrigin}
	refusedMediaType   = &browserRefusal{http.StatusUnsupportedMediaType, "Content-Type must be application/json", LoginUnsupportedMedia}
)

// checkBrowserRequest guards the endpoints a session cookie authorises
// against cross-site requests (login CSRF, foreign logouts): the request
// must come from its own origin or one of AllowedOrigins (as
// http.CrossOriginProtection judges by Sec-Fetch-Site, else Origin; a
// request with neither, from a non-browser, passes), and, with json, carry
// Content-Type application/json, which no HTML form can send. It also sets
// the body's read deadline. A refusal is answered and logged (at debug
// level: a flood of them must not flood the log; Stats counts the logins)
// here; the caller returns.
func (h *Handler) checkBrowserRequest(w http.ResponseWriter, r *http.Request, json bool) *browserRefusal {
	h.setBodyDeadline(w)
	var refusal *browserRefusal
	if err := h.origins.Check(r); err != nil {
		refusal = refusedCrossOrigin
	} else if json && !isJSON(r.Header.Get("Content-Type")) {
		refusal = refusedMediaType
	}
	if refusal != nil {
		h.log.Debug("request refused", "path", r.URL.Path, "status", refusal.status,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"),
			"remote", h.clients.ClientIP(r.RemoteAddr, r.Header))
		writeError(w, refusal.status, refusal.msg)
	}
	return refusal
}

// setBodyDeadline sets the read deadline of the request body that w
// answers to BodyTimeout from now. (The server resets it for the
// connection's next request.)
func (h *Handler) setBodyDeadline(w http.ResponseWriter) {
	// Only a ResponseRecorder, in tests, cannot: nothing to bound there.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.cfg.BodyTimeout))
}

// isJSON reports whether contentType is application/json, with or without
// parameters (charset).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}
