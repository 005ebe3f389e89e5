package gateway

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRoomPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"lobby", []string{"lobby"}, []string{"lobby2", "lobb", "xlobby", ""}},
		{"news:*", []string{"news:", "news:7", "news:eu:7", "news:*"}, []string{"news", "xnews:7", "News:7"}},
		{"*", []string{"a", "user:1", "*"}, nil},
		{"*:public", []string{"a:public", ":public", "a:b:public"}, []string{"a:publicx", "public"}},
		{"a*b*c", []string{"abc", "a1b2c", "abbc", "acbc", "ab_b_c"}, []string{"ab", "acb", "bac", "abcx"}},
		{"a**b", []string{"ab", "axb"}, []string{"a"}},
		{"ab*ba", []string{"abba", "ab_ba"}, []string{"aba", "ab"}},
	} {
		p, err := ParseRoomPattern(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if p.String() != tc.pattern {
			t.Errorf("String() = %q, want %q", p.String(), tc.pattern)
		}
		for _, r := range tc.match {
			if !p.Match(r) {
				t.Errorf("%q does not match %q", tc.pattern, r)
			}
		}
		for _, r := range tc.miss {
			if p.Match(r) {
				t.Errorf("%q matches %q", tc.pattern, r)
			}
		}
	}
	list, err := ParseRoomPatterns(" news:*, ,lobby ")
	if err != nil || len(list) != 2 || list[0].String() != "news:*" || list[1].String() != "lobby" {
		t.Errorf("ParseRoomPatterns = %v, %v", list, err)
	}
	for _, bad := range []string{"a\tb", strings.Repeat("x", MaxRoomLen+1), "\xff"} {
		if _, err := ParseRoomPatterns(bad); err == nil {
			t.Errorf("ParseRoomPatterns(%q) accepted", bad)
		}
	}
}

// matchRef is Match by recursion, for FuzzRoomPattern.
func matchRef(p, s string) bool {
	if p == "" {
		return s == ""
	}
	if p[0] == '*' {
		for i := 0; i <= len(s); i++ {
			if matchRef(p[1:], s[i:]) {
				return true
			}
		}
		return false
	}
	return s != "" && s[0] == p[0] && matchRef(p[1:], s[1:])
}

func FuzzRoomPattern(f *testing.F) {
	for _, s := range [][2]string{{"news:*", "news:7"}, {"a*b*c", "abcbc"}, {"*", ""}, {"ab*ba", "aba"}, {"x", "x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, room string) {
		if len(pattern) > 16 || len(room) > 32 {
			return // matchRef is exponential
		}
		p, err := ParseRoomPattern(pattern)
		if err != nil {
			return
		}
		if got, want := p.Match(room), matchRef(pattern, room); got != want {
			t.Errorf("%q.Match(%q) = %v, want %v", pattern, room, got, want)
		}
	})
}

