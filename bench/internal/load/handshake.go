package load

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// The handshake mode's client is written for low CPU per connection, since
// it shares this machine's cores with the server it measures: every request
// is a byte slice built once per credential, the upgrade response and the
// first frames are read into one buffer per worker, and frames are parsed
// only as far as the Engine.IO open packet and the Socket.IO CONNECT reply
// need. There is no net/http, no header map and no allocation per handshake
// beyond the socket itself.

// wsKey is the Sec-WebSocket-Key of every handshake request: the base64 of
// a 16-byte value ("sessiongate-load"), as servers check. RFC 6455 asks for a
// random nonce; it protects against caching intermediaries, of which there
// are none on loopback, and servers only echo its digest.
const wsKey = "c2Vzc2lvbmdhdGUtbG9hZA=="

// maskKey masks every client frame of the handshake mode.
var maskKey = [4]byte{0x5a, 0x1e, 0xc3, 0x97}

// hsBufSize bounds the upgrade response plus the frames that follow it.
const hsBufSize = 4096

// hsTemplate is what the handshake mode sends and expects, built once.
type hsTemplate struct {
	requests [][]byte // the upgrade request, one per credential
	accept   []byte   // the Sec-WebSocket-Accept value for wsKey
	connect  []byte   // the masked text frame "40"+auth
	pong     []byte   // the masked text frame "3"
	nets     []*net.Dialer
	addr     string // host:port
}

// newHSTemplate prepares the requests to rawURL (an http:// URL with path
// and query) for each credential's Cookie header.
func newHSTemplate(rawURL string, nets []*net.Dialer, creds []Credential, auth string) (*hsTemplate, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", rawURL, err)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	sum := sha1.Sum([]byte(wsKey + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	t := &hsTemplate{
		accept:  []byte(base64.StdEncoding.EncodeToString(sum[:])),
		connect: maskedTextFrame([]byte("40" + auth)),
		pong:    maskedTextFrame([]byte("3")),
		nets:    nets,
		addr:    addr,
	}
	cookies := make([]string, 0, len(creds))
	for _, c := range creds {
		cookies = append(cookies, c.Cookie)
	}
	if len(cookies) == 0 {
		cookies = []string{""}
	}
	for _, c := range cookies {
		var b bytes.Buffer
		fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", u.RequestURI(), u.Host)
		fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", wsKey)
		if c != "" {
			fmt.Fprintf(&b, "Cookie: %s\r\n", c)
		}
		b.WriteString("\r\n")
		t.requests = append(t.requests, b.Bytes())
	}
	return t, nil
}

// maskedTextFrame is a final client text frame carrying p, masked with
// maskKey.
func maskedTextFrame(p []byte) []byte {
	var f []byte
	switch {
	case len(p) < 126:
		f = []byte{0x81, 0x80 | byte(len(p))}
	case len(p) <= 0xffff:
		f = []byte{0x81, 0x80 | 126, byte(len(p) >> 8), byte(len(p))}
	default:
		f = []byte{0x81, 0x80 | 127, 0, 0, 0, 0, byte(len(p) >> 24), byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))}
	}
	f = append(f, maskKey[:]...)
	for i, c := range p {
		f = append(f, c^maskKey[i%4])
	}
	return f
}

// hsWorker is one handshake worker's reusable state.
type hsWorker struct {
	t   *hsTemplate
	buf [hsBufSize]byte
	n   int // bytes in buf
	off int // bytes of buf consumed
}

// handshake opens connection i, completes the Socket.IO connect and closes
// the connection. src picks the source address.
func (w *hsWorker) handshake(ctx context.Context, i, src int) error {
	t := w.t
	conn, err := t.nets[src%len(t.nets)].DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write(t.requests[i%len(t.requests)]); err != nil {
		return fmt.Errorf("write upgrade request: %w", err)
	}
	w.n, w.off = 0, 0
	if err := w.readUpgrade(conn); err != nil {
		return err
	}
	msg, err := w.readText(conn)
	if err != nil {
		return fmt.Errorf("read open packet: %w", err)
	}
	if len(msg) < 2 || msg[0] != '0' || msg[1] != '{' {
		return fmt.Errorf("expected an Engine.IO open packet, got %.40q", msg)
	}
	if _, err := conn.Write(t.connect); err != nil {
		return fmt.Errorf("write CONNECT: %w", err)
	}
	for {
		msg, err := w.readText(conn)
		if err != nil {
			return fmt.Errorf("read CONNECT reply: %w", err)
		}
		switch {
		case len(msg) == 1 && msg[0] == '2':
			if _, err := conn.Write(t.pong); err != nil {
				return fmt.Errorf("write pong: %w", err)
			}
		case len(msg) >= 2 && msg[0] == '4' && msg[1] == '0':
			if !hasSID(msg[2:]) {
				return fmt.Errorf("bad CONNECT reply %.60q", msg)
			}
			return nil
		case len(msg) >= 2 && msg[0] == '4' && msg[1] == '4':
			_, err := parseConnectReply(msg) // the rare path: decode the error fully
			return err
		}
	}
}

