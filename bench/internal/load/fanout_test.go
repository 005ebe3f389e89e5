package load

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name, in string
		status   int
		keep     bool
		body     string
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}", 200, true, `{"ok":true}`},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"ok\r\n7\r\n\":true}\r\n0\r\n\r\n", 200, true, `{"ok":true}`},
		{"close", "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno", 401, false, "no"},
		{"1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A second response follows: the reader must stop at the first's end.
			br := bufio.NewReader(strings.NewReader(tt.in + "HTTP/1.1 204 No Content\r\n\r\n"))
			status, keep, body, err := readResponse(br)
			if err != nil || status != tt.status || keep != tt.keep || string(body) != tt.body {
				t.Fatalf("readResponse = %d, %v, %q, %v; want %d, %v, %q", status, keep, body, err, tt.status, tt.keep, tt.body)
			}
			if status, _, _, err := readResponse(br); err != nil || status != 204 {
				t.Errorf("next response = %d, %v; want 204", status, err)
			}
		})
	}
	if _, _, _, err := readResponse(bufio.NewReader(strings.NewReader("garbage\r\n"))); err == nil {
		t.Error("a bad status line was accepted")
	}
}

// TestPublisher posts through the publisher's own client to a net/http
// server, over one kept-alive connection.
func TestPublisher(t *testing.T) {
	var conns, posts atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/api/publish" || r.Header.Get("Authorization") != "Bearer k" || string(b) != `{"to":["user:1"]}` {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		posts.Add(1)
		w.Write([]byte(`{"ok":true}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	p, err := newPublisher(&Config{PublishURL: srv.URL + "/api/publish", PublishKey: "k", Publishers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for range 3 {
		if err := p.post(context.Background(), []byte(`{"to":["user:1"]}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.post(context.Background(), []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("a refused publish gave %v, want the 400", err)
	}
	if posts.Load() != 3 || conns.Load() != 1 {
		t.Errorf("%d posts over %d connections, want 3 over 1", posts.Load(), conns.Load())
	}
}
