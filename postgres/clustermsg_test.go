package postgres

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/internal/clusterwire"
	"github.com/sessiongate/sessiongate/socketio"
)

// The NOTIFY payloads of the shared interop notes (§3, [LAB]) and of the
// other message types, as Node's adapter and the emitter write them.
var capturedNotifications = []string{
	`{"type":3,"data":{"packet":{"type":2,"data":["from-A",1]},"opts":{"rooms":["room1"],"except":[],"flags":{}}},"uid":"0421087bfd1bf2dc","nsp":"/"}`,
	`{"type":1,"uid":"0421087bfd1bf2dc","nsp":"/"}`,
	`{"type":2,"uid":"0421087bfd1bf2dc","nsp":"/"}`,
	`{"type":13,"uid":"0421087bfd1bf2dc","nsp":"/"}`,
	`{"uid":"0421087bfd1bf2dc","type":3,"attachmentId":"1"}`,
	`{"type":3,"data":{"packet":{"type":2,"data":["from-emitter",2],"nsp":"/"},"opts":{"rooms":["room1"],"flags":{},"except":[]}},"uid":"emitter"}`,
	`{"type":4,"data":{"opts":{"rooms":[],"except":[]},"rooms":["zz"]},"uid":"emitter"}`,
	`{"type":5,"data":{"opts":{"rooms":["a"],"except":["b"]},"rooms":["zz"]},"uid":"emitter"}`,
	`{"type":6,"data":{"opts":{"rooms":[],"except":[]},"close":true},"uid":"emitter"}`,
	`{"type":9,"data":{"packet":["hello","world"]},"uid":"emitter"}`,
	`{"type":7,"data":{"opts":{"rooms":["r"],"except":[],"flags":{"timeout":5000}},"requestId":"5b1c2d3e4f506172"},"uid":"0421087bfd1bf2dc","nsp":"/"}`,
	`{"type":8,"data":{"requestId":"5b1c2d3e4f506172","sockets":[{"id":"abc","handshake":{"headers":{},"time":"x","address":"::1","xdomain":false,"secure":false,"issued":1,"url":"/","query":{"EIO":"4"},"auth":{}},"rooms":["abc","r"],"data":{"userId":"1"}}]},"uid":"0421087bfd1bf2dc","nsp":"/"}`,
	`{"type":9,"data":{"requestId":"5b1c2d3e4f506172","packet":["ping",1]},"uid":"0421087bfd1bf2dc","nsp":"/"}`,
	`{"type":10,"data":{"requestId":"5b1c2d3e4f506172","packet":"pong"},"uid":"0421087bfd1bf2dc","nsp":"/"}`,
	`{"type":3,"data":{"packet":{"type":2,"data":["q"]},"requestId":"5b1c2d3e4f506172","opts":{"rooms":[],"except":[],"flags":{"timeout":2000}}},"uid":"0421087bfd1bf2dc","nsp":"/"}`,
	`{"type":11,"data":{"requestId":"5b1c2d3e4f506172","clientCount":2},"uid":"0421087bfd1bf2dc","nsp":"/"}`,
	`{"type":12,"data":{"requestId":"5b1c2d3e4f506172","packet":"ok"},"uid":"0421087bfd1bf2dc","nsp":"/"}`,
}

