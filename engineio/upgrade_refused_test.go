package engineio

import (
	"net/http"
	"testing"
)

// TestWebsocketUpgradeRefused sends websocket handshakes the upgrader
// refuses: its answer, held while hijacked, must still reach the client.
func TestWebsocketUpgradeRefused(t *testing.T) {
	h := newHarness(t, Options{}, false)
	tests := []struct {
		name   string
		header http.Header
		status int
	}{
		{"no upgrade headers", nil, http.StatusBadRequest},
		{"no key", http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Version": {"13"}}, http.StatusBadRequest},
		{"bad version", http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Version": {"7"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}, http.StatusUpgradeRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, _ := do(t, "GET", h.url+"&transport=websocket", "", tt.header)
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
		})
	}
}
