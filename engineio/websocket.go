package engineio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/sessiongate/sessiongate/internal/gopool"
)

// wsConn is one websocket connection: the transport of a session, or a
// probe for its upgrade. Reading is driven by the poller (one reader at a
// time); writing by a flusher goroutine that runs only while frames are
// queued.
type wsConn struct {
	srv  *Server
	sock *Socket // set before reading starts, never changed
	conn net.Conn
	rc   syscall.RawConn // epoll: the connection's descriptor; nil otherwise
	fd   int
	key  uint64 // epoll: the poller's key for this registration

	frameReader // owned by the current reader

	mu        sync.Mutex
	out       []outFrame
	queued    int64 // bytes of the frames in out and of those being written
	pong      int   // 1 + the index in out of a queued pong control frame; 0: none
	eioPong   int   // 1 + the index in out of a queued Engine.IO pong; 0: none
	slow      bool  // closed for exceeding Options.MaxBufferedBytes
	closeCode uint16
	flushing  bool // a flusher is running
	reading   bool // a reader is handling frames; it flushes when done
	closing   bool // write the queue, then a close frame, then close
	dead      bool // the connection is closed

	// pre is the upgrade response of a new session, written by the first
	// write together with the open packet: one system call instead of two.
	// Owned by the writer (the one holding flushing).
	pre []byte
}

// heldUpgrade is the ResponseWriter given to the upgrader: it hijacks the
// connection but keeps what the upgrader writes to it (the 101 response, or
// a refusal) in held, for the caller to write.
type heldUpgrade struct {
	http.ResponseWriter
	held bytes.Buffer
}

// Hijack hijacks the underlying connection; the returned writer writes to
// h.held.
func (h *heldUpgrade) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return conn, rw, err
	}
	rw.Writer.Reset(&h.held)
	return conn, rw, nil
}

// writeHeld writes what the upgrader answered, now.
func writeHeld(conn net.Conn, h *heldUpgrade) error {
	if conn == nil || h.held.Len() == 0 {
		return nil
	}
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := conn.Write(h.held.Bytes())
	return err
}

// outFrame is a queued server frame, or, when then is set, a function
// called once the frames queued before it are written (or dropped).
//
// A frame's payload is typ (when not zero: the Engine.IO packet type of a
// text frame) followed by data. data is shared, never modified: a message
// sent to many sockets is queued by all of them without a copy.
type outFrame struct {
	op   byte
	typ  byte
	data []byte
	then func()
}

// size is the length of the frame's payload.
func (f *outFrame) size() int64 {
	if f.typ != 0 {
		return 1 + int64(len(f.data))
	}
	return int64(len(f.data))
}

// queuedSize is the payload bytes of out.
func queuedSize(out []outFrame) int64 {
	var n int64
	for i := range out {
		n += out[i].size()
	}
	return n
}

// largePayload is the payload size from which a frame's data is written
// from where it lies (writev) instead of being copied into the write
// buffer beside the headers.
const largePayload = 1024

var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// frameBatch is frames encoded for one vectored write: headers and small
// payloads in a pooled buffer, large payloads referenced where they lie.
type frameBatch struct {
	bp    *[]byte     // the pooled buffer the segments of bufs point into
	bufs  net.Buffers // what to write, in order
	start int         // start in *bp of what is not yet in bufs
}

// newBatch returns an empty batch that starts with pre.
func newBatch(pre []byte) *frameBatch {
	bp := writeBufPool.Get().(*[]byte)
	*bp = append((*bp)[:0], pre...)
	return &frameBatch{bp: bp}
}

// add appends frame f.
func (fb *frameBatch) add(f *outFrame) {
	b := appendFrameHeader(*fb.bp, f.op, f.size())
	if f.typ != 0 {
		b = append(b, f.typ)
	}
	if len(f.data) < largePayload {
		*fb.bp = append(b, f.data...)
		return
	}
	// Appending to the buffer may move it later; what bufs holds of it
	// stays valid, as earlier bytes are never written again.
	*fb.bp = b
	fb.cut()
	fb.bufs = append(fb.bufs, f.data)
}

// cut moves what the buffer holds past start into bufs.
func (fb *frameBatch) cut() {
	if b := *fb.bp; len(b) > fb.start {
		fb.bufs = append(fb.bufs, b[fb.start:len(b):len(b)])
		fb.start = len(b)
	}
}

