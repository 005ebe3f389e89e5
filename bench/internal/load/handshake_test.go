package load

import (
	"bufio"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/bench/internal/echo"
	"github.com/sessiongate/sessiongate/socketio"
)

func TestParseFrame(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name    string
		in      []byte
		op      byte
		payload string
		n       int
		ok      bool
		wantErr bool
	}{
		{"empty", nil, 0, "", 0, false, false},
		{"short text", []byte("\x81\x020{"), 1, "0{", 4, true, false},
		{"text and more", []byte("\x81\x0240\x81"), 1, "40", 4, true, false},
		{"incomplete payload", []byte("\x81\x05ab"), 0, "", 0, false, false},
		{"16-bit length", append([]byte{0x81, 126, 1, 44}, long...), 1, long, 304, true, false},
		{"16-bit length incomplete", []byte{0x81, 126, 1}, 0, "", 0, false, false},
		{"64-bit length", append([]byte{0x81, 127, 0, 0, 0, 0, 0, 0, 1, 44}, long...), 1, long, 310, true, false},
		{"ping", []byte("\x89\x00"), 9, "", 2, true, false},
		{"fragment", []byte("\x01\x01a"), 0, "", 0, false, true},
		{"continuation", []byte("\x80\x01a"), 0, "", 0, false, true},
		{"reserved bits", []byte("\xc1\x01a"), 0, "", 0, false, true},
		{"masked", []byte("\x81\x81abcdx"), 0, "", 0, false, true},
		{"too large", []byte{0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0}, 0, "", 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, payload, n, ok, err := parseFrame(tt.in)
			if (err != nil) != tt.wantErr || op != tt.op || string(payload) != tt.payload || n != tt.n || ok != tt.ok {
				t.Errorf("parseFrame = %d, %q, %d, %v, %v; want %d, %q, %d, %v, error %v",
					op, payload, n, ok, err, tt.op, tt.payload, tt.n, tt.ok, tt.wantErr)
			}
		})
	}
}

