package load

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"

	"golang.org/x/sys/unix"
)

// The handshake mode's client is written for low CPU per connection, since
// it shares this machine's cores with the server it measures, as wrk is: a
// few event loops, each on one OS thread with its own epoll set, drive
// non-blocking sockets through the handshake (hsloop.go). Every request is a
// byte slice built once per credential, the upgrade response and the first
// frames are read into one buffer per connection slot, and frames are parsed
// only as far as the Engine.IO open packet and the Socket.IO CONNECT reply
// need. There is no net/http, no Go network poller and no allocation per
// handshake.

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
	dst      unix.SockaddrInet4
	srcs     []unix.SockaddrInet4 // source addresses, port 0, used round-robin
}

// newHSTemplate prepares the requests to rawURL (an http:// URL with path
// and query, whose host is an IPv4 address or a name for one) for each
// credential's Cookie header, sent from the IPv4 sources (127.0.0.1 when
// there are none).
func newHSTemplate(rawURL string, sources []netip.Addr, creds []Credential, auth string) (*hsTemplate, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", rawURL, err)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", addr, err)
	}
	dst := unix.SockaddrInet4{Port: ta.Port}
	copy(dst.Addr[:], ta.IP.To4())
	if len(sources) == 0 {
		sources = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	var srcs []unix.SockaddrInet4
	for _, a := range sources {
		if !a.Is4() {
			return nil, fmt.Errorf("source address %s is not IPv4", a)
		}
		srcs = append(srcs, unix.SockaddrInet4{Addr: a.As4()})
	}
	sum := sha1.Sum([]byte(wsKey + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	t := &hsTemplate{
		accept:  []byte(base64.StdEncoding.EncodeToString(sum[:])),
		connect: maskedTextFrame([]byte("40" + auth)),
		pong:    maskedTextFrame([]byte("3")),
		dst:     dst,
		srcs:    srcs,
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

// parseUpgrade checks the server's response to the upgrade request at the
// start of b: a 101 with the Sec-WebSocket-Accept value accept. ok is false
// while b does not yet hold the whole head; n is the head's length.
func parseUpgrade(b, accept []byte) (n int, ok bool, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) >= hsBufSize {
			return 0, false, errors.New("upgrade response too large")
		}
		return 0, false, nil
	}
	head := b[:end]
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
		line, _, _ := bytes.Cut(head, []byte("\r\n"))
		return 0, false, fmt.Errorf("upgrade refused: %.60q", line)
	}
	if !bytes.Contains(head, accept) {
		return 0, false, errors.New("upgrade response lacks the expected Sec-WebSocket-Accept")
	}
	return end + 4, true, nil
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

// appendPong appends a masked pong frame answering a websocket ping
// carrying p (at most 125 bytes, as control frames are).
func appendPong(b, p []byte) []byte {
	b = append(b, 0x8a, 0x80|byte(len(p)&0x7f))
	b = append(b, maskKey[:]...)
	for i, c := range p {
		b = append(b, c^maskKey[i%4])
	}
	return b
}
