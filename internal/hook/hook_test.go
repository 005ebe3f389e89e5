package hook

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"user":"1","room":"incident:7"}`)
	got := Sign(secret, body)
	if !strings.HasPrefix(got, "sha256=") || len(got) != len("sha256=")+64 {
		t.Fatalf("Sign = %q, want sha256=<64 hex digits>", got)
	}
	if !Verify(secret, body, got) {
		t.Error("Verify refused its own signature")
	}
	for name, h := range map[string]string{
		"other secret": Sign([]byte("other"), body),
		"other body":   Sign(secret, append(body, ' ')),
		"no prefix":    strings.TrimPrefix(got, "sha256="),
		"not hex":      "sha256=zz",
		"truncated":    got[:len(got)-2],
		"empty":        "",
	} {
		if Verify(secret, body, h) {
			t.Errorf("Verify accepted %s", name)
		}
	}
}

// TestSignKnown checks Sign against a value computed by Node's crypto
// (createHmac('sha256', 'hook secret').update('{}').digest('hex')).
func TestSignKnown(t *testing.T) {
	const want = "sha256=" + nodeHMAC
	if got := Sign([]byte("hook secret"), []byte("{}")); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

const nodeHMAC = "ea12a2f2d7a614c4cbf8cc9e5575c8e89505401809a8f16e6a976b635643b522"

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdle)
	return c
}

// TestPost: the request carries the body, its signature and the forwarded
// headers, and reuses its connection.
func TestPost(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method != http.MethodPost, r.Header.Get("Content-Type") != "application/json":
			w.WriteHeader(400)
		case !Verify([]byte("k"), body, r.Header.Get(SignatureHeader)):
			w.WriteHeader(401)
		case r.Header.Get("Cookie") != "connect.sid=s%3Aabc.def; theme=dark",
			r.Header.Get("User-Agent") != "Mozilla/5.0",
			r.Header.Get("X-Forwarded-For") != "203.0.113.9":
			w.WriteHeader(422)
		default:
			w.Write([]byte(`{"allow":true}`))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newClient(t, Config{URL: srv.URL, Secret: []byte("k")})
	fwd := Forwarded{Cookie: "connect.sid=s%3Aabc.def; theme=dark", UserAgent: "Mozilla/5.0", ClientIP: "203.0.113.9"}
	for range 3 {
		resp, err := c.Post(context.Background(), []byte(`{"room":"a"}`), fwd)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 || string(resp.Body) != `{"allow":true}` {
			t.Fatalf("answer %d %s", resp.Status, resp.Body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 sequential calls, want 1 (kept alive)", n)
	}
}

// TestPostBounds: no redirect is followed, a large body is refused, a
// hung server is a timeout, and calls past MaxInFlight wait for a slot
// within the timeout, then fail as busy.
func TestPostBounds(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 2048)) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release) // before Close, which waits for the handlers
	ctx := context.Background()

	resp, err := newClient(t, Config{URL: srv.URL + "/redirect", Secret: []byte("k")}).Post(ctx, []byte("{}"), Forwarded{})
	if err != nil || resp.Status != http.StatusFound {
		t.Errorf("redirect: %d, %v; want 302 returned as the answer", resp.Status, err)
	}
	_, err = newClient(t, Config{URL: srv.URL + "/big", Secret: []byte("k"), MaxBody: 1024}).Post(ctx, []byte("{}"), Forwarded{})
	if kind(err) != KindTooBig {
		t.Errorf("big body: %v, want %s", err, KindTooBig)
	}
	_, err = newClient(t, Config{URL: "http://127.0.0.1:1/", Secret: []byte("k")}).Post(ctx, []byte("{}"), Forwarded{})
	if kind(err) != KindNetwork {
		t.Errorf("refused connection: %v, want %s", err, KindNetwork)
	}

	hung := newClient(t, Config{URL: srv.URL + "/hang", Secret: []byte("k"), Timeout: 300 * time.Millisecond, MaxInFlight: 1})
	first := make(chan error, 1)
	go func() { _, err := hung.Post(ctx, []byte("{}"), Forwarded{}); first <- err }()
	// The second waits for the only slot, which the first holds until its
	// timeout: whichever comes second is busy or times out, never answered.
	_, err2 := hung.Post(ctx, []byte("{}"), Forwarded{})
	err1 := <-first
	kinds := map[string]bool{kind(err1): true, kind(err2): true}
	if !kinds[KindTimeout] || len(kinds) > 2 || (len(kinds) == 2 && !kinds[KindBusy]) {
		t.Errorf("hung calls: %v / %v, want a timeout and a timeout or busy", err1, err2)
	}
}

func kind(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

func TestNewRequires(t *testing.T) {
	for _, cfg := range []Config{{Secret: []byte("k")}, {URL: "http://x"}, {URL: "http://x", Secret: []byte("k"), Timeout: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestHandlerTransport: an in-process handler answers through the same
// Client, signature included.
func TestHandlerTransport(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !Verify([]byte("k"), body, r.Header.Get(SignatureHeader)) {
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(201)
		w.Write([]byte(r.Header.Get("Cookie")))
	})
	c := newClient(t, Config{URL: "http://builtin/", Secret: []byte("k"), Transport: Handler{h}})
	resp, err := c.Post(context.Background(), []byte("{}"), Forwarded{Cookie: "a=b"})
	if err != nil || resp.Status != 201 || string(resp.Body) != "a=b" {
		t.Errorf("in-process: %d %q %v", resp.Status, resp.Body, err)
	}
}

func TestHandlerPanics(t *testing.T) {
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("rule bug") })
	c := newClient(t, Config{URL: "http://builtin/", Secret: []byte("k"), Transport: Handler{h}})
	if resp, err := c.Post(context.Background(), []byte("{}"), Forwarded{}); err != nil || resp.Status != 500 {
		t.Errorf("panicking handler: %d %v, want 500", resp.Status, err)
	}
}