// take returns what to write and empties the batch (keeping its buffer).
func (fb *frameBatch) take() net.Buffers {
	fb.cut()
	bufs := fb.bufs
	fb.bufs = nil
	return bufs
}

// release returns the batch's buffer to its pool; nothing taken from the
// batch may be used after.
func (fb *frameBatch) release() {
	putWriteBuf(fb.bp)
	fb.bp = nil
}

// buffersLen is the number of bytes in bufs.
func buffersLen(bufs net.Buffers) int64 {
	var n int64
	for _, b := range bufs {
		n += int64(len(b))
	}
	return n
}

// advance drops the first n bytes of bufs.
func advance(bufs net.Buffers, n int) net.Buffers {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 && n > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// serveWebsocket opens a session over websocket, or a probe to upgrade the
// polling session sid.
// A new session's pending slot is under key.
func (srv *Server) serveWebsocket(w http.ResponseWriter, r *http.Request, q url.Values, sid, key string) {
	var s *Socket
	if sid != "" {
		s = srv.lookup(sid)
		if s == nil {
			writeError(w, errSessionUnknown)
			return
		}
		if !srv.verify(w, r, s) {
			return
		}
	}
	hw := &heldUpgrade{ResponseWriter: w}
	conn, rw, _, err := srv.upgrader.Upgrade(r, hw)
	if err != nil {
		if s == nil {
			srv.releaseKey(key)
		}
		// The upgrader's answer to the client; then the hijacked
		// connection is closed, as no one else will.
		if conn != nil {
			_ = writeHeld(conn, hw)
			_ = conn.Close()
		}
		return
	}
	c := &wsConn{srv: srv, conn: conn}
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		c.in = append(make([]byte, 0, n), b...)
	}
	rw = nil

	if s == nil {
		s = srv.newSocket(r, q, key)
		s.ws = c
		c.sock = s
		// Hold the flusher until OnConnection has run: the handshake
		// packet goes first, then what the handler sent.
		c.flushing = true
		c.pre = hw.held.Bytes()
		c.send(srv.openPacket(s, `[]`))
		srv.register(s)
		if srv.opts.OnConnection != nil {
			srv.opts.OnConnection(s)
		}
		// This goroutine is the connection's until the handler returns:
		// it writes the upgrade response and what is queued itself.
		c.flush()
	} else {
		if err := writeHeld(conn, hw); err != nil {
			_ = conn.Close()
			return
		}
		c.sock = s
		s.mu.Lock()
		ok := s.state == stateOpen && s.ws == nil && s.probe == nil
		if ok {
			s.probe = c
			s.deadline = srv.now() + int64(srv.opts.UpgradeTimeout)
		}
		s.mu.Unlock()
		if !ok {
			// Upgraded, upgrading or closing already: refused the way the
			// reference server does, with a close once connected.
			c.closeAfterFlush(closeNormal)
			return
		}
	}
	if len(c.in) > 0 && !c.handle(nil) {
		return
	}
	if err := srv.watch(c); err != nil {
		c.teardown()
		c.sock.transportGone(c, reasonTransportError)
	}
}

// watch hands c to the poller, creating it on first use.
func (srv *Server) watch(c *wsConn) error {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		return errServerClosed
	}
	if srv.poller == nil {
		p, err := newPoller()
		if err != nil {
			srv.mu.Unlock()
			return err
		}
		srv.poller = p
	}
	p := srv.poller
	srv.mu.Unlock()
	return p.watch(c)
}

var errServerClosed = errors.New("engineio: server closed")

// send queues pkts as frames. It reports false once the connection is
// closing, or when the frames would take the bytes queued past
// Options.MaxBufferedBytes: the connection is then closed as slow.
//
// A pong is not queued behind another that is still queued: that one
// answers the latest ping instead (RFC 6455 §5.5.3 allows answering only
// the last of several pings), so a ping flood queues at most one pong.
//
// With no flusher running and no reader that will flush, a connection the
// poller watches is written from the calling goroutine without blocking
// (writeInline): a broadcast to many idle connections starts no goroutine
// per connection. Others get a flusher goroutine.
func (c *wsConn) send(pkts ...packet) bool {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		return false
	}
	for _, p := range pkts {
		f := outFrame{op: opBinary, data: p.data}
		if !p.binary {
			f.op, f.typ = opText, p.typ
		}
		if !c.queueLocked(f, &c.eioPong, !p.binary && p.typ == pktPong) {
			c.mu.Unlock()
			return false
		}
	}
	if c.flushing || c.reading || c.rc == nil || hasThen(c.out) {
		c.kickLocked()
		c.mu.Unlock()
		return true
	}
	c.flushing = true
	out := c.takeLocked()
	c.mu.Unlock()
	c.writeInline(out)
	return true
}

