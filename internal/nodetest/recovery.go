package nodetest

import (
	"encoding/json"
	"testing"
)

// RecoveryLine is one line of test/interop/recovery-client.mjs, which
// drives one official socket.io-client through connection state recovery.
type RecoveryLine struct {
	Event     string `json:"event"` // connect, connect_error, disconnect, event, ack
	ID        string `json:"id"`
	Recovered bool   `json:"recovered"`
	PID       string `json:"pid"`
	Name      string `json:"name"` // of an event or ack
	Args      []any  `json:"args"`
	Code      string `json:"code"` // of a connect_error
	Reason    string `json:"reason"`
}

// StartRecoveryClient runs test/interop/recovery-client.mjs against url
// with the Cookie header cookie ("" for none) and the CONNECT auth auth.
func StartRecoveryClient(t testing.TB, url, cookie string, auth map[string]any) *Run {
	t.Helper()
	spec, err := json.Marshal(map[string]any{"url": url, "cookie": cookie, "auth": auth})
	if err != nil {
		t.Fatal(err)
	}
	return Start(t, "test/interop", "recovery-client.mjs", string(spec))
}