func TestHasSID(t *testing.T) {
	tests := map[string]bool{
		`{"sid":"abc"}`:              true,
		`{"pid":"p","sid":"abc"}`:    true,
		`{"sid":""}`:                 false,
		`{}`:                         false,
		``:                           false,
		`{"sid":"abc"`:               false,
		`["sid":"x"]`:                false,
		`{"message":"no","sid":"x"}`: true,
	}
	for in, want := range tests {
		if got := hasSID([]byte(in)); got != want {
			t.Errorf("hasSID(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestKeyIsA16ByteNonce(t *testing.T) {
	if b, err := base64.StdEncoding.DecodeString(wsKey); err != nil || len(b) != 16 {
		t.Errorf("Sec-WebSocket-Key %q decodes to %d bytes (%v); servers (ws for Node) want 16", wsKey, len(b), err)
	}
}

func TestMaskedTextFrame(t *testing.T) {
	for _, size := range []int{0, 2, 125, 126, 70000} {
		p := []byte(strings.Repeat("y", size))
		f := maskedTextFrame(p)
		if f[0] != 0x81 || f[1]&0x80 == 0 {
			t.Fatalf("size %d: header %x", size, f[:2])
		}
		// Unmask it as a server would and parse it as an unmasked frame.
		hdr := len(f) - size - 4
		key := f[hdr : hdr+4]
		plain := append([]byte{0x81, f[1] &^ 0x80}, f[2:hdr]...)
		for i, c := range f[hdr+4:] {
			plain = append(plain, c^key[i%4])
		}
		if size > hsBufSize {
			continue
		}
		if _, got, _, ok, err := parseFrame(plain); !ok || err != nil || string(got) != string(p) {
			t.Errorf("size %d: round trip gave %q, %v, %v", size, got, ok, err)
		}
	}
}

// cannedServer answers every connection, after reading its request head,
// with the bytes reply returns for that request; then, after the client's
// next bytes, with what reply returns for nil, or, when that is empty, it
// closes the connection at once.
func cannedServer(t *testing.T, reply func(req *http.Request) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				c.Write([]byte(reply(req)))
				next := reply(nil)
				if next == "" {
					return
				}
				br.ReadByte() // wait for the client's CONNECT or close
				c.Write([]byte(next))
				c.Read(make([]byte, 16))
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/socket.io/?EIO=4&transport=websocket"
}

func upgradeHead(accept string) string {
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
}

func TestHandshakeOutcomes(t *testing.T) {
	tmpl, err := newHSTemplate("http://127.0.0.1:1/", nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	accept := string(tmpl.accept)
	open := "\x81\x060{\"x\"}"
	tests := []struct {
		name    string
		head    string // the upgrade response and first frames
		reply   string // after the client's CONNECT
		wantErr string // "" = success
	}{
		{"ok", upgradeHead(accept) + open, "\x81\x0d40{\"sid\":\"s\"}", ""},
		{"ok after ping", upgradeHead(accept) + open, "\x81\x012\x89\x00\x81\x0d40{\"sid\":\"s\"}", ""},
		{"truncated upgrade response", upgradeHead(accept)[:20], "", "read upgrade"},
		{"refused", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", "", "upgrade refused"},
		{"wrong accept", upgradeHead("bm9wZQ==") + open, "", "Sec-WebSocket-Accept"},
		{"not an open packet", upgradeHead(accept) + "\x81\x0240", "", "open packet"},
		{"connect error", upgradeHead(accept) + open, "\x81\x2644{\"message\":\"no\",\"data\":{\"code\":\"E\"}}", "connect_error no (E)"},
		{"bad reply", upgradeHead(accept) + open, "\x81\x0240", "bad CONNECT reply"},
		{"close frame", upgradeHead(accept) + open, "\x88\x00", "closed by the server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex // raw socket calls do not tell the race detector of the ordering
			var gotCookie string
			url := cannedServer(t, func(req *http.Request) string {
				if req == nil {
					return tt.reply
				}
				mu.Lock()
				gotCookie = req.Header.Get("Cookie")
				mu.Unlock()
				if req.Header.Get("Sec-WebSocket-Key") != wsKey || req.Header.Get("Upgrade") != "websocket" {
					return "HTTP/1.1 400 Bad Request\r\n\r\n"
				}
				return tt.head
			})
			tmpl, err := newHSTemplate(url, nil, []Credential{{SID: "a", Cookie: "connect.sid=a"}}, "")
			if err != nil {
				t.Fatal(err)
			}
			err = handshakeOnce(t, tmpl)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("handshake: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("handshake = %v, want an error containing %q", err, tt.wantErr)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.wantErr == "" && gotCookie != "connect.sid=a" {
				t.Errorf("server saw Cookie %q", gotCookie)
			}
			var ce *ConnectError
			if tt.name == "connect error" && !errors.As(err, &ce) {
				t.Errorf("error %v is not a *ConnectError", err)
			}
		})
	}
}

// handshakeOnce runs one handshake with an event loop of one slot and
// returns its error.
func handshakeOnce(t testing.TB, tmpl *hsTemplate) error {
	l, err := newHSLoop(tmpl, 1, func() int { return 0 }, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	l.limit = 1
	l.run()
	switch {
	case l.count != 1:
		t.Fatalf("%d handshakes ended, want 1", l.count)
	case len(l.lat) == 1:
		return nil
	}
	return l.lastErr
}

// BenchmarkHandshake measures the client's cost of one handshake against
// the in-process echo server (server cost included):
//
//	go test -run X -bench Handshake -benchmem -cpuprofile /tmp/hs.prof ./bench/internal/load/
func BenchmarkHandshake(b *testing.B) {
	io, handler := echo.New(socketio.Options{})
	ts := httptest.NewServer(handler)
	defer ts.Close()
	defer io.Close()
	tmpl, err := newHSTemplate(ts.URL+"/socket.io/?EIO=4&transport=websocket", nil, nil, "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := handshakeOnce(b, tmpl); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{"\x81\x020{", "\x81\x7e\x00\x02ab", "\x81\x7f\x00\x00\x00\x00\x00\x00\x00\x01a", "\x89\x00", "\x01\x01a", "\x81"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, payload, n, ok, err := parseFrame(b)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
		if ok && (n > len(b) || len(payload) > n) {
			t.Fatalf("n %d, payload %d of %d bytes", n, len(payload), len(b))
		}
		hasSID(b)
	})
}
