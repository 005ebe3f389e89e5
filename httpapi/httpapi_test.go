package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/httpapi"
)

const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// published is one call to a fakePublisher.
type published struct {
	Rooms  []string
	Event  string
	Data   json.RawMessage
	Except []string
}

// fakePublisher records what it is asked to publish.
type fakePublisher struct {
	mu    sync.Mutex
	calls []published
	err   error
}

func (p *fakePublisher) Publish(_ context.Context, t httpapi.Target, event string, data json.RawMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, published{t.To, event, data, t.Except})
	return p.err
}

func (p *fakePublisher) last(t *testing.T) published {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) == 0 {
		t.Fatal("nothing was published")
	}
	return p.calls[len(p.calls)-1]
}

func (p *fakePublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

// ended is one call to a fakeEnder.
type ended struct {
	SID    string
	Reason sessiongate.EndReason
}

type fakeEnder struct {
	mu    sync.Mutex
	calls []ended
}

func (e *fakeEnder) EndSession(_ context.Context, sid string, reason sessiongate.EndReason) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, ended{sid, reason})
}

func newHandler(t *testing.T, cfg httpapi.Config) *httpapi.Handler {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := httpapi.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// do sends a request to h and returns the response with its body read.
func do(t *testing.T, h http.Handler, method, path, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.1:1234"
	if method == http.MethodPost {
		// What the demo page and the client send; tests of other types say so.
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestPublish(t *testing.T) {
	const key = "publish-key-123"
	auth := http.Header{"Authorization": {"Bearer " + key}}
	big := `{"to":["a"],"event":"e","data":"` + strings.Repeat("x", httpapi.MaxPublishBody) + `"}`
	tests := []struct {
		name       string
		key        string // PublishKey configured
		method     string
		header     http.Header
		body       string
		wantStatus int
		wantError  string // substring of the "error" field
		wantPub    *published
	}{
		{name: "ok", key: key, header: auth, body: `{"to":["user:42","incidents"],"event":"incident:created","data":{"id":7,"n":1.50}}`,
			wantStatus: 200, wantPub: &published{[]string{"user:42", "incidents"}, "incident:created", json.RawMessage(`{"id":7,"n":1.50}`), nil}},
		{name: "no data", key: key, header: auth, body: `{"to":["r"],"event":"ping-me"}`,
			wantStatus: 200, wantPub: &published{[]string{"r"}, "ping-me", nil, nil}},
		{name: "null data", key: key, header: auth, body: `{"to":["r"],"event":"e","data":null}`,
			wantStatus: 200, wantPub: &published{[]string{"r"}, "e", json.RawMessage(`null`), nil}},
		{name: "except", key: key, header: auth, body: `{"to":["incidents"],"except":["user:7","muted"],"event":"e"}`,
			wantStatus: 200, wantPub: &published{[]string{"incidents"}, "e", nil, []string{"user:7", "muted"}}},
		{name: "except null", key: key, header: auth, body: `{"to":["r"],"except":null,"event":"e"}`,
			wantStatus: 200, wantPub: &published{[]string{"r"}, "e", nil, nil}},
		{name: "except not array", key: key, header: auth, body: `{"to":["r"],"except":"x","event":"e"}`, wantStatus: 400, wantError: `"except" must be an array`},
		{name: "except empty room", key: key, header: auth, body: `{"to":["r"],"except":[""],"event":"e"}`, wantStatus: 400, wantError: `"except"[0] is empty`},
		{name: "room too long", key: key, header: auth, body: `{"to":["` + strings.Repeat("r", httpapi.MaxRoomName+1) + `"],"event":"e"}`, wantStatus: 400, wantError: "longer than 256 bytes"},
		{name: "room of 256 bytes", key: key, header: auth, body: `{"to":["` + strings.Repeat("r", httpapi.MaxRoomName) + `"],"event":"e"}`, wantStatus: 200},
		{name: "too many rooms", key: key, header: auth, body: `{"to":[` + strings.Repeat(`"r",`, httpapi.MaxRooms) + `"r"],"event":"e"}`, wantStatus: 400, wantError: "more than 10000 rooms"},
		{name: "lower-case bearer", key: key, header: http.Header{"Authorization": {"bearer " + key}}, body: `{"to":["r"],"event":"e"}`, wantStatus: 200},
		{name: "disabled", key: "", header: auth, body: `{"to":["r"],"event":"e"}`, wantStatus: 404},
		{name: "no key", key: key, body: `{"to":["r"],"event":"e"}`, wantStatus: 401},
		{name: "wrong key", key: key, header: http.Header{"Authorization": {"Bearer " + key + "x"}}, body: `{"to":["r"],"event":"e"}`, wantStatus: 401},
		{name: "empty bearer", key: key, header: http.Header{"Authorization": {"Bearer "}}, body: `{"to":["r"],"event":"e"}`, wantStatus: 401},
		{name: "basic scheme", key: key, header: http.Header{"Authorization": {"Basic " + key}}, body: `{"to":["r"],"event":"e"}`, wantStatus: 401},
		{name: "invalid JSON", key: key, header: auth, body: `{"to":`, wantStatus: 400, wantError: "not a JSON object"},
		{name: "not an object", key: key, header: auth, body: `["r"]`, wantStatus: 400, wantError: "not a JSON object"},
		{name: "trailing garbage", key: key, header: auth, body: `{"to":["r"],"event":"e"} x`, wantStatus: 400},
		{name: "missing to", key: key, header: auth, body: `{"event":"e"}`, wantStatus: 400, wantError: `"to" is required`},
		{name: "empty to", key: key, header: auth, body: `{"to":[],"event":"e"}`, wantStatus: 400, wantError: "at least one room"},
		{name: "to not array", key: key, header: auth, body: `{"to":"r","event":"e"}`, wantStatus: 400, wantError: "array"},
		{name: "non-string room", key: key, header: auth, body: `{"to":["r",42],"event":"e"}`, wantStatus: 400, wantError: `"to"[1] must be a string`},
		{name: "empty room", key: key, header: auth, body: `{"to":[""],"event":"e"}`, wantStatus: 400, wantError: "empty"},
		{name: "missing event", key: key, header: auth, body: `{"to":["r"]}`, wantStatus: 400, wantError: `"event" is required`},
		{name: "event not string", key: key, header: auth, body: `{"to":["r"],"event":5}`, wantStatus: 400, wantError: "must be a string"},
		{name: "empty event", key: key, header: auth, body: `{"to":["r"],"event":""}`, wantStatus: 400, wantError: "empty"},
		{name: "reserved connect", key: key, header: auth, body: `{"to":["r"],"event":"connect"}`, wantStatus: 400, wantError: "reserved"},
		{name: "reserved session_expired", key: key, header: auth, body: `{"to":["r"],"event":"session_expired"}`, wantStatus: 400, wantError: "reserved"},
		{name: "reserved presence", key: key, header: auth, body: `{"to":["r"],"event":"presence"}`, wantStatus: 400, wantError: "reserved"},
		{name: "reserved rate_limited", key: key, header: auth, body: `{"to":["r"],"event":"rate_limited"}`, wantStatus: 400, wantError: "reserved"},
		{name: "reserved recovery", key: key, header: auth, body: `{"to":["r"],"event":"recovery"}`, wantStatus: 400, wantError: "reserved"},
		{name: "too large", key: key, header: auth, body: big, wantStatus: 413},
		{name: "GET", key: key, method: "GET", header: auth, wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{}
			h := newHandler(t, httpapi.Config{Publisher: pub, PublishKey: tt.key})
			method := tt.method
			if method == "" {
				method = "POST"
			}
			res, body := do(t, h, method, "/api/publish", tt.body, tt.header)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", res.StatusCode, tt.wantStatus, body)
			}
			switch {
			case tt.wantStatus == 200:
				if body != "{\"ok\":true}\n" {
					t.Errorf("body = %q, want {\"ok\":true}", body)
				}
				if tt.wantPub != nil {
					got := pub.last(t)
					if strings.Join(got.Rooms, ",") != strings.Join(tt.wantPub.Rooms, ",") ||
						strings.Join(got.Except, ",") != strings.Join(tt.wantPub.Except, ",") ||
						got.Event != tt.wantPub.Event || !bytes.Equal(got.Data, tt.wantPub.Data) {
						t.Errorf("published %+v (data %s), want %+v (data %s)", got, got.Data, *tt.wantPub, tt.wantPub.Data)
					}
				}
			default:
				if n := pub.count(); n != 0 {
					t.Errorf("published %d times on a refused request", n)
				}
				if res.StatusCode != 405 {
					var e struct{ Error string }
					if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
						t.Fatalf("body %q is not {\"error\":…}", body)
					}
					if !strings.Contains(e.Error, tt.wantError) {
						t.Errorf("error = %q, want it to contain %q", e.Error, tt.wantError)
					}
				}
			}
			if res.StatusCode == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestPublishError(t *testing.T) {
	pub := &fakePublisher{err: io.ErrClosedPipe}
	h := newHandler(t, httpapi.Config{Publisher: pub, PublishKey: "k"})
	res, body := do(t, h, "POST", "/api/publish", `{"to":["r"],"event":"e"}`, http.Header{"Authorization": {"Bearer k"}})
	if res.StatusCode != 500 || strings.Contains(body, "pipe") {
		t.Errorf("status %d body %q, want 500 without internals", res.StatusCode, body)
	}
}

func FuzzParsePublishRequest(f *testing.F) {
	for _, s := range []string{
		`{"to":["user:42","incidents"],"event":"incident:created","data":{"id":1}}`,
		`{"to":["r"],"event":"e"}`,
		`{"to":[],"event":"e"}`,
		`{"to":["r",1],"event":"e"}`,
		`{"to":["r"],"event":"connect"}`,
		`{"to":"r","event":null}`,
		`{"to":["\u0000"],"event":"\ud800"}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := httpapi.ParsePublishRequest(body)
		if err != nil {
			if req != nil {
				t.Fatal("request and error both returned")
			}
			return
		}
		if len(req.To) == 0 || req.Event == "" {
			t.Fatalf("accepted an empty target or event: %+v", req)
		}
		for _, r := range req.To {
			if r == "" {
				t.Fatal("accepted an empty room")
			}
		}
		if req.Data != nil && !json.Valid(req.Data) {
			t.Fatalf("data %q is not JSON", req.Data)
		}
	})
}

func TestHealthz(t *testing.T) {
	h := newHandler(t, httpapi.Config{Ready: pingFunc(func(context.Context) error { return io.ErrUnexpectedEOF })})
	res, _ := do(t, h, "GET", "/healthz", "", nil)
	if res.StatusCode != 200 {
		t.Errorf("healthz = %d, want 200 even when the store is down", res.StatusCode)
	}
}

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

func TestNotFound(t *testing.T) {
	static := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page") })
	h := newHandler(t, httpapi.Config{Static: static})
	for path, want := range map[string]int{
		"/": 200, "/app.js": 200,
		"/auth/login": 404, "/auth/me": 404, "/api/publish": 404, "/api/other": 404,
	} {
		res, body := do(t, h, "GET", path, "", nil)
		if res.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, res.StatusCode, want)
		}
		if want == 404 && !strings.Contains(body, `"error"`) {
			t.Errorf("GET %s body %q, want a JSON error", path, body)
		}
	}
}

func TestMetricsNeedKey(t *testing.T) {
	const key = "metrics-key-123"
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sessiongate_connections 3\n") })
	static := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page") })

	// Without a key the main listener does not serve /metrics, even with
	// a handler and a static site behind it.
	for _, cfg := range []httpapi.Config{{}, {Metrics: metrics, Static: static}, {MetricsKey: key, Static: static}} {
		h := newHandler(t, cfg)
		if res, body := do(t, h, "GET", "/metrics", "", nil); res.StatusCode != 404 || !strings.Contains(body, `"error"`) {
			t.Errorf("metrics without a key (handler %t, key %t) = %d %q, want a JSON 404", cfg.Metrics != nil, cfg.MetricsKey != "", res.StatusCode, body)
		}
	}

	h := newHandler(t, httpapi.Config{Metrics: metrics, MetricsKey: key, Static: static})
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + key + "x", "Basic " + key, key} {
		res, body := do(t, h, "GET", "/metrics", "", http.Header{"Authorization": {auth}})
		if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") == "" || strings.Contains(body, "sessiongate_") {
			t.Errorf("metrics with Authorization %q = %d %q, want 401 without metrics", auth, res.StatusCode, body)
		}
	}
	res, body := do(t, h, "GET", "/metrics", "", http.Header{"Authorization": {"Bearer " + key}})
	if res.StatusCode != 200 || body != "sessiongate_connections 3\n" {
		t.Errorf("metrics with the key = %d %q, want 200 and the metrics", res.StatusCode, body)
	}
}

func TestStats(t *testing.T) {
	h := newHandler(t, httpapi.Config{Publisher: &fakePublisher{}, PublishKey: "k"})
	do(t, h, "POST", "/api/publish", `{"to":["r"],"event":"e"}`, http.Header{"Authorization": {"Bearer k"}})
	do(t, h, "POST", "/api/publish", `{}`, http.Header{"Authorization": {"Bearer k"}})
	do(t, h, "POST", "/api/publish", `{}`, nil)
	st := h.Stats()
	want := map[string]uint64{httpapi.PublishOK: 1, httpapi.PublishBadRequest: 1, httpapi.PublishUnauthorized: 1, httpapi.PublishError: 0}
	if !maps.Equal(st.Publishes, want) {
		t.Errorf("Stats().Publishes = %v, want %v", st.Publishes, want)
	}
	if len(st.Logins) != 6 {
		t.Errorf("Stats().Logins = %v, want every result, zero", st.Logins)
	}
}
