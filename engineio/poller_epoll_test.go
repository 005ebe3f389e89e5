//go:build linux && !sessiongate_noepoll

package engineio

import (
	"net"
	"testing"
)

// watchedConn returns the server side of a TCP connection, watched by
// srv's poller, and its client side.
func watchedConn(t *testing.T, srv *Server, ln net.Listener) (*wsConn, net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := &wsConn{srv: srv, conn: conn, sock: &Socket{srv: srv}}
	if err := srv.watch(c); err != nil {
		t.Fatal(err)
	}
	return c, client
}

// TestPollerStaleEvent checks that an event epoll returned for a connection
// closed since cannot start a reader for a new connection that reused its
// descriptor number: that connection would get two concurrent readers (that
// one and the one its own armed event starts), racing on its frame reader.
func TestPollerStaleEvent(t *testing.T) {
	srv := NewServer(Options{})
	t.Cleanup(func() { srv.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	old, oldClient := watchedConn(t, srv, ln)
	fd, key := old.fd, old.key
	old.teardown()
	oldClient.Close()
	var reused *wsConn
	for range 20 { // the kernel hands out the lowest free number
		c, client := watchedConn(t, srv, ln)
		defer client.Close()
		if c.fd == fd {
			reused = c
			break
		}
		c.teardown()
	}
	if reused == nil {
		t.Skipf("descriptor %d was not reused", fd)
	}
	defer reused.teardown()

	p := srv.poller
	p.mu.Lock()
	started := p.dispatchLocked(key)
	p.mu.Unlock()
	if started {
		t.Fatalf("a stale event for descriptor %d started a reader for the connection that reused it", fd)
	}
	if reused.key == key {
		t.Fatalf("the new registration of descriptor %d has the old key %d", fd, key)
	}
}