// hasSID reports whether a CONNECT reply's payload is an object with a
// non-empty "sid" string, checked without decoding it.
func hasSID(p []byte) bool {
	if len(p) == 0 || p[0] != '{' || p[len(p)-1] != '}' {
		return false
	}
	_, rest, ok := bytes.Cut(p, []byte(`"sid":"`))
	return ok && len(rest) > 0 && rest[0] != '"'
}

var errFrameTooLarge = errors.New("frame larger than the handshake buffer")

// fill reads more bytes from conn into the buffer, compacting it first when
// it is full.
func (w *hsWorker) fill(conn net.Conn) error {
	if w.n == len(w.buf) {
		if w.off == 0 {
			return errFrameTooLarge
		}
		w.n = copy(w.buf[:], w.buf[w.off:w.n])
		w.off = 0
	}
	n, err := conn.Read(w.buf[w.n:])
	w.n += n
	if n > 0 {
		return nil
	}
	return err
}

// readUpgrade reads the server's response to the upgrade request and checks
// that it is a 101 with the expected Sec-WebSocket-Accept.
func (w *hsWorker) readUpgrade(conn net.Conn) error {
	for {
		if end := bytes.Index(w.buf[:w.n], []byte("\r\n\r\n")); end >= 0 {
			head := w.buf[:end]
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
				line, _, _ := bytes.Cut(head, []byte("\r\n"))
				return fmt.Errorf("upgrade refused: %.60q", line)
			}
			if !bytes.Contains(head, w.t.accept) {
				return errors.New("upgrade response lacks the expected Sec-WebSocket-Accept")
			}
			w.off = end + 4
			return nil
		}
		if err := w.fill(conn); err != nil {
			if errors.Is(err, errFrameTooLarge) {
				return errors.New("upgrade response too large")
			}
			return fmt.Errorf("read upgrade response: %w", err)
		}
	}
}

// readText returns the payload of the next text message, answering
// websocket pings on the way. The payload is valid until the next read.
func (w *hsWorker) readText(conn net.Conn) ([]byte, error) {
	for {
		op, payload, err := w.readFrame(conn)
		if err != nil {
			return nil, err
		}
		switch op {
		case 0x1:
			return payload, nil
		case 0x8:
			return nil, errors.New("connection closed by the server")
		case 0x9:
			if err := writePong(conn, payload); err != nil {
				return nil, err
			}
		case 0xa:
		default:
			return nil, fmt.Errorf("unexpected websocket opcode %#x", op)
		}
	}
}

// readFrame reads one complete, unfragmented, unmasked server frame.
func (w *hsWorker) readFrame(conn net.Conn) (op byte, payload []byte, err error) {
	for {
		op, payload, n, ok, err := parseFrame(w.buf[w.off:w.n])
		if err != nil {
			return 0, nil, err
		}
		if ok {
			w.off += n
			return op, payload, nil
		}
		if err := w.fill(conn); err != nil {
			return 0, nil, err
		}
	}
}

// parseFrame decodes the server frame at the start of b. ok is false when b
// does not yet hold the whole frame; n is the frame's length.
func parseFrame(b []byte) (op byte, payload []byte, n int, ok bool, err error) {
	if len(b) < 2 {
		return 0, nil, 0, false, nil
	}
	if b[0]&0x80 == 0 || b[0]&0x0f == 0 {
		return 0, nil, 0, false, errors.New("fragmented websocket message")
	}
	if b[0]&0x70 != 0 {
		return 0, nil, 0, false, errors.New("websocket frame with reserved bits set")
	}
	if b[1]&0x80 != 0 {
		return 0, nil, 0, false, errors.New("masked server frame")
	}
	op = b[0] & 0x0f
	size, hdr := uint64(b[1]&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, false, nil
		}
		size, hdr = uint64(b[2])<<8|uint64(b[3]), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, false, nil
		}
		size, hdr = 0, 10
		for _, c := range b[2:10] {
			size = size<<8 | uint64(c)
		}
	}
	if size > hsBufSize {
		return 0, nil, 0, false, errFrameTooLarge
	}
	n = hdr + int(size)
	if len(b) < n {
		return 0, nil, 0, false, nil
	}
	return op, b[hdr:n], n, true, nil
}

// writePong answers a websocket ping carrying p (at most 125 bytes).
func writePong(conn net.Conn, p []byte) error {
	var f [2 + 4 + 125]byte
	f[0], f[1] = 0x8a, 0x80|byte(len(p))
	copy(f[2:6], maskKey[:])
	for i, c := range p {
		f[6+i] = c ^ maskKey[i%4]
	}
	if _, err := conn.Write(f[:6+len(p)]); err != nil {
		return fmt.Errorf("write pong: %w", err)
	}
	return nil
}

// run loops handshakes until ctx is done or end has passed,
// recording each success's latency in lat and each failure in errs.
func (w *hsWorker) run(ctx context.Context, next func() int, end time.Time, lat []time.Duration, errs map[string]int) []time.Duration {
	for ctx.Err() == nil {
		i := next()
		t := time.Now()
		err := w.handshake(ctx, i, i)
		done := time.Now()
		// The connection's deadline can pass a moment before ctx is marked
		// done: either way the run is over.
		if ctx.Err() != nil || !done.Before(end) {
			break // cut short by the end of the run: not counted
		}
		if err != nil {
			errs[errClass(err)]++
			continue
		}
		lat = append(lat, done.Sub(t))
	}
	return lat
}