// queueLocked appends f to the queue; when coalesce is set and a frame
// whose index *slot records is still queued, f replaces it instead. It
// reports false, having dropped the queue and started closing the
// connection as slow, when the queue would pass Options.MaxBufferedBytes.
func (c *wsConn) queueLocked(f outFrame, slot *int, coalesce bool) bool {
	if coalesce && *slot > 0 {
		old := &c.out[*slot-1]
		c.queued += f.size() - old.size()
		*old = f
		return true
	}
	c.queued += f.size()
	if c.queued > c.srv.opts.MaxBufferedBytes {
		c.slowLocked()
		return false
	}
	c.out = append(c.out, f)
	if coalesce {
		*slot = len(c.out)
	}
	return true
}

// slowLocked closes c as a slow client: what is queued is dropped and the
// connection closed without a close frame, as the client is not reading.
// It runs from a goroutine of its own, as the caller may hold the socket's
// lock, which transportGone takes.
func (c *wsConn) slowLocked() {
	c.slow, c.closing = true, true
	runThen(c.takeLocked())
	gopool.Go(func() {
		c.teardown()
		c.sock.transportGone(c, reasonSlowClient)
	})
}

// takeLocked returns the queued frames and empties the queue; the bytes
// stay counted in c.queued until written (see written).
func (c *wsConn) takeLocked() []outFrame {
	out := c.out
	c.out, c.pong, c.eioPong = nil, 0, 0
	return out
}

// written uncounts the n bytes of frames that were written or dropped.
func (c *wsConn) written(n int64) {
	c.mu.Lock()
	c.queued -= n
	c.mu.Unlock()
}

// hasThen reports whether out holds a function to call after a write.
func hasThen(out []outFrame) bool {
	for _, f := range out {
		if f.then != nil {
			return true
		}
	}
	return false
}

// writeInline writes out, which holds no then entry, with non-blocking
// writes from the calling goroutine; the caller holds the flushing token
// and not c.mu. What the socket buffer cannot take at once is handed, with
// the token, to a flusher goroutine, which writes it before anything queued
// meanwhile; so is the token if frames were queued or a close became due
// during the write.
func (c *wsConn) writeInline(out []outFrame) {
	fb := newBatch(nil)
	for i := range out {
		fb.add(&out[i])
	}
	size := queuedSize(out)
	bufs := fb.take()
	n, err := c.writeNonBlocking(bufs)
	if err != nil {
		fb.release()
		c.written(size)
		// The caller may hold the socket's lock, which transportGone
		// takes: the connection is torn down from a goroutine of its own.
		gopool.Go(c.writeFailed)
		return
	}
	if int64(n) < buffersLen(bufs) {
		rest := advance(bufs, n)
		gopool.Go(func() { c.flushRest(fb, rest, size) })
		return
	}
	fb.release()
	c.mu.Lock()
	c.queued -= size
	if len(c.out) == 0 && (!c.closing || c.dead) {
		c.flushing = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	gopool.Go(c.flush)
}

// flushRest writes rest, what an inline write left of the batch fb, with
// blocking writes, then goes on as a flusher; it holds the flushing token.
// size is the payload bytes of the batch's frames.
func (c *wsConn) flushRest(fb *frameBatch, rest net.Buffers, size int64) {
	err := c.writeNow(rest)
	fb.release()
	c.written(size)
	if err != nil {
		c.writeFailed()
		return
	}
	c.flush()
}

// writeFailed tears the connection down after a write error; the caller
// holds the flushing token.
func (c *wsConn) writeFailed() {
	c.teardown()
	c.mu.Lock()
	c.flushing = false
	reason := reasonTransportError
	if c.slow {
		reason = reasonSlowClient
	}
	c.mu.Unlock()
	c.sock.transportGone(c, reason)
}

// putWriteBuf returns a write buffer to its pool unless it grew large.
func putWriteBuf(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		*bp = (*bp)[:0]
		writeBufPool.Put(bp)
	}
}

