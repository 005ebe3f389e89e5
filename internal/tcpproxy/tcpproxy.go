// Package tcpproxy is a TCP proxy for tests that must lose a connection
// the way a network does: Cut closes the client's side of every
// connection at once (optionally leaving the server's side open and
// silent, a half-open connection the server only notices at its ping
// timeout), Pause makes new connections fail until Resume, and Retarget
// sends the next ones elsewhere (a load balancer that picks another
// node).
package tcpproxy

import (
	"io"
	"net"
	"sync"
)

// Proxy forwards the connections made to Addr to a target address. Its
// methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	pairs  map[*pair]struct{}
	paused bool
	closed bool
	held   []net.Conn // server sides left open by Cut(false)
}

type pair struct{ client, server net.Conn }

// New listens on 127.0.0.1 and forwards to target ("host:port").
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, pairs: make(map[*pair]struct{})}
	go p.accept()
	return p, nil
}

// Addr returns the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		paused := p.paused || p.closed
		p.mu.Unlock()
		if paused {
			c.Close()
			continue
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		s, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		pr := &pair{c, s}
		p.mu.Lock()
		if p.paused || p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			continue
		}
		p.pairs[pr] = struct{}{}
		p.mu.Unlock()
		go p.pipe(pr, c, s)
		go p.pipe(pr, s, c)
	}
}

func (p *Proxy) pipe(pr *pair, dst, src net.Conn) {
	io.Copy(dst, src)
	p.mu.Lock()
	_, live := p.pairs[pr]
	delete(p.pairs, pr)
	p.mu.Unlock()
	if live {
		pr.client.Close()
		pr.server.Close()
	}
}

// Cut ends every connection at once, as a network failure: the client's
// side is closed; the server's is closed too with closeServer, or else
// left open and silent (nothing more is forwarded either way).
func (p *Proxy) Cut(closeServer bool) {
	p.mu.Lock()
	pairs := p.pairs
	p.pairs = make(map[*pair]struct{})
	for pr := range pairs {
		if !closeServer {
			p.held = append(p.held, pr.server)
		}
	}
	p.mu.Unlock()
	for pr := range pairs {
		// Left open, the server's side is read no more once the pipes
		// end on the client's close: the server sees nothing.
		if closeServer {
			pr.server.Close()
		}
		pr.client.Close()
	}
}

// Retarget forwards the connections made from now on to target; those
// open stay where they are.
func (p *Proxy) Retarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Pause makes new connections fail (accepted and closed at once) until
// Resume.
func (p *Proxy) Pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

// Resume accepts connections again.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	pairs, held := p.pairs, p.held
	p.pairs, p.held = nil, nil
	p.mu.Unlock()
	for pr := range pairs {
		pr.client.Close()
		pr.server.Close()
	}
	for _, c := range held {
		c.Close()
	}
	return p.ln.Close()
}
