package socketio

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

// Tests of the limits of the package documentation: each has a client
// break a rule (its connection is closed and counted) while an honest
// client of the same server keeps working.

// newLimitServer returns a server whose "echo" event acknowledges its
// arguments, with opts' limits.
func newLimitServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := newServer(opts)
	srv.Of("/").On("echo", func(s *Socket, ev Event, ack func(...any) error) {
		if ack != nil {
			ack(ev.Args...)
		}
	})
	return srv
}

// honest checks that a client of srv joins "/" and gets an event
// acknowledged, a binary one included.
func honest(t *testing.T, srv *Server) {
	t.Helper()
	c := dial(t, srv)
	c.connect("/")
	c.in(`21["echo","hi"]`)
	c.expect(`31["hi"]`)
	c.in(`51-2["echo",{"_placeholder":true,"num":0}]`)
	c.inBinary([]byte{7})
	c.expect(`61-2[{"_placeholder":true,"num":0}]`)
	if m := c.next(); !m.Binary || string(m.Data) != "\x07" {
		t.Fatalf("attachment echoed as %q", m.Data)
	}
}

// expectCounted waits for c to be closed and checks that srv counted one
// close, under the field got returns.
func expectCounted(t *testing.T, srv *Server, c *fakeConn, got func(Stats) uint64) {
	t.Helper()
	c.expectClosed()
	if n := got(srv.Stats()); n != 1 {
		t.Errorf("close counted %d times under its reason, want 1 (stats %+v)", n, srv.Stats())
	}
}

// send delivers the messages of a script: "bin:<bytes>" is binary.
func (f *fakeConn) send(script ...string) {
	for _, m := range script {
		if b, ok := strings.CutPrefix(m, "bin:"); ok {
			f.inBinary([]byte(b))
		} else {
			f.in(m)
		}
	}
}

func TestAttachmentLimits(t *testing.T) {
	placeholders := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = `{"_placeholder":true,"num":` + string(rune('0'+i%10)) + `}`
		}
		return strings.Join(parts, ",")
	}
	big := strings.Repeat("x", 600)
	tests := []struct {
		name   string
		script []string
		field  func(Stats) uint64
	}{
		// socket.io-parser's maxAttachments: 10.
		{"more than MaxAttachments", []string{`511-["echo",` + placeholders(10) + `]`}, func(s Stats) uint64 { return s.Attachments }},
		// socket.io-parser: "Illegal attachments".
		{"zero attachments", []string{`50-["echo"]`}, func(s Stats) uint64 { return s.ParseErrors }},
		// With them, at most Engine.MaxPayload (1000 here) in total.
		{"over MaxPayload", []string{`52-["echo",` + placeholders(2) + `]`, "bin:" + big, "bin:" + big}, func(s Stats) uint64 { return s.Attachments }},
		// Announced, never sent: closed after AttachmentTimeout.
		{"never sent", []string{`51-["echo",` + placeholders(1) + `]`}, func(s Stats) uint64 { return s.Attachments }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newLimitServer(t, Options{
				Engine:            engineio.Options{MaxPayload: 1000},
				AttachmentTimeout: 100 * time.Millisecond,
			})
			bad := dial(t, srv)
			bad.connect("/")
			bad.send(tt.script...)
			expectCounted(t, srv, bad, tt.field)
			bad.client.mu.Lock()
			held := len(bad.client.bins)
			bad.client.mu.Unlock()
			if held != 0 {
				t.Errorf("%d attachments still held after the close", held)
			}
			honest(t, srv)
		})
	}
}

