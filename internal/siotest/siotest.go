// Package siotest is a small Socket.IO v5 client (the protocol of
// socket.io-client 3 and 4, over Engine.IO v4) for Go tests of a Socket.IO
// server, so that tests which need only the protocol's semantics run
// without Node.
//
// A Client joins one namespace over one transport, websocket or HTTP
// long-polling (no upgrade from one to the other). It answers the server's
// pings, records every event it receives, and lets a test await the
// outcome of its CONNECT, an event, or the end of the connection, each
// with a context. It does not reconnect, answers the acknowledgements the
// server asks for only with Options.Ack, and drops binary attachments (a binary event is
// recorded with its placeholders). Tests whose point is the official
// client's behaviour (reconnection, upgrade) drive socket.io-client through
// package nodetest instead.
package siotest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
)

// The transports a Client can use.
const (
	Websocket = "websocket"
	Polling   = "polling"
)

// The reasons a connection ends, as socket.io-client names them in its
// "disconnect" event.
const (
	// ReasonServerDisconnect: the server sent DISCONNECT for the namespace.
	ReasonServerDisconnect = "io server disconnect"
	// ReasonClientDisconnect: the test called Close.
	ReasonClientDisconnect = "io client disconnect"
	// ReasonTransportClose: the transport closed (an Engine.IO close packet,
	// a closed websocket, a failed poll) without a DISCONNECT first.
	ReasonTransportClose = "transport close"
	// ReasonParseError: the server sent a packet the client could not decode.
	ReasonParseError = "parse error"
)

// Options configure Dial. The zero value joins "/" over websocket with no
// extra headers and no auth payload.
type Options struct {
	// Header is sent with every HTTP request of the connection (the
	// handshake, each poll and post, the websocket upgrade), as a
	// browser sends its cookies: Cookie, Origin, X-Forwarded-For...
	Header http.Header
	// Namespace is the namespace to join; "/" when empty.
	Namespace string
	// Auth is the CONNECT packet's payload, encoded as JSON; nil sends
	// none. It must encode to a JSON object.
	Auth any
	// Transport is Websocket (the default) or Polling.
	Transport string
	// Ack, when set, answers the acknowledgements the server asks for:
	// with the JSON encoding of what it returns for the event. Nil: they
	// are not answered.
	Ack func(ev Event) []any
}

// Event is an event the server sent.
type Event struct {
	Name     string
	Args     []json.RawMessage
	Received time.Time
	// Early: it arrived before the namespace's CONNECT, which a server
	// must never do.
	Early bool
}

// ConnectError is the server's refusal of the CONNECT (a CONNECT_ERROR
// packet), as socket.io-client's connect_error listener sees it.
type ConnectError struct {
	Message string
	Data    json.RawMessage // nil when the packet had no data
	// Code is Data's "code" member when Data is an object with a string
	// code (the usual way a server says why), else "".
	Code string
}

func (e *ConnectError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("siotest: connect error %q (code %s)", e.Message, e.Code)
	}
	return fmt.Sprintf("siotest: connect error %q", e.Message)
}

// Disconnect is how a connection ended.
type Disconnect struct {
	Reason   string // one of the Reason constants
	Err      error  // the transport's error, for ReasonTransportClose and ReasonParseError
	Received time.Time
}

// HandshakeError is an HTTP error the server answered instead of Engine.IO
// packets (see engineio's error codes): Dial returns it when the handshake
// is refused; a later poll or post refused ends the connection with it
// wrapped in Disconnect.Err.
type HandshakeError struct {
	StatusCode int
	Code       int    // Engine.IO error code of the JSON body; -1 if none
	Message    string // its message, or the body
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("siotest: refused: HTTP %d, Engine.IO code %d %q", e.StatusCode, e.Code, e.Message)
}

// writeTimeout bounds the writes of Close, which takes no context.
const writeTimeout = 5 * time.Second

// ErrDisconnected is wrapped by the errors of the waits and emits that
// can no longer succeed because the connection ended.
var ErrDisconnected = errors.New("siotest: disconnected")

// Client is one Socket.IO connection to one namespace. Its methods are safe
// for concurrent use.
type Client struct {
	ns  string
	ack func(Event) []any
	tr  transport
	ctx context.Context // cancelled when the connection ends
	end context.CancelFunc

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced at every change below
	sid      string        // the CONNECT's sid, once connected
	refusal  *ConnectError
	events   []Event
	taken    []bool // events already returned by WaitEvent
	nextAck  uint64
	acks     map[uint64]chan []json.RawMessage
	ended    *Disconnect
	pings    int // answered; the server sends the next only after our pong
	readDone chan struct{}
}