// control queues a control frame. A pong replaces one still queued.
func (c *wsConn) control(op byte, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.dead {
		return
	}
	if c.queueLocked(outFrame{op: op, data: data}, &c.pong, op == opPong) {
		c.kickLocked()
	}
}

// afterWrite calls fn once the frames queued so far are written, or at
// once if the connection is closing.
func (c *wsConn) afterWrite(fn func()) {
	c.mu.Lock()
	if c.closing || c.dead {
		c.mu.Unlock()
		fn()
		return
	}
	c.out = append(c.out, outFrame{then: fn})
	c.kickLocked()
	c.mu.Unlock()
}

// kickLocked starts a flusher goroutine, unless one runs or a reader will
// flush.
func (c *wsConn) kickLocked() {
	if !c.flushing && !c.reading {
		c.flushing = true
		gopool.Go(c.flush)
	}
}

// flushHere writes what is queued from the calling reader goroutine, unless
// a flusher already runs: answers go out before the next frame is handled,
// without a goroutine of their own.
func (c *wsConn) flushHere(done bool) {
	c.mu.Lock()
	if done {
		c.reading = false
	}
	run := !c.flushing && (len(c.out) > 0 || c.closing && !c.dead)
	if run {
		c.flushing = true
	}
	c.mu.Unlock()
	if run {
		c.flush()
	}
}

// closeAfterFlush makes the flusher write what is queued, then a close
// frame with code, then close the connection.
func (c *wsConn) closeAfterFlush(code uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.dead {
		return
	}
	c.closing = true
	c.closeCode = code
	c.kickLocked()
}

// flush writes queued frames until none are left, then the close frame if
// one is due. It runs in a goroutine started by kickLocked, or in a reader
// (flushHere); c.flushing is set by whoever starts it.
func (c *wsConn) flush() {
	for {
		c.mu.Lock()
		out := c.takeLocked()
		if len(out) == 0 {
			last := c.closing && !c.dead && !c.slow
			code := c.closeCode
			if !last {
				c.flushing = false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			out = []outFrame{{op: opClose, data: binary.BigEndian.AppendUint16(nil, code)}}
			_ = c.write(out)
			c.teardown()
			c.mu.Lock()
			c.flushing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		err := c.write(out)
		c.written(queuedSize(out))
		if err != nil {
			c.writeFailed()
			return
		}
	}
}

// write writes out, calling each then entry once the frames before it are
// written.
func (c *wsConn) write(out []outFrame) error {
	fb := newBatch(c.pre)
	defer fb.release()
	c.pre = nil
	var err error
	for i := range out {
		f := &out[i]
		if f.then == nil {
			fb.add(f)
			continue
		}
		if bufs := fb.take(); len(bufs) > 0 {
			if err = c.writeNow(bufs); err != nil {
				runThen(out[i:])
				return err
			}
		}
		f.then()
	}
	if bufs := fb.take(); len(bufs) > 0 {
		err = c.writeNow(bufs)
	}
	return err
}

// writeNow writes bufs with a blocking, vectored write.
func (c *wsConn) writeNow(bufs net.Buffers) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if c.rc != nil {
		return c.writeBlocking(bufs)
	}
	_, err := bufs.WriteTo(c.conn)
	return err
}

// runThen calls the functions queued in out.
func runThen(out []outFrame) {
	for _, f := range out {
		if f.then != nil {
			f.then()
		}
	}
}

// teardown closes the connection now; it is safe to call more than once.
func (c *wsConn) teardown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.dead = true
	defer runThen(c.takeLocked())
	c.srv.forget(c)
	_ = c.conn.Close()
}

// stopped reports whether reading should stop.
func (c *wsConn) stopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead || c.closing
}

func (srv *Server) forget(c *wsConn) {
	srv.mu.Lock()
	p := srv.poller
	srv.mu.Unlock()
	if p != nil {
		p.forget(c)
	}
}