// A packet for a namespace the client has not joined closes the
// connection, as Node's Client._onpacket does ("invalid state"), before
// CONNECT, after it, and while the namespace's connect hooks run.
func TestNamespaceNotJoinedCloses(t *testing.T) {
	tests := []struct {
		name   string
		join   bool // join "/" first
		script []string
	}{
		{"event before CONNECT", false, []string{`2["echo"]`}},
		{"binary event before CONNECT", false, []string{`51-["echo",{"_placeholder":true,"num":0}]`}},
		{"ack before CONNECT", false, []string{`30[]`}},
		{"disconnect before CONNECT", false, []string{`1`}},
		{"event for another namespace", true, []string{`2/other,["echo"]`}},
		{"ack for another namespace", true, []string{`3/other,0[]`}},
		{"disconnect of another namespace", true, []string{`1/other,`}},
		{"event after DISCONNECT", true, []string{`1`, `2["echo"]`}},
		{"CONNECT_ERROR from the client", true, []string{`4{"message":"x"}`}},
		{"second CONNECT", true, []string{`0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newLimitServer(t, Options{})
			srv.Of("/other")
			bad := dial(t, srv)
			if tt.join {
				bad.connect("/")
			}
			bad.send(tt.script...)
			expectCounted(t, srv, bad, func(s Stats) uint64 { return s.NamespaceViolations })
			honest(t, srv)
		})
	}
}

// Node sets a client's namespace only once its middleware has let it in:
// an event sent while the connect hooks run closes the connection (and
// cancels the hooks' context). socket.io-client waits for CONNECT.
func TestEventDuringConnectHookCloses(t *testing.T) {
	srv := newLimitServer(t, Options{})
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	srv.Of("/slow").OnConnecting(func(ctx context.Context, _ ConnectEvent) (ConnectReply, error) {
		entered <- struct{}{}
		select {
		case <-ctx.Done():
			return ConnectReply{}, ctx.Err()
		case <-release:
			return ConnectReply{}, nil
		}
	})
	bad := dial(t, srv)
	bad.in("0/slow,")
	<-entered
	bad.in(`2/slow,["echo"]`)
	expectCounted(t, srv, bad, func(s Stats) uint64 { return s.NamespaceViolations })
	honest(t, srv)

	// Once CONNECT is sent the namespace is joined: the client's next
	// packet is taken.
	close(release)
	good := dial(t, srv)
	srv.Of("/slow").On("echo", func(s *Socket, ev Event, ack func(...any) error) { ack(ev.Args...) })
	good.in("0/slow,")
	<-entered
	good.expectPrefix(`0/slow,{"sid":"`)
	good.in(`2/slow,1["echo",1]`)
	good.expect(`3/slow,1[1]`)
}

// The namespace and state are checked before the arguments are parsed: a
// packet refused for its namespace is not parsed, so it closes as a
// namespace violation even when its JSON is broken.
func TestHeaderCheckedBeforeArguments(t *testing.T) {
	srv := newLimitServer(t, Options{})
	bad := dial(t, srv)
	bad.in(`2/nowhere,["echo",` + strings.Repeat("[", 1000))
	expectCounted(t, srv, bad, func(s Stats) uint64 { return s.NamespaceViolations })
	if s := srv.Stats(); s.ParseErrors != 0 {
		t.Errorf("arguments parsed before the namespace was checked: %+v", s)
	}
	honest(t, srv)
}

func TestPacketBudget(t *testing.T) {
	// A burst of 20 and a refill too slow to matter during the test.
	srv := newLimitServer(t, Options{PacketRate: 0.001, PacketBurst: 20})
	good := dial(t, srv)
	good.connect("/")
	bad := dial(t, srv)
	bad.connect("/")
	for range 19 { // the CONNECT took a token
		bad.in(`2["nobody"]`)
	}
	select {
	case <-bad.done:
		t.Fatal("closed within its budget")
	default:
	}
	bad.in(`2["nobody"]`)
	expectCounted(t, srv, bad, func(s Stats) uint64 { return s.PacketBudget })
	// Attachments are messages too.
	bad2 := dial(t, srv)
	bad2.connect("/")
	for range 10 {
		bad2.in(`51-["nobody",{"_placeholder":true,"num":0}]`)
		bad2.inBinary([]byte{1})
	}
	bad2.expectClosed()
	if s := srv.Stats(); s.PacketBudget != 2 {
		t.Errorf("stats %+v, want 2 budget closes", s)
	}
	good.in(`21["echo","still here"]`)
	good.expect(`31["still here"]`)
}

// The packets waiting for a connection's handlers are bounded in bytes.
func TestQueuedBytesBounded(t *testing.T) {
	srv := newLimitServer(t, Options{MaxQueuedBytes: 1000})
	block := make(chan struct{})
	defer close(block)
	srv.Of("/").On("block", func(s *Socket, ev Event, ack func(...any) error) { <-block })
	good := dial(t, srv)
	good.connect("/")
	bad := dial(t, srv)
	bad.connect("/")
	ev := `2["block","` + strings.Repeat("x", 400) + `"]`
	bad.in(ev, ev) // one running, one queued: 830 bytes held
	select {
	case <-bad.done:
		t.Fatal("closed within MaxQueuedBytes")
	default:
	}
	bad.in(ev)
	expectCounted(t, srv, bad, func(s Stats) uint64 { return s.QueueFull })
	good.in(`21["echo","ok"]`)
	good.expect(`31["ok"]`)
}

func TestPendingAcksBounded(t *testing.T) {
	srv := newLimitServer(t, Options{MaxPendingAcks: 2})
	c := dial(t, srv)
	id := c.connect("/")
	s := socketByID(t, srv.Of("/"), id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := s.EmitWithAck(ctx, "ask")
			results <- err
		}()
	}
	ids := map[string]bool{}
	for range 2 {
		ids[c.expectPrefix(`2`)] = true
	}
	// The client answers neither: a third call fails at once.
	if _, err := s.EmitWithAck(ctx, "ask"); !errors.Is(err, ErrTooManyAcks) {
		t.Fatalf("third EmitWithAck: %v, want ErrTooManyAcks", err)
	}
	c.in(`30[]`)
	if err := <-results; err != nil {
		t.Fatalf("answered EmitWithAck: %v", err)
	}
	// One answered, one may be asked again.
	go func() {
		_, err := s.EmitWithAck(ctx, "ask")
		results <- err
	}()
	c.expect(`22["ask"]`)
	c.in(`31[]`, `32[]`)
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("EmitWithAck: %v", err)
		}
	}
}

func TestNamespacesBounded(t *testing.T) {
	srv := newLimitServer(t, Options{MaxNamespaces: 2, MaxRefusedConnects: 3})
	srv.Of("/a")
	srv.Of("/b")
	srv.Of("/deny").OnConnecting(refuseWith(errors.New("no")))

	many := dial(t, srv)
	many.connect("/")
	many.connect("/a")
	many.in("0/b,")
	expectCounted(t, srv, many, func(s Stats) uint64 { return s.NamespaceViolations })

	refused := dial(t, srv)
	refused.in("0/nowhere,")
	refused.expect(`4/nowhere,{"message":"Invalid namespace"}`)
	refused.in("0/deny,")
	refused.expect(`4/deny,{"message":"no"}`)
	refused.in("0/nowhere2,")
	refused.expect(`4/nowhere2,{"message":"Invalid namespace"}`)
	expectCounted(t, srv, refused, func(s Stats) uint64 { return s.RefusedConnects })

	// Refused fewer times, a client still joins.
	retry := dial(t, srv)
	retry.in("0/deny,")
	retry.expect(`4/deny,{"message":"no"}`)
	retry.connect("/")
	retry.in(`21["echo",1]`)
	retry.expect(`31[1]`)
	honest(t, srv)
}

// A DISCONNECT refused for a full queue still disconnects its socket: it
// leaves the namespace with the connection.
func TestDisconnectOnFullQueueLeavesNoSocket(t *testing.T) {
	srv := newLimitServer(t, Options{PacketBurst: 2 * maxQueued})
	entered := make(chan struct{}, 1)
	block := make(chan struct{})
	defer close(block)
	srv.Of("/").On("block", func(s *Socket, ev Event, ack func(...any) error) {
		entered <- struct{}{}
		<-block
	})
	c := dial(t, srv)
	c.connect("/")
	c.in(`2["block"]`)
	<-entered
	for range maxQueued {
		c.in(`2["other"]`)
	}
	c.in("1")
	expectCounted(t, srv, c, func(s Stats) uint64 { return s.QueueFull })
	if left := srv.Of("/").Sockets(); len(left) != 0 {
		t.Fatalf("%d sockets left in the namespace", len(left))
	}
	honest(t, srv)
}