// Dial opens an Engine.IO session at url (the server's origin, as
// httptest.Server.URL; Engine.IO is at /socket.io/) and sends CONNECT for
// the namespace. It returns once the session is open, without waiting for
// the CONNECT's outcome: Connected waits for that. A refused handshake is a
// *HandshakeError. Call Close when done.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	ns := opts.Namespace
	if ns == "" {
		ns = "/"
	}
	connect := socketio.Packet{Type: socketio.PacketConnect, Namespace: ns}
	if opts.Auth != nil {
		auth, err := json.Marshal(opts.Auth)
		if err != nil {
			return nil, fmt.Errorf("siotest: encode auth: %w", err)
		}
		connect.Data = auth
	}
	var (
		tr  transport
		err error
	)
	switch opts.Transport {
	case "", Websocket:
		tr, err = dialWebsocket(ctx, url, opts.Header)
	case Polling:
		tr, err = dialPolling(ctx, url, opts.Header)
	default:
		return nil, fmt.Errorf("siotest: unknown transport %q", opts.Transport)
	}
	if err != nil {
		return nil, err
	}
	c := &Client{ns: ns, ack: opts.Ack, tr: tr, changed: make(chan struct{}), acks: make(map[uint64]chan []json.RawMessage), readDone: make(chan struct{})}
	c.ctx, c.end = context.WithCancel(context.Background())
	if err := tr.write(ctx, message(connect.Encode())); err != nil {
		tr.close()
		return nil, fmt.Errorf("siotest: send CONNECT: %w", err)
	}
	go c.readLoop()
	return c, nil
}

// message returns the Engine.IO message packet carrying a Socket.IO packet.
func message(p []byte) []byte { return append([]byte{'4'}, p...) }

// Connected waits for the outcome of the CONNECT and returns the socket's
// id, or the server's refusal as a *ConnectError. It fails with
// ErrDisconnected if the connection ends first, or with ctx's error.
func (c *Client) Connected(ctx context.Context) (string, error) {
	var sid string
	err := c.wait(ctx, "CONNECT", func() (bool, error) {
		switch {
		case c.sid != "":
			sid = c.sid
			return true, nil
		case c.refusal != nil:
			return true, c.refusal
		}
		return false, nil
	})
	return sid, err
}

// WaitEvent returns the first event named name that the server sent (before
// or during the call) and that no earlier WaitEvent returned, waiting for
// one. It fails with ErrDisconnected if the connection ends without one,
// or with ctx's error.
func (c *Client) WaitEvent(ctx context.Context, name string) (Event, error) {
	var ev Event
	err := c.wait(ctx, "event "+name, func() (bool, error) {
		for i, e := range c.events {
			if e.Name == name && !c.taken[i] {
				c.taken[i] = true
				ev = e
				return true, nil
			}
		}
		return false, nil
	})
	return ev, err
}

// Events returns every event received so far, in order.
func (c *Client) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// WaitDisconnect waits for the connection to end and says how it ended. It
// fails only with ctx's error.
func (c *Client) WaitDisconnect(ctx context.Context) (Disconnect, error) {
	var d Disconnect
	err := c.wait(ctx, "disconnect", func() (bool, error) {
		if c.ended != nil {
			d = *c.ended
			return true, nil
		}
		return false, nil
	})
	return d, err
}

// Disconnected reports how the connection ended, and false while it is
// open.
func (c *Client) Disconnected() (Disconnect, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended == nil {
		return Disconnect{}, false
	}
	return *c.ended, true
}

// wait calls done under c.mu at every change until it reports true, the
// connection ends or ctx is done.
func (c *Client) wait(ctx context.Context, what string, done func() (bool, error)) error {
	for {
		c.mu.Lock()
		ok, err := done()
		ended, changed := c.ended, c.changed
		c.mu.Unlock()
		switch {
		case ok:
			return err
		case ended != nil:
			return fmt.Errorf("%w (%s) while waiting for %s", ErrDisconnected, ended.Reason, what)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("siotest: waiting for %s: %w", what, ctx.Err())
		}
	}
}

