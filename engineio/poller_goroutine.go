//go:build !linux || sessiongate_noepoll

package engineio

import (
	"errors"
	"net"
)

// poller gives each websocket connection a reading goroutine: the
// portable fallback for the epoll poller.
type poller struct{}

func newPoller() (*poller, error) { return &poller{}, nil }

func (p *poller) watch(c *wsConn) error {
	go c.readLoop()
	return nil
}

func (p *poller) forget(*wsConn) {}

func (p *poller) close() {}

// writeNonBlocking is never called here: connections have no descriptor
// (c.rc is nil), so their frames are written by a flusher goroutine.
func (c *wsConn) writeNonBlocking(net.Buffers) (int, error) {
	return 0, errors.New("engineio: no non-blocking writes without the epoll poller")
}

// writeBlocking is never called here: connections have no descriptor.
func (c *wsConn) writeBlocking(net.Buffers) error {
	return errors.New("engineio: no raw writes without the epoll poller")
}
