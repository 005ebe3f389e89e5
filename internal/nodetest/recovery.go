package nodetest

import (
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"
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

// RecoveryClient is a recovery-client.mjs socket whose events "e" carry a
// number, as the tests of recovery across nodes send them: it records
// each one and its offset, so that a test can check it saw 1…n exactly
// once and in order.
type RecoveryClient struct {
	*Run
	Events  []int    // the number of each "e" event, in order
	Offsets []string // their offsets (the last argument)
}

// StartRecoveryCounter runs recovery-client.mjs as StartRecoveryClient,
// with {"recovery": true} added to auth.
func StartRecoveryCounter(t testing.TB, url, cookie string, auth map[string]any) *RecoveryClient {
	t.Helper()
	a := map[string]any{"recovery": true}
	maps.Copy(a, auth)
	return &RecoveryClient{Run: StartRecoveryClient(t, url, cookie, a)}
}

// Line returns the client's next line, and records it if it is an "e"
// event (failing the test on a malformed one).
func (c *RecoveryClient) Line(t testing.TB) (l RecoveryLine, isE bool) {
	t.Helper()
	c.Next(&l, 10*time.Second)
	if l.Event != "event" || l.Name != "e" {
		return l, false
	}
	var n float64
	var off string
	ok := len(l.Args) == 2
	if ok {
		n, ok = l.Args[0].(float64)
	}
	if ok {
		off, ok = l.Args[1].(string)
	}
	if !ok {
		t.Fatalf("nodetest: event e with %v, want a number and an offset", l.Args)
	}
	c.Events = append(c.Events, int(n))
	c.Offsets = append(c.Offsets, off)
	return l, true
}

// NextOther returns the client's next line that is not an "e" event,
// recording those.
func (c *RecoveryClient) NextOther(t testing.TB) RecoveryLine {
	t.Helper()
	for {
		if l, isE := c.Line(t); !isE {
			return l
		}
	}
}

// retrying reports whether l is the trace of a reconnection on the way: a
// disconnect, or an attempt that failed below Socket.IO (no code).
func retrying(l RecoveryLine) bool {
	return l.Event == "disconnect" || (l.Event == "connect_error" && l.Code == "")
}

// Connect reads up to the client's next connect and checks it; with
// offsetEvent (a sessiongate node), also the recovery event that follows
// it. A Node server sends none.
func (c *RecoveryClient) Connect(t testing.TB, recovered, missed, offsetEvent bool) RecoveryLine {
	t.Helper()
	var conn RecoveryLine
	for {
		l := c.NextOther(t)
		switch {
		case retrying(l):
			continue
		case l.Event == "connect" && conn.Event == "":
			if l.Recovered != recovered || l.PID == "" {
				t.Fatalf("nodetest: connect %+v, want recovered %v with a pid", l, recovered)
			}
			if !offsetEvent {
				return l
			}
			conn = l
			continue
		case conn.Event != "" && l.Event == "event" && l.Name == "recovery":
			info, _ := l.Args[0].(map[string]any)
			if info["recovered"] != recovered || info["missed"] != missed {
				t.Fatalf("nodetest: recovery event %v, want recovered %v, missed %v", l.Args, recovered, missed)
			}
			return conn
		}
		t.Fatalf("nodetest: got %+v, want a connect (and the recovery event)", l)
	}
}

// Refused reads up to the client's next connect_error with a code (a
// refusal of the server, not a failed attempt) and returns it.
func (c *RecoveryClient) Refused(t testing.TB) RecoveryLine {
	t.Helper()
	for {
		l := c.NextOther(t)
		if retrying(l) {
			continue
		}
		if l.Event != "connect_error" {
			t.Fatalf("nodetest: got %+v, want a connect_error with a code", l)
		}
		return l
	}
}

// Until reads until the client saw event n; lines other than "e" events
// and reconnection traces fail the test.
func (c *RecoveryClient) Until(t testing.TB, n int) {
	t.Helper()
	for len(c.Events) == 0 || c.Events[len(c.Events)-1] < n {
		if l, isE := c.Line(t); !isE && !retrying(l) {
			t.Fatalf("nodetest: got %+v waiting for event %d", l, n)
		}
	}
}

// ExactlyOnce checks the client saw the events 1…n, once each, in order,
// with offsets (Redis stream ids) that only grow.
func (c *RecoveryClient) ExactlyOnce(t testing.TB, n int) {
	t.Helper()
	if len(c.Events) != n {
		t.Errorf("nodetest: saw %d events, want %d: %v", len(c.Events), n, c.Events)
	}
	for i, e := range c.Events {
		if e != i+1 {
			t.Fatalf("nodetest: event %d is %d, want %d: %v", i, e, i+1, c.Events)
		}
		if i > 0 && !streamIDLess(c.Offsets[i-1], c.Offsets[i]) {
			t.Fatalf("nodetest: offsets %q then %q do not grow", c.Offsets[i-1], c.Offsets[i])
		}
	}
}

// streamIDLess reports whether the stream id a ("<ms>-<seq>") is before b;
// an id that does not parse is before nothing.
func streamIDLess(a, b string) bool {
	pa, oka := parseStreamID(a)
	pb, okb := parseStreamID(b)
	return oka && okb && (pa[0] < pb[0] || (pa[0] == pb[0] && pa[1] < pb[1]))
}

func parseStreamID(s string) ([2]uint64, bool) {
	ms, seq, ok := strings.Cut(s, "-")
	m, err1 := strconv.ParseUint(ms, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 64)
	return [2]uint64{m, q}, ok && err1 == nil && err2 == nil
}