// changedLocked wakes the waiters.
func (c *Client) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Emit sends the event name with args, each encoded as JSON.
func (c *Client) Emit(ctx context.Context, name string, args ...any) error {
	return c.emit(ctx, name, args, nil)
}

// EmitWithAck sends the event name with args and waits for the server's
// acknowledgement, returning its arguments.
func (c *Client) EmitWithAck(ctx context.Context, name string, args ...any) ([]json.RawMessage, error) {
	c.mu.Lock()
	id := c.nextAck
	c.nextAck++
	ch := make(chan []json.RawMessage, 1)
	c.acks[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.acks, id)
		c.mu.Unlock()
	}()
	if err := c.emit(ctx, name, args, &id); err != nil {
		return nil, err
	}
	select {
	case ack := <-ch:
		return ack, nil
	case <-c.ctx.Done():
		return nil, fmt.Errorf("%w while waiting for the ack of %s", ErrDisconnected, name)
	case <-ctx.Done():
		return nil, fmt.Errorf("siotest: waiting for the ack of %s: %w", name, ctx.Err())
	}
}

// EmitAsync sends the event name with args asking for an acknowledgement,
// and returns once it is sent: the channel gets the ack's arguments when it
// comes (events sent one after the other are sent in that order).
func (c *Client) EmitAsync(ctx context.Context, name string, args ...any) (<-chan []json.RawMessage, error) {
	c.mu.Lock()
	id := c.nextAck
	c.nextAck++
	ch := make(chan []json.RawMessage, 1)
	c.acks[id] = ch
	c.mu.Unlock()
	if err := c.emit(ctx, name, args, &id); err != nil {
		c.mu.Lock()
		delete(c.acks, id)
		c.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

func (c *Client) emit(ctx context.Context, name string, args []any, ackID *uint64) error {
	data, err := json.Marshal(append([]any{name}, args...))
	if err != nil {
		return fmt.Errorf("siotest: encode %s: %w", name, err)
	}
	p := socketio.Packet{Type: socketio.PacketEvent, Namespace: c.ns, Data: data}
	if ackID != nil {
		p.ID, p.HasID = *ackID, true
	}
	if c.ctx.Err() != nil {
		return fmt.Errorf("%w: cannot emit %s", ErrDisconnected, name)
	}
	if err := c.tr.write(ctx, message(p.Encode())); err != nil {
		if c.ctx.Err() != nil { // the write lost the race with the end
			return fmt.Errorf("%w: cannot emit %s", ErrDisconnected, name)
		}
		return fmt.Errorf("siotest: emit %s: %w", name, err)
	}
	return nil
}

// Close ends the connection: DISCONNECT first if the namespace was joined
// (as socket.io-client's disconnect does), then the transport. It waits for
// the reading goroutine to stop. Closing an ended client does nothing.
func (c *Client) Close() error {
	c.mu.Lock()
	joined := c.sid != "" && c.ended == nil
	c.mu.Unlock()
	var err error
	if joined {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		disconnect := socketio.Packet{Type: socketio.PacketDisconnect, Namespace: c.ns}
		err = c.tr.write(ctx, message(disconnect.Encode()))
		cancel()
	}
	c.finish(Disconnect{Reason: ReasonClientDisconnect})
	<-c.readDone
	return err
}

// finish records how the connection ended, if it had not already, and
// closes the transport.
func (c *Client) finish(d Disconnect) {
	c.mu.Lock()
	if c.ended != nil {
		c.mu.Unlock()
		return
	}
	d.Received = time.Now()
	c.ended = &d
	c.end() // before the unlock: whoever sees ended sees ctx done
	c.changedLocked()
	c.mu.Unlock()
	c.tr.close()
}

// readLoop reads the transport until the connection ends.
func (c *Client) readLoop() {
	defer close(c.readDone)
	for {
		pkts, err := c.tr.read(c.ctx)
		if err != nil {
			c.finish(Disconnect{Reason: ReasonTransportClose, Err: err})
			return
		}
		for _, p := range pkts {
			if err := c.handle(p); err != nil {
				c.finish(Disconnect{Reason: ReasonParseError, Err: err})
				return
			}
			if c.ctx.Err() != nil {
				return
			}
		}
	}
}

// handle acts on one Engine.IO packet.
func (c *Client) handle(p enginePacket) error {
	if p.binary {
		return nil // an attachment: dropped
	}
	if len(p.data) == 0 {
		return errors.New("siotest: empty Engine.IO packet")
	}
	switch p.data[0] {
	case '1': // close
		c.finish(Disconnect{Reason: ReasonTransportClose, Err: errors.New("siotest: Engine.IO close packet")})
	case '2': // ping
		c.mu.Lock()
		c.pings++
		c.changedLocked()
		c.mu.Unlock()
		if err := c.tr.write(c.ctx, []byte{'3'}); err != nil && c.ctx.Err() == nil {
			c.finish(Disconnect{Reason: ReasonTransportClose, Err: fmt.Errorf("siotest: pong: %w", err)})
		}
	case '4':
		return c.handleSocketIO(p.data[1:])
	case '6': // noop
	default:
		return fmt.Errorf("siotest: unexpected Engine.IO packet %q", p.data)
	}
	return nil
}

// handleSocketIO acts on one Socket.IO packet.
func (c *Client) handleSocketIO(b []byte) error {
	p, err := socketio.DecodePacket(b)
	if err != nil {
		return fmt.Errorf("siotest: decode %q: %w", b, err)
	}
	if p.Namespace != c.ns {
		return nil
	}
	now := time.Now()
	switch p.Type {
	case socketio.PacketConnect:
		var ok struct {
			SID string `json:"sid"`
		}
		if err := json.Unmarshal(p.Data, &ok); err != nil || ok.SID == "" {
			return fmt.Errorf("siotest: CONNECT without sid: %q", p.Data)
		}
		c.mu.Lock()
		c.sid = ok.SID
		c.changedLocked()
		c.mu.Unlock()
	case socketio.PacketConnectError:
		ce, err := decodeConnectError(p.Data)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.refusal = ce
		c.changedLocked()
		c.mu.Unlock()
	case socketio.PacketEvent, socketio.PacketBinaryEvent:
		var arr []json.RawMessage
		var name string
		if err := json.Unmarshal(p.Data, &arr); err != nil || len(arr) == 0 || json.Unmarshal(arr[0], &name) != nil {
			return fmt.Errorf("siotest: event %q: not an array starting with a name", p.Data)
		}
		c.mu.Lock()
		ev := Event{Name: name, Args: arr[1:], Received: now, Early: c.sid == ""}
		c.events = append(c.events, ev)
		c.taken = append(c.taken, false)
		c.changedLocked()
		c.mu.Unlock()
		if p.HasID && c.ack != nil {
			return c.answer(p.ID, c.ack(ev))
		}
	case socketio.PacketAck, socketio.PacketBinaryAck:
		var args []json.RawMessage
		if err := json.Unmarshal(p.Data, &args); err != nil {
			return fmt.Errorf("siotest: ack %q: %w", p.Data, err)
		}
		c.mu.Lock()
		ch := c.acks[p.ID]
		delete(c.acks, p.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- args
		}
	case socketio.PacketDisconnect:
		c.finish(Disconnect{Reason: ReasonServerDisconnect})
	}
	return nil
}

// answer sends the acknowledgement id with args.
func (c *Client) answer(id uint64, args []any) error {
	if args == nil {
		args = []any{}
	}
	data, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("siotest: encode ack: %w", err)
	}
	p := socketio.Packet{Type: socketio.PacketAck, Namespace: c.ns, ID: id, HasID: true, Data: data}
	if err := c.tr.write(c.ctx, message(p.Encode())); err != nil && c.ctx.Err() == nil {
		c.finish(Disconnect{Reason: ReasonTransportClose, Err: fmt.Errorf("siotest: ack: %w", err)})
	}
	return nil
}

// decodeConnectError decodes a CONNECT_ERROR payload: {"message", "data"},
// or the bare message string the packet format also allows.
func decodeConnectError(data []byte) (*ConnectError, error) {
	var ce ConnectError
	if len(data) > 0 && data[0] == '"' {
		if err := json.Unmarshal(data, &ce.Message); err != nil {
			return nil, fmt.Errorf("siotest: CONNECT_ERROR %q: %w", data, err)
		}
		return &ce, nil
	}
	var body struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, fmt.Errorf("siotest: CONNECT_ERROR %q: %w", data, err)
	}
	ce.Message, ce.Data = body.Message, body.Data
	var coded struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body.Data, &coded) == nil {
		ce.Code = coded.Code
	}
	return &ce, nil
}
