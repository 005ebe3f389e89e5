//go:build linux && !sessiongate_noepoll

package engineio

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sessiongate/sessiongate/internal/gopool"
)

// poller watches idle websocket connections with epoll, so that they hold
// no goroutine and no buffer. Each descriptor is armed with EPOLLONESHOT:
// one readiness event starts one reader goroutine, which drains the socket
// and re-arms it.
//
// Events carry a key unique to each registration, not the descriptor: an
// event epoll_wait returned for a connection that closed meanwhile must not
// start a reader for a new connection that reused its descriptor number,
// which would then have two readers (that one, and its own armed event).
type poller struct {
	epfd int
	evfd int // wakes the loop to stop it; its events carry key 0

	mu      sync.Mutex
	conns   map[uint64]*wsConn // by key
	lastKey uint64
	closed  bool
	done    chan struct{}
}

// epollEvent returns the event for the registration key: the key is the
// event's 64-bit user data.
func epollEvent(events uint32, key uint64) *unix.EpollEvent {
	return &unix.EpollEvent{Events: events, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
}

// eventKey returns the registration key ev carries.
func eventKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// readEvents are the events a connection is armed for, once.
const readEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// readBufPool holds the buffers readers use while bytes arrive.
var readBufPool = sync.Pool{New: func() any { b := make([]byte, 8192); return &b }}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll create: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, epollEvent(unix.EPOLLIN, 0)); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("epoll add eventfd: %w", err)
	}
	p := &poller{epfd: epfd, evfd: evfd, conns: make(map[uint64]*wsConn), done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// watch starts reading c. Connections without a descriptor (TLS) get a
// reading goroutine instead.
func (p *poller) watch(c *wsConn) error {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		go c.readLoop()
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("poller watch: %w", err)
	}
	// c.mu orders this with teardown, which may already have run.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil
	}
	if err := rc.Control(func(fd uintptr) { c.fd = int(fd) }); err != nil {
		return fmt.Errorf("poller watch: %w", err)
	}
	c.rc = rc
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errServerClosed
	}
	p.lastKey++
	c.key = p.lastKey
	p.conns[c.key] = c
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, epollEvent(readEvents, c.key)); err != nil {
		delete(p.conns, c.key)
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

// rearm watches c for the next readiness event, unless it is closed. The
// check and the re-arm happen under c.mu, as does closing the descriptor,
// so a reused descriptor number is never touched.
func (p *poller) rearm(c *wsConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, c.fd, epollEvent(readEvents, c.key))
}

// forget stops watching c; c.mu is held and its descriptor is about to be
// closed. Closing the descriptor removes it from the epoll set (nothing else
// holds the socket open), so there is no EPOLL_CTL_DEL, which would cost one
// more system call per connection. An event that fires in between, or
// before a close the runtime defers while a read finishes, carries a key no
// longer in conns and is dropped.
func (p *poller) forget(c *wsConn) {
	if c.rc == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c.key)
}

// close stops the loop and releases the epoll descriptor.
func (p *poller) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	var one [8]byte
	one[0] = 1 // eventfd takes a host-endian uint64; 1 is non-zero either way
	_, _ = unix.Write(p.evfd, one[:])
	<-p.done
}

func (p *poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		stop := err != nil
		p.mu.Lock()
		for i := 0; i < n && !stop; i++ {
			key := eventKey(&events[i])
			if key == 0 {
				stop = true
				break
			}
			p.dispatchLocked(key)
		}
		if stop {
			p.closed = true
			unix.Close(p.epfd)
			unix.Close(p.evfd)
		}
		p.mu.Unlock()
		if stop {
			return
		}
	}
}

// dispatchLocked starts a reader for the connection registered with key,
// if it is still watched, and reports whether it did. p.mu is held.
func (p *poller) dispatchLocked(key uint64) bool {
	c := p.conns[key]
	if c == nil {
		return false // closed since epoll_wait returned the event
	}
	gopool.Go(func() { c.onReadable(p) })
	return true
}

// onReadable drains the socket with non-blocking reads into a pooled
// buffer, handles complete frames, and re-arms the descriptor.
func (c *wsConn) onReadable(p *poller) {
	// Taking c.mu orders this reader after the previous one, which re-armed
	// the descriptor under it (the kernel orders them too, unseen by the
	// race detector).
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if dead {
		return
	}
	bp := readBufPool.Get().(*[]byte)
	buf := *bp
	defer readBufPool.Put(bp)
	for {
		var n int
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true
		})
		if err == nil {
			err = rerr
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil || n <= 0 {
			c.lost(err)
			return
		}
		if !c.handle(buf[:n]) {
			return
		}
		if n < len(buf) {
			break
		}
	}
	p.rearm(c)
}

// maxIovecs is the most buffers one writev takes (IOV_MAX on Linux).
const maxIovecs = 1024

// writeNonBlocking writes bufs to the descriptor with vectored writes until
// the socket buffer is full, and returns how many bytes it took. bufs is
// not modified.
func (c *wsConn) writeNonBlocking(bufs net.Buffers) (int, error) {
	total := int(buffersLen(bufs))
	written, cleared := 0, false
	var iov [][]byte
	for written < total {
		iov = iovecsFrom(iov[:0], bufs, written)
		var n int
		var werr error
		err := c.rc.Write(func(fd uintptr) bool {
			n, werr = unix.Writev(int(fd), iov)
			return true
		})
		if errors.Is(err, os.ErrDeadlineExceeded) && !cleared {
			// The deadline of an earlier blocking write has passed; it
			// does not apply to this one.
			cleared = true
			if err = c.conn.SetWriteDeadline(time.Time{}); err == nil {
				continue
			}
		}
		if err == nil {
			err = werr
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return written, nil
		case err != nil:
			return written, fmt.Errorf("engineio: websocket write: %w", err)
		}
		written += n
		if n <= 0 || written < total && n < int(buffersLen(iov)) {
			return written, nil // a partial write: the buffer is full
		}
	}
	return written, nil
}

// iovecsFrom appends to iov the buffers of bufs from byte off on, at most
// maxIovecs of them.
func iovecsFrom(iov [][]byte, bufs net.Buffers, off int) [][]byte {
	for _, b := range bufs {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		iov = append(iov, b[off:])
		off = 0
		if len(iov) == maxIovecs {
			break
		}
	}
	return iov
}

// writeBlocking writes bufs to the descriptor with vectored writes, waiting
// (within the connection's write deadline) while the socket buffer is full.
// It writes with writev even when c.conn is a wrapper that net.Buffers
// would write buffer by buffer.
func (c *wsConn) writeBlocking(bufs net.Buffers) error {
	total := int(buffersLen(bufs))
	var iov [][]byte
	for written := 0; written < total; {
		iov = iovecsFrom(iov[:0], bufs, written)
		var n int
		var werr error
		err := c.rc.Write(func(fd uintptr) bool {
			n, werr = unix.Writev(int(fd), iov)
			return !errors.Is(werr, unix.EAGAIN) // false: wait until writable
		})
		if err == nil {
			err = werr
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("engineio: websocket write: %w", err)
		}
		written += n
	}
	return nil
}
