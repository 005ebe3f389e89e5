package load

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// hsLoop runs handshakes on a fixed number of connection slots from one OS
// thread with an epoll set of its own. Each slot holds one connection at a
// time: as soon as its handshake ends, well or not, the socket is closed and
// the slot opens the next one.
//
// Per handshake that is socket, setsockopt, bind, connect, epoll_ctl, two
// writes, two reads and close, plus a share of epoll_wait: the sockets are
// registered edge-triggered for reading and writing once, so nothing is
// re-armed, and a read shorter than the buffer's room means the socket is
// drained, so there is no read that ends in EAGAIN.
type hsLoop struct {
	t       *hsTemplate
	epfd    int
	slots   []*hsSlot
	next    func() int // the next connection number: picks credential and source
	end     time.Time
	limit   int          // stop after this many handshakes (0: no limit); for tests
	stopped *atomic.Bool // set when the run is cut short; nil: never

	lat     []time.Duration
	errs    map[string]int
	lastErr error
	count   int
}

// hsSlot is one connection slot's state and buffer.
type hsSlot struct {
	index int
	gen   uint32 // counts the slot's connections; events of an earlier one are dropped
	fd    int    // -1 when the slot holds no connection
	i     int    // connection number
	start time.Time
	stage uint8
	out   []byte // what is still to be written
	buf   [hsBufSize]byte
	n     int // bytes in buf
	off   int // bytes of buf consumed
}

// The stages of a handshake.
const (
	stageUpgrade = iota // waiting for the 101 response
	stageOpen           // waiting for the Engine.IO open packet
	stageReply          // waiting for the Socket.IO CONNECT reply
)

func newHSLoop(t *hsTemplate, slots int, next func() int, end time.Time) (*hsLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll create: %w", err)
	}
	l := &hsLoop{t: t, epfd: epfd, next: next, end: end, errs: map[string]int{}, lat: make([]time.Duration, 0, 4096)}
	for i := range slots {
		l.slots = append(l.slots, &hsSlot{index: i, fd: -1})
	}
	return l, nil
}

// run loops handshakes on every slot until the end time, on a thread of its
// own; handshakes still running at the end are not counted.
func (l *hsLoop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer unix.Close(l.epfd)
	for _, s := range l.slots {
		l.open(s)
	}
	events := make([]unix.EpollEvent, len(l.slots)+1)
	for !l.over() {
		wait := time.Until(l.end)
		if wait > 100*time.Millisecond {
			wait = 100 * time.Millisecond
		}
		n, err := unix.EpollWait(l.epfd, events, int(wait/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.fail(nil, fmt.Errorf("epoll wait: %w", err))
			break
		}
		for i := range n {
			ev := &events[i]
			s := l.slots[int(uint32(ev.Fd))]
			if s.fd < 0 || uint32(ev.Pad) != s.gen {
				continue // a connection of this slot that has ended
			}
			l.ready(s, ev.Events)
		}
	}
	for _, s := range l.slots {
		if s.fd >= 0 {
			unix.Close(s.fd)
			s.fd = -1
		}
	}
}

// over reports whether the run has ended.
func (l *hsLoop) over() bool {
	return (l.limit > 0 && l.count >= l.limit) || (l.stopped != nil && l.stopped.Load()) || !time.Now().Before(l.end)
}

// open starts the slot's next connection, unless the run is over.
func (l *hsLoop) open(s *hsSlot) {
	for !l.over() {
		err := l.dial(s)
		if err == nil {
			return
		}
		l.fail(s, err)
	}
}

// dial opens a non-blocking socket to the server and sends the upgrade
// request, or arranges for it to go once the socket is connected.
func (l *hsLoop) dial(s *hsSlot) error {
	t := l.t
	s.i = l.next()
	s.start = time.Now()
	s.gen++
	s.stage = stageUpgrade
	s.n, s.off = 0, 0
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	s.fd = fd
	// See bindAddressNoPort: the port is picked at connect, for the whole
	// 4-tuple, and may reuse one in TIME_WAIT.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
		return fmt.Errorf("setsockopt: %w", err)
	}
	src := t.srcs[s.i%len(t.srcs)]
	if err := unix.Bind(fd, &src); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := unix.Connect(fd, &t.dst); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return fmt.Errorf("connect: %w", err)
	}
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     int32(s.index),
		Pad:    int32(s.gen),
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll add: %w", err)
	}
	// On loopback the connection is usually up already; if not, the write
	// fails with EAGAIN and is retried when the socket turns writable.
	s.out = append(s.out[:0], t.requests[s.i%len(t.requests)]...)
	return l.flush(s)
}