func TestParseRoomRequest(t *testing.T) {
	if r, err := ParseRoomRequest([]any{map[string]any{"room": "incident:7", "extra": 1}}); err != nil || r != "incident:7" {
		t.Errorf("valid: %q, %v", r, err)
	}
	if r, err := ParseRoomRequest([]any{map[string]any{"room": strings.Repeat("é", MaxRoomLen/2)}}); err != nil || len(r) != MaxRoomLen {
		t.Errorf("%d bytes: %v", MaxRoomLen, err)
	}
	for name, args := range map[string][]any{
		"none":        nil,
		"string":      {"incident:7"},
		"null":        {nil},
		"array":       {[]any{"incident:7"}},
		"no room":     {map[string]any{}},
		"number room": {map[string]any{"room": 7.0}},
		"empty":       {map[string]any{"room": ""}},
		"too long":    {map[string]any{"room": strings.Repeat("x", MaxRoomLen+1)}},
		"control":     {map[string]any{"room": "a\x00b"}},
		"C1 control":  {map[string]any{"room": "a\u0085b"}},
		"not UTF-8":   {map[string]any{"room": "a\xffb"}},
		"bytes":       {map[string]any{"room": []byte("x")}},
	} {
		if _, err := ParseRoomRequest(args); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseRoomRequest: whatever a client sends, the parser returns a room
// that ValidRoom accepts, or an error; it never panics.
func FuzzParseRoomRequest(f *testing.F) {
	for _, s := range []string{`[{"room":"incident:7"}]`, `[]`, `["x"]`, `[{"room":7}]`, `[{"room":""}]`, `[{"room":"a\u0000"}]`, `[null]`, `[{"room":"\ud800"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var args []any
		if err := json.Unmarshal(data, &args); err != nil {
			return
		}
		room, err := ParseRoomRequest(args)
		if err == nil && ValidRoom(room) != nil {
			t.Errorf("accepted invalid room %q", room)
		}
	})
}

func TestDecodeDecision(t *testing.T) {
	for body, want := range map[string]Decision{
		`{"allow":true}`:            {Allow: true},
		`{"allow":true,"ttl":60}`:   {Allow: true, TTL: time.Minute},
		`{"allow":true,"ttl":0.5}`:  {Allow: true, TTL: 500 * time.Millisecond},
		`{"allow":true,"ttl":1e9}`:  {Allow: true, TTL: MaxDecisionTTL},
		`{"allow":true,"ttl":-3}`:   {Allow: true},
		`{"allow":false,"ttl":60}`:  {TTL: time.Minute},
		`{"allow":false,"x":[1,2]}`: {},
	} {
		d, err := decodeDecision([]byte(body))
		if err != nil || d != want {
			t.Errorf("%s: %+v, %v; want %+v", body, d, err, want)
		}
	}
	for _, body := range []string{``, `yes`, `{}`, `{"allow":"true"}`, `{"allow":1}`, `[true]`, `{"allow":true,"ttl":"60"}`} {
		if _, err := decodeDecision([]byte(body)); err == nil {
			t.Errorf("%q: accepted", body)
		}
	}
}

func TestDecisionCache(t *testing.T) {
	now := time.Unix(1e9, 0)
	c := newDecisionCache(16)
	c.put("a", now.Add(time.Minute), now)
	if !c.allowed("a", now) || c.allowed("b", now) {
		t.Error("lookup before expiry")
	}
	if c.allowed("a", now.Add(time.Minute)) {
		t.Error("allowed at its expiry")
	}
	for i := range 1000 {
		c.put(string(rune('A'+i)), now.Add(time.Hour), now)
		if len(c.m) > 16 {
			t.Fatalf("cache holds %d entries, bound 16", len(c.m))
		}
	}
}

// gatedAuthorizer answers once released, counting calls.
type gatedAuthorizer struct {
	calls   atomic.Int32
	release chan struct{}
	d       Decision
}

func (a *gatedAuthorizer) Authorize(ctx context.Context, _ SubscribeRequest) (Decision, error) {
	a.calls.Add(1)
	select {
	case <-a.release:
		return a.d, nil
	case <-ctx.Done():
		return Decision{}, ctx.Err()
	}
}

// TestFlightsShare: concurrent askers of one key share one call, and an
// asker whose context ends leaves the others their answer.
func TestFlightsShare(t *testing.T) {
	var f flights
	a := &gatedAuthorizer{release: make(chan struct{}), d: Decision{Allow: true}}
	fn := func() (Decision, error) { return a.Authorize(context.Background(), SubscribeRequest{}) }
	gone, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	results := make([]Decision, 10)
	for i := range results {
		wg.Go(func() { results[i], _ = f.do(context.Background(), "k", fn) })
	}
	leaver := make(chan error, 1)
	go func() { _, err := f.do(gone, "k", fn); leaver <- err }()
	for f.waiting("k") < len(results)+1 {
		runtime.Gosched()
	}
	cancel()
	if err := <-leaver; err == nil {
		t.Error("an asker whose context ended got an answer")
	}
	close(a.release)
	wg.Wait()
	for i, d := range results {
		if !d.Allow {
			t.Errorf("asker %d: %+v", i, d)
		}
	}
	if n := a.calls.Load(); n != 1 {
		t.Errorf("%d calls for 11 concurrent askers, want 1", n)
	}
}