// handle parses data read from the connection and handles what it holds.
// It reports whether reading should go on.
func (c *wsConn) handle(data []byte) bool {
	c.mu.Lock()
	c.reading = true
	c.mu.Unlock()
	err := c.feed(data, c.sock.maxPayload(), c.onFrame)
	defer c.flushHere(true)
	if err == nil {
		return !c.stopped()
	}
	reason := reasonTransportError
	switch {
	case errors.Is(err, errPeerClosed):
		reason = reasonTransportClose
	case errors.Is(err, errFrameTooBig):
		c.closeAfterFlush(closeTooBig)
	case errors.Is(err, errParse):
		reason = reasonParseError
		c.closeAfterFlush(closeUnsupported)
	default:
		c.closeAfterFlush(closeProtocol)
	}
	c.sock.transportGone(c, reason)
	return false
}

// lost handles the end of the connection, or a read error.
func (c *wsConn) lost(err error) {
	c.teardown()
	reason := reasonTransportError
	if err == nil || errors.Is(err, io.EOF) {
		reason = reasonTransportClose
	}
	c.sock.transportGone(c, reason)
}

// readLoop reads c with a goroutine of its own: the fallback when c cannot
// be polled.
func (c *wsConn) readLoop() {
	buf := make([]byte, 4096)
	for {
		n, err := c.conn.Read(buf)
		if n > 0 && !c.handle(buf[:n]) {
			return
		}
		if err != nil {
			c.lost(err)
			return
		}
	}
}

var errPeerClosed = errors.New("engineio: websocket closed by peer")

// onFrame handles one message or control frame from the client.
func (c *wsConn) onFrame(op byte, payload []byte) error {
	switch op {
	case opPing:
		c.control(opPong, append([]byte(nil), payload...))
	case opPong:
	case opClose:
		code := closeNormal
		if len(payload) >= 2 {
			code = binary.BigEndian.Uint16(payload)
		}
		c.closeAfterFlush(code)
		return errPeerClosed
	case opText:
		p, err := decodePacket(payload)
		if err != nil {
			return err
		}
		p.data = append([]byte(nil), p.data...)
		return c.deliver(p)
	case opBinary:
		return c.deliver(packet{typ: pktMessage, binary: true, data: append([]byte(nil), payload...)})
	}
	return nil
}

// deliver passes p to the socket and writes any answer at once.
func (c *wsConn) deliver(p packet) error {
	if p.typ == pktMessage {
		// A message handler may take its time: what other goroutines
		// send meanwhile gets a flusher of its own.
		c.mu.Lock()
		c.reading = false
		c.mu.Unlock()
	}
	err := c.sock.onWebsocket(c, p)
	c.flushHere(false)
	return err
}

// onWebsocket handles a packet that arrived on c: the transport, or a probe.
func (s *Socket) onWebsocket(c *wsConn, p packet) error {
	s.mu.Lock()
	if s.probe == c {
		switch {
		case p.typ == pktPing && string(p.data) == "probe":
			c.send(packet{typ: pktPong, data: []byte("probe")})
			if !s.upgrading && s.poll != nil {
				s.releasePollLater()
			}
			s.upgrading = true
		case p.typ == pktUpgrade && s.upgrading:
			s.probe, s.upgrading = nil, false
			if wt := s.poll; wt != nil {
				// A client completes the upgrade only once its GET has
				// returned; this one came from elsewhere. It is refused
				// a little after the probe's answer is written, so that
				// the client sees them in that order.
				wt.upgraded = true
				s.poll = nil
				c.afterWrite(func() {
					time.AfterFunc(noopDelay, func() { close(wt.ch) })
				})
			}
			s.ws = c
			s.upgraded = s.srv.now()
			c.send(s.takeQueueLocked()...)
			if s.state == stateClosing {
				// Closed during the upgrade: what was queued goes over
				// the websocket, then the close frame.
				reason := s.reason
				s.mu.Unlock()
				s.end(reason, 0)
				return nil
			}
		}
		s.mu.Unlock()
		return nil
	}
	current := s.ws == c && s.state == stateOpen
	s.mu.Unlock()
	if current {
		s.onPacket(p)
	}
	return nil
}

// transportGone handles the loss of c: the session ends if c was its
// transport; a probe is only dropped.
func (s *Socket) transportGone(c *wsConn, reason uint8) {
	s.mu.Lock()
	if s.probe == c {
		s.probe, s.upgrading = nil, false
		s.mu.Unlock()
		return
	}
	current := s.ws == c
	s.mu.Unlock()
	if current {
		s.end(reason, 0)
	}
}