// flush writes what is pending for s, as far as the socket takes it.
func (l *hsLoop) flush(s *hsSlot) error {
	for len(s.out) > 0 {
		n, err := unix.Write(s.fd, s.out)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("write: %w", err)
		}
		s.out = s.out[:copy(s.out, s.out[n:])]
	}
	return nil
}

// ready handles the events epoll reported for s's connection.
func (l *hsLoop) ready(s *hsSlot, events uint32) {
	if len(s.out) > 0 {
		if err := l.flush(s); err != nil {
			l.fail(s, err)
			l.open(s)
			return
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	// The peer closed or failed: read to the end, for an edge-triggered
	// socket reports it only once.
	toEOF := events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	for {
		if s.n == len(s.buf) {
			if s.off == 0 {
				l.fail(s, errFrameTooLarge)
				l.open(s)
				return
			}
			s.n = copy(s.buf[:], s.buf[s.off:s.n])
			s.off = 0
		}
		room := len(s.buf) - s.n
		n, err := unix.Read(s.fd, s.buf[s.n:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			l.fail(s, fmt.Errorf("read: %w", err))
			l.open(s)
			return
		case n == 0:
			l.fail(s, fmt.Errorf("read %s: %w", stageNames[s.stage], io.EOF))
			l.open(s)
			return
		}
		s.n += n
		done, err := l.advance(s)
		if err != nil {
			l.fail(s, err)
			l.open(s)
			return
		}
		if done {
			l.succeed(s)
			l.open(s)
			return
		}
		if n < room && !toEOF {
			return // drained: the next bytes bring a new edge
		}
	}
}

var stageNames = [...]string{stageUpgrade: "upgrade response", stageOpen: "open packet", stageReply: "CONNECT reply"}

// advance parses what s's buffer holds and answers it. It reports whether
// the handshake completed.
func (l *hsLoop) advance(s *hsSlot) (bool, error) {
	t := l.t
	for {
		b := s.buf[s.off:s.n]
		if s.stage == stageUpgrade {
			n, ok, err := parseUpgrade(b, t.accept)
			if err != nil || !ok {
				return false, err
			}
			s.off += n
			s.stage = stageOpen
			continue
		}
		op, msg, n, ok, err := parseFrame(b)
		if err != nil || !ok {
			return false, err
		}
		s.off += n
		switch op {
		case 0x1:
		case 0x8:
			return false, errors.New("connection closed by the server")
		case 0x9:
			s.out = appendPong(s.out, msg)
			if err := l.flush(s); err != nil {
				return false, err
			}
			continue
		case 0xa:
			continue
		default:
			return false, fmt.Errorf("unexpected websocket opcode %#x", op)
		}
		switch {
		case s.stage == stageOpen:
			if len(msg) < 2 || msg[0] != '0' || msg[1] != '{' {
				return false, fmt.Errorf("expected an Engine.IO open packet, got %.40q", msg)
			}
			s.stage = stageReply
			s.out = append(s.out, t.connect...)
			if err := l.flush(s); err != nil {
				return false, err
			}
		case len(msg) == 1 && msg[0] == '2':
			s.out = append(s.out, t.pong...)
			if err := l.flush(s); err != nil {
				return false, err
			}
		case len(msg) >= 2 && msg[0] == '4' && msg[1] == '0':
			if !hasSID(msg[2:]) {
				return false, fmt.Errorf("bad CONNECT reply %.60q", msg)
			}
			return true, nil
		case len(msg) >= 2 && msg[0] == '4' && msg[1] == '4':
			_, err := parseConnectReply(msg) // the rare path: decode the error fully
			return false, err
		}
	}
}

// succeed records s's handshake and closes its connection.
func (l *hsLoop) succeed(s *hsSlot) {
	done := time.Now()
	l.closeSlot(s)
	if !done.Before(l.end) {
		return // completed after the end of the run: not counted
	}
	l.count++
	l.lat = append(l.lat, done.Sub(s.start))
}

// fail records err for s's connection, if any, and closes it.
func (l *hsLoop) fail(s *hsSlot, err error) {
	if s != nil {
		l.closeSlot(s)
	}
	if !time.Now().Before(l.end) {
		return // cut short by the end of the run: not counted
	}
	l.count++
	l.errs[errClass(err)]++
	l.lastErr = err
}

// closeSlot closes s's socket, which also takes it out of the epoll set.
func (l *hsLoop) closeSlot(s *hsSlot) {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
	s.out = s.out[:0]
}
