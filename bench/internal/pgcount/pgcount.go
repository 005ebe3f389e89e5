// Package pgcount is a PostgreSQL wire-protocol proxy that counts the
// statements a server under test executes against one table.
//
// It is how the benchmarks count session-table statements per check interval
// without pg_stat_statements (which needs a server restart to load), and the
// same way for every server whatever its driver: it reads the frontend
// messages and counts each simple Query, and each Execute of an extended-
// protocol portal, whose SQL text names the table (as a quoted identifier).
// Prepared statements executed many times are counted at every Execute.
// Connections that ask for TLS are passed through uncounted: point servers at
// the proxy with sslmode=disable.
package pgcount

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
)

// Proxy forwards connections to a PostgreSQL server and counts statements.
// Its methods are safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string
	marker   string // the quoted table name looked for in SQL text

	mu     sync.Mutex
	counts map[string]int64 // SQL text of matching statements → executions
	total  int64            // all statements, matching or not
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// Listen starts a proxy on a free loopback port forwarding to upstream
// (host:port) and counting statements that name table.
func Listen(upstream, table string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pgcount: %w", err)
	}
	p := &Proxy{
		ln:       ln,
		upstream: upstream,
		marker:   `"` + strings.ReplaceAll(table, `"`, `""`) + `"`,
		counts:   map[string]int64{},
		conns:    map[net.Conn]struct{}{},
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Snapshot is the count of statements at one moment.
type Snapshot struct {
	Table int64            // statements naming the table
	Total int64            // all statements
	BySQL map[string]int64 // statements naming the table, by SQL text
}

// Snapshot returns the counts so far.
func (p *Proxy) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Snapshot{Total: p.total, BySQL: make(map[string]int64, len(p.counts))}
	for q, n := range p.counts {
		s.BySQL[q] = n
		s.Table += n
	}
	return s
}

// Sub returns the counts in s that were not in before.
func (s Snapshot) Sub(before Snapshot) Snapshot {
	d := Snapshot{Table: s.Table - before.Table, Total: s.Total - before.Total, BySQL: map[string]int64{}}
	for q, n := range s.BySQL {
		if n -= before.BySQL[q]; n != 0 {
			d.BySQL[q] = n
		}
	}
	return d
}

// Top returns the statements of s by decreasing count.
func (s Snapshot) Top() []string {
	qs := make([]string, 0, len(s.BySQL))
	for q := range s.BySQL {
		qs = append(qs, q)
	}
	sort.Slice(qs, func(i, j int) bool { return s.BySQL[qs[i]] > s.BySQL[qs[j]] })
	return qs
}

// Close stops the proxy and closes every proxied connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.proxy(c)
		}()
	}
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) proxy(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer server.Close()
	p.track(client, true)
	p.track(server, true)
	defer p.track(client, false)
	defer p.track(server, false)

	done := make(chan struct{})
	go func() {
		io.Copy(client, server)
		client.Close()
		close(done)
	}()
	p.forward(server, client)
	server.Close()
	<-done
}

// forward copies client → server, counting statements on the way.
func (p *Proxy) forward(server io.Writer, client io.Reader) {
	r := bufio.NewReader(client)
	w := bufio.NewWriter(server)
	defer w.Flush()
	// The first message has no type byte: a startup message, a cancel
	// request, or a request for encryption, whose reply may start an
	// encrypted stream that cannot be parsed.
	body, err := readUntyped(r, w)
	if err != nil {
		return
	}
	if err := w.Flush(); err != nil {
		return
	}
	if len(body) >= 4 {
		if code := binary.BigEndian.Uint32(body); code == 80877103 || code == 80877104 {
			io.Copy(server, r)
			return
		}
	}
	stmts := map[string]string{}   // prepared statement name → SQL
	portals := map[string]string{} // portal name → SQL
	for {
		typ, body, err := readTyped(r, w)
		if err != nil {
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
		switch typ {
		case 'Q':
			q, _ := cstring(body)
			p.count(q)
		case 'P':
			name, rest := cstring(body)
			q, _ := cstring(rest)
			stmts[name] = q
		case 'B':
			portal, rest := cstring(body)
			stmt, _ := cstring(rest)
			portals[portal] = stmts[stmt]
		case 'E':
			portal, _ := cstring(body)
			p.count(portals[portal])
		}
	}
}

func (p *Proxy) count(sql string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	if strings.Contains(sql, p.marker) {
		p.counts[strings.Join(strings.Fields(sql), " ")]++
	}
}

const maxMessage = 64 << 20

// readUntyped reads one length-prefixed message without a type byte,
// forwards it to w and returns its body.
func readUntyped(r *bufio.Reader, w io.Writer) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 4 || n > maxMessage {
		return nil, errors.New("bad startup message length")
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	if _, err := w.Write(msg); err != nil {
		return nil, err
	}
	return msg[4:], nil
}

// readTyped reads one message (type byte, length, body), forwards it to w
// and returns its type and body.
func readTyped(r *bufio.Reader, w io.Writer) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n > maxMessage {
		return 0, nil, errors.New("bad message length")
	}
	msg := make([]byte, 1+n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(r, msg[5:]); err != nil {
		return 0, nil, err
	}
	if _, err := w.Write(msg); err != nil {
		return 0, nil, err
	}
	return hdr[0], msg[5:], nil
}

// cstring splits b at its first NUL.
func cstring(b []byte) (string, []byte) {
	i := 0
	for i < len(b) && b[i] != 0 {
		i++
	}
	if i == len(b) {
		return string(b), nil
	}
	return string(b[:i]), b[i+1:]
}
