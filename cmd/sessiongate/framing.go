package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
)

// A request with both Content-Length and Transfer-Encoding is refused with
// 400 and its connection closed (RFC 9112 §6.1: it "ought to be handled as
// an error"; a proxy in front that takes the other length would let a
// request be smuggled past it). net/http takes such a request as chunked and
// deletes its Content-Length before any handler runs, so the connection is
// wrapped to see the request heads as they are read: it follows the
// requests' framing (Content-Length bodies, chunked bodies) to find each
// head, and records the first that carried both fields. The handler then
// refuses that request, counted in the same order.
//
// The tracker only ever refuses a request it positively saw; on anything it
// does not follow (a line past the header limit, a malformed chunk size, an
// unsupported transfer coding: all of which net/http refuses itself, closing
// the connection) it stops looking at the connection.

// framingListener wraps each accepted connection in a framingConn.
type framingListener struct{ net.Listener }

// Accept accepts a connection and wraps it.
func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
}

// Tracker states.
const (
	inHead      = iota // reading a request head, line by line
	inBody             // skipping remaining bytes of a Content-Length body
	inChunkSize        // reading a chunk-size line
	inChunkData        // skipping remaining bytes of chunk data
	inChunkEnd         // reading the CRLF after chunk data
	inTrailer          // reading trailer lines, up to the empty one
	untracked          // no longer followed
)

// maxTrackedLine bounds the partial line kept: net/http refuses a head past
// maxHeaderBytes (plus its 4 KiB slack) and closes the connection.
const maxTrackedLine = maxHeaderBytes + 4096

// framingConn is an accepted connection whose request heads are looked at
// as net/http reads them.
type framingConn struct {
	net.Conn

	mu        sync.Mutex
	state     int
	line      []byte // a line not yet complete
	remaining int64  // bytes left of a body or a chunk
	started   bool   // the head's request line was read
	http10    bool   // the head is HTTP/1.0: Transfer-Encoding is ignored
	length    int64  // the head's Content-Length, -1 for none
	hasCL     bool
	hasTE     bool
	chunked   bool
	heads     int // heads read
	smuggled  int // 1 + the index of the first head with both fields; 0: none
	served    int // requests handed to the handler
}

// SyscallConn gives the descriptor of the connection, so that a websocket
// it is upgraded to is watched by the engine's poller like any other.
func (c *framingConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, syscall.EINVAL
	}
	return sc.SyscallConn()
}

// CloseWrite half-closes the connection, as net/http does before closing.
func (c *framingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Read reads from the connection and follows the framing of what it read.
func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if c.state != untracked {
			c.feed(p[:n])
		}
		c.mu.Unlock()
	}
	return n, err
}

// nextRequest counts one more request handed to the handler and reports
// whether its head carried both Content-Length and Transfer-Encoding.
func (c *framingConn) nextRequest() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.served++
	return c.smuggled != 0 && c.served >= c.smuggled
}

// feed follows the framing through b; c.mu is held.
func (c *framingConn) feed(b []byte) {
	for len(b) > 0 && c.state != untracked {
		switch c.state {
		case inBody, inChunkData:
			n := min(int64(len(b)), c.remaining)
			b = b[n:]
			c.remaining -= n
			if c.remaining == 0 {
				if c.state == inBody {
					c.state = inHead
				} else {
					c.state = inChunkEnd
				}
			}
		default:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				if len(c.line)+len(b) > maxTrackedLine {
					c.stop()
					return
				}
				c.line = append(c.line, b...)
				return
			}
			line := b[:i]
			if len(c.line) > 0 {
				c.line = append(c.line, line...)
				line = c.line
			}
			b = b[i+1:]
			c.onLine(bytes.TrimSuffix(line, []byte{'\r'}))
			c.line = c.line[:0]
		}
	}
}

// stop gives up following the connection.
func (c *framingConn) stop() {
	c.state = untracked
	c.line = nil
}

// onLine handles one complete line, without its line ending.
func (c *framingConn) onLine(line []byte) {
	switch c.state {
	case inHead:
		c.headLine(line)
	case inChunkSize:
		size, _, _ := bytes.Cut(line, []byte{';'})
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		switch {
		case err != nil || n < 0:
			c.stop()
		case n == 0:
			c.state = inTrailer
		default:
			c.state, c.remaining = inChunkData, n
		}
	case inChunkEnd:
		if len(line) != 0 {
			c.stop()
			return
		}
		c.state = inChunkSize
	case inTrailer:
		if len(line) == 0 {
			c.state = inHead
		}
	}
}

// headLine handles a line of a request head.
func (c *framingConn) headLine(line []byte) {
	if !c.started {
		if len(line) == 0 {
			return // net/http skips empty lines before a request
		}
		c.started, c.http10 = true, bytes.HasSuffix(line, []byte("HTTP/1.0"))
		c.length, c.hasCL, c.hasTE, c.chunked = -1, false, false, false
		return
	}
	if len(line) > 0 {
		name, value, _ := bytes.Cut(line, []byte{':'})
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				c.stop() // net/http refuses it
				return
			}
			c.hasCL, c.length = true, n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			c.hasTE, c.chunked = true, bytes.EqualFold(value, []byte("chunked"))
		}
		return
	}
	// The end of the head.
	c.heads++
	c.started = false
	if c.hasCL && c.hasTE && c.smuggled == 0 {
		c.smuggled = c.heads
	}
	switch {
	case c.hasTE && !c.http10:
		if !c.chunked {
			c.stop() // net/http answers 501 and closes
			return
		}
		c.state = inChunkSize
	case c.length > 0:
		c.state, c.remaining = inBody, c.length
	}
}

// connKey is the context key of the framingConn a request came on.
type connKey struct{}

// withConn is the http.Server's ConnContext: it keeps the connection for
// refuseSmuggled.
func withConn(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, connKey{}, fc)
	}
	return ctx
}

// refuseSmuggled answers 400 and closes the connection for a request whose
// head carried both Content-Length and Transfer-Encoding; it passes the
// others to next.
func refuseSmuggled(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fc, ok := r.Context().Value(connKey{}).(*framingConn); ok && fc.nextRequest() {
			w.Header().Set("Connection", "close")
			http.Error(w, "Content-Length with Transfer-Encoding", http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}
