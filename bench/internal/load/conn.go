package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"
)

// dialer opens websocket connections from a rotating set of loopback source
// addresses, so that many connections to one port do not run out of
// ephemeral ports.
//
// Connections that are held (idle, broadcast, revoke) use
// github.com/coder/websocket. The handshake benchmark, where the client's
// CPU cost per connection competes with the server for this machine's cores,
// has its own event-loop client on raw sockets (hsloop.go).
type dialer struct {
	url     string
	header  []http.Header // one per credential, or a single empty header
	nets    []*net.Dialer // one per source address
	clients []*http.Client
	next    atomic.Uint64
}

func newDialer(url string, sources []netip.Addr, creds []Credential) *dialer {
	d := &dialer{url: url}
	if len(sources) == 0 {
		sources = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	for _, src := range sources {
		nd := &net.Dialer{
			Timeout:   10 * time.Second,
			LocalAddr: &net.TCPAddr{IP: src.AsSlice()},
			Control:   bindAddressNoPort,
		}
		d.nets = append(d.nets, nd)
		d.clients = append(d.clients, &http.Client{Transport: &http.Transport{
			DialContext:        nd.DialContext,
			DisableCompression: true,
			Proxy:              nil,
		}})
	}
	for _, c := range creds {
		h := http.Header{}
		if c.Cookie != "" {
			h.Set("Cookie", c.Cookie)
		}
		d.header = append(d.header, h)
	}
	if len(d.header) == 0 {
		d.header = []http.Header{{}}
	}
	return d
}

// dial opens connection number i (which picks its credential and source
// address) and returns it once the websocket is open.
func (d *dialer) dial(ctx context.Context, i int) (*websocket.Conn, error) {
	client := d.clients[int(d.next.Add(1))%len(d.clients)]
	c, _, err := websocket.Dial(ctx, d.url, &websocket.DialOptions{
		HTTPClient:      client,
		HTTPHeader:      d.header[i%len(d.header)],
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// bindAddressNoPort sets IP_BIND_ADDRESS_NO_PORT on a socket about to be
// bound to a source address: the kernel then picks the port at connect time,
// for the whole 4-tuple, and may reuse ports in TIME_WAIT. Without it, every
// bind to port 0 must find a port free for all destinations, which grows
// slow and then fails after tens of thousands of short connections.
func bindAddressNoPort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// ConnectError is a Socket.IO CONNECT_ERROR received instead of a connection.
type ConnectError struct {
	Message string
	Code    string // data.code, when the server sent one
}

func (e *ConnectError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("connect_error %s (%s)", e.Message, e.Code)
	}
	return "connect_error " + e.Message
}

// msgConn is a client websocket seen as a sequence of text messages.
type msgConn interface {
	ReadMessage() ([]byte, error)
	WriteMessage(p []byte) error
}

// coderConn is a github.com/coder/websocket connection as a msgConn.
type coderConn struct {
	ctx context.Context
	c   *websocket.Conn
}

func (c coderConn) ReadMessage() ([]byte, error) {
	_, p, err := c.c.Read(c.ctx)
	return p, err
}

func (c coderConn) WriteMessage(p []byte) error {
	return c.c.Write(c.ctx, websocket.MessageText, p)
}

// socketIOConnect performs the Engine.IO open and the Socket.IO CONNECT to the
// main namespace on c, answering pings meanwhile. It returns the Socket.IO
// socket id, or a *ConnectError when the server refused.
func socketIOConnect(c msgConn, auth string) (string, error) {
	msg, err := c.ReadMessage()
	if err != nil {
		return "", fmt.Errorf("read open packet: %w", err)
	}
	if len(msg) == 0 || msg[0] != '0' {
		return "", fmt.Errorf("expected an Engine.IO open packet, got %.40q", msg)
	}
	if err := c.WriteMessage([]byte("40" + auth)); err != nil {
		return "", fmt.Errorf("write CONNECT: %w", err)
	}
	for {
		msg, err := c.ReadMessage()
		if err != nil {
			return "", fmt.Errorf("read CONNECT reply: %w", err)
		}
		switch {
		case bytes.Equal(msg, []byte("2")):
			if err := c.WriteMessage([]byte("3")); err != nil {
				return "", fmt.Errorf("write pong: %w", err)
			}
		case bytes.HasPrefix(msg, []byte("40")), bytes.HasPrefix(msg, []byte("44")):
			return parseConnectReply(msg)
		}
	}
}

// parseConnectReply decodes a CONNECT ("40{...}") or CONNECT_ERROR
// ("44{...}") packet: the socket id, or a *ConnectError.
func parseConnectReply(msg []byte) (string, error) {
	if bytes.HasPrefix(msg, []byte("40")) {
		var p struct {
			SID string `json:"sid"`
		}
		if err := json.Unmarshal(msg[2:], &p); err != nil || p.SID == "" {
			return "", fmt.Errorf("bad CONNECT reply %.60q", msg)
		}
		return p.SID, nil
	}
	var p struct {
		Message string `json:"message"`
		Data    struct {
			Code string `json:"code"`
		} `json:"data"`
	}
	if !bytes.HasPrefix(msg, []byte("44")) || json.Unmarshal(msg[2:], &p) != nil {
		return "", fmt.Errorf("bad CONNECT_ERROR %.60q", msg)
	}
	return "", &ConnectError{Message: p.Message, Code: p.Data.Code}
}

// eventArgs returns the arguments (the event name first) of a Socket.IO
// EVENT packet on the main namespace as carried in an Engine.IO message
// ("42[\"name\",...]", with an optional ack id), and false for any other
// message.
func eventArgs(msg []byte) ([]json.RawMessage, bool) {
	if !bytes.HasPrefix(msg, []byte("42")) {
		return nil, false
	}
	rest := msg[2:]
	for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
		rest = rest[1:]
	}
	var args []json.RawMessage
	if err := json.Unmarshal(rest, &args); err != nil || len(args) == 0 {
		return nil, false
	}
	return args, true
}

// eventName returns the name of an EVENT packet (see eventArgs).
func eventName(msg []byte) (string, bool) {
	args, ok := eventArgs(msg)
	if !ok {
		return "", false
	}
	var name string
	if err := json.Unmarshal(args[0], &name); err != nil {
		return "", false
	}
	return name, true
}

// expiredReason returns the reason of a session_expired event packet, or
// "?" when it has none.
func expiredReason(msg []byte) string {
	args, ok := eventArgs(msg)
	if !ok || len(args) < 2 {
		return "?"
	}
	var p struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(args[1], &p); err != nil || p.Reason == "" {
		return "?"
	}
	return p.Reason
}

// errClass is a short, stable label for a failure, for counting.
func errClass(err error) string {
	var ce *ConnectError
	switch {
	case errors.As(err, &ce):
		if ce.Code != "" {
			return ce.Code
		}
		return "connect_error: " + ce.Message
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