func TestParseNotificationCaptures(t *testing.T) {
	for _, p := range capturedNotifications {
		m, err := parseNotification([]byte(p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if m.UID == "" || m.Type == 0 {
			t.Errorf("%s: %+v", p, m)
		}
		if m.HasNSP != strings.HasSuffix(p, `"nsp":"/"}`) {
			t.Errorf("%s: HasNSP %v", p, m.HasNSP)
		}
	}
	m, _ := parseNotification([]byte(capturedNotifications[4]))
	if m.AttachmentID != 1 || m.Type != msgBroadcast || m.HasNSP {
		t.Errorf("header: %+v", m)
	}
	for _, bad := range []string{``, `null`, `[]`, `{"type":0}`, `{"type":14,"uid":"x"}`, `{"type":3,"uid":1}`,
		`{"type":3,"data":[]}`, `{"type":3,"attachmentId":"-1"}`, `{"type":3,"attachmentId":"x"}`, `{"type":2} {}`} {
		if _, err := parseNotification([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// testCodecCluster is a Cluster without connections, for the encoder and
// the fuzz target: its publications are discarded.
func testCodecCluster(t testing.TB) *Cluster {
	opts := ClusterOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts.setDefaults()
	c := &Cluster{opts: opts, log: opts.Logger, pubs: make(chan *publication, 64), events: make(chan func(), 64), channels: make(map[string]*channel)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case p := <-c.pubs:
				if p.done != nil {
					p.done <- nil
				}
			case f := <-c.events:
				f()
			case <-c.ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.cancel()
		<-done
	})
	return c
}

// The threshold: a JSON message of 8000 bytes or more, or one with binary,
// goes through the table; its header stays small.
func TestEncodeThreshold(t *testing.T) {
	c := testCodecCluster(t)
	doc := func(s string, extra ...any) clusterwire.Map {
		data := append([]any{"ev", s}, extra...)
		return document(msgBroadcast, clusterwire.Map{
			{Key: "packet", Value: clusterwire.Map{{Key: "type", Value: 2}, {Key: "data", Value: data}}},
			{Key: "opts", Value: clusterwire.OptsMap(socketio.BroadcastOptions{})},
		}, "0123456789abcdef", "/")
	}
	base, err := appendJSON(nil, doc(""))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":3,"data":{"packet":{"type":2,"data":["ev",""]},"opts":{"rooms":[],"except":[],"flags":{}}},"uid":"0123456789abcdef","nsp":"/"}`; string(base) != want {
		t.Errorf("JSON\n%s, want\n%s", base, want)
	}
	for _, tc := range []struct {
		size   int
		attach bool
	}{{7999, false}, {8000, true}, {20000, true}} {
		p, err := c.encode("socket.io#/", doc(strings.Repeat("x", tc.size-len(base))), msgBroadcast, "0123456789abcdef", "/")
		if err != nil {
			t.Fatal(err)
		}
		if (p.attach != nil) != tc.attach {
			t.Errorf("%d bytes: attachment %v, want %v", tc.size, p.attach != nil, tc.attach)
		}
		if p.attach == nil && len(p.payload) != tc.size {
			t.Errorf("payload of %d bytes, want %d", len(p.payload), tc.size)
		}
	}
	p, err := c.encode("socket.io#/", doc("", []byte{1}), msgBroadcast, "0123456789abcdef", "/")
	if err != nil {
		t.Fatal(err)
	}
	if p.attach == nil {
		t.Fatal("binary message not attached")
	}
	if got := p.prefix + "42" + p.suffix; got != `{"uid":"0123456789abcdef","type":3,"attachmentId":"42","nsp":"/"}` {
		t.Errorf("header %s", got)
	}
	m, err := parseAttachment(p.attach)
	if err != nil || m.Type != msgBroadcast || m.UID != "0123456789abcdef" || m.NSP != "/" {
		t.Errorf("attachment decodes to %+v, %v", m, err)
	}
	// A binary join request is JSON: only types 3, 9, 10, 12 carry binary.
	p, err = c.encode("socket.io#/", document(msgSocketsJoin, clusterwire.Map{{Key: "rooms", Value: []any{}}}, "u", "/"), msgSocketsJoin, "u", "/")
	if err != nil || p.attach != nil {
		t.Errorf("join: %+v %v", p, err)
	}
}

// fuzzAdapter is a clusterAdapter of a server with no sockets, on a
// Cluster whose publications are discarded.
func fuzzAdapter(t testing.TB) *clusterAdapter {
	c := testCodecCluster(t)
	srv := socketio.NewServer(socketio.Options{NewAdapter: c.Adapter})
	t.Cleanup(func() { srv.Close() })
	return srv.Of("/").Adapter().(*clusterAdapter)
}

// FuzzParseNotification feeds NOTIFY payloads to the decoder and what
// decodes to the adapter's handler: nothing a peer sends may panic it.
func FuzzParseNotification(f *testing.F) {
	for _, p := range capturedNotifications {
		f.Add([]byte(p))
	}
	a := fuzzAdapter(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := parseNotification(payload)
		if err != nil {
			return
		}
		if m.Type < msgInitialHeartbeat || m.Type > msgAdapterClose {
			t.Fatalf("type %d accepted", m.Type)
		}
		if m.AttachmentID == 0 {
			a.onMessage(m)
		}
	})
}

// FuzzParseAttachment does the same for attachment rows (msgpack).
func FuzzParseAttachment(f *testing.F) {
	for _, p := range capturedNotifications {
		m, err := parseNotification([]byte(p))
		if err != nil || m.AttachmentID != 0 {
			continue
		}
		raw := clusterwire.Map{{Key: "type", Value: m.Type}, {Key: "data", Value: m.Data}, {Key: "uid", Value: m.UID}}
		b, err := clusterwire.Marshal(raw)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// The row of the binary broadcast of §1b/§3: 84 a4"type" 03 a4"data" 82…
	f.Add([]byte("\x84\xa4type\x03\xa4data\x82\xa6packet\x82\xa4type\x02\xa4data\x92\xa3bin\xc4\x03\x01\x02\x03\xa4opts\x83\xa5rooms\x90\xa6except\x90\xa5flags\x80\xa3uid\xb00421087bfd1bf2dc\xa3nsp\xa1/"))
	a := fuzzAdapter(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := parseAttachment(payload)
		if err != nil {
			return
		}
		a.onMessage(m)
	})
}
