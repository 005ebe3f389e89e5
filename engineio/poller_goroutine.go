//go:build !linux || sessiongate_noepoll

package engineio

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
