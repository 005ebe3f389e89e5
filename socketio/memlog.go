package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// MemoryLogOptions bound a MemoryLog. Zero fields take the defaults beside
// them.
type MemoryLogOptions struct {
	Window     time.Duration // 2m: entries and saved sockets older than this are dropped
	MaxEntries int           // 1,000,000 entries, all namespaces together
	MaxBytes   int64         // 64 MiB of entries (data, attachments, rooms, and each entry's slot)
	MaxSockets int           // 100,000 saved sockets; past it the oldest is dropped
	// MaxSocketBytes bounds one saved socket's rooms and state: 64 KiB; a
	// larger one is not saved (it connects fresh).
	MaxSocketBytes int64
	Now            func() time.Time // time.Now; for tests
}

// MemoryLog is the RecoveryLog of one process: what it holds dies with it.
// Its memory is bounded by MemoryLogOptions whatever the clients do: when a
// bound is reached the oldest entries (or saved sockets) go first, and a
// recovery that would need one of them fails with RecoveryExpired.
//
// Its offsets are "<epoch>.<n>": epoch is random per MemoryLog, so an
// offset of another process (a restart) is never taken for one of this
// log; n counts the namespace's entries from 1.
type MemoryLog struct {
	opts  MemoryLogOptions
	epoch string

	mu      sync.Mutex
	nsps    map[string]*nsLog
	entries int   // all namespaces
	bytes   int64 // all namespaces
	saved   map[savedKey]*savedSocket
	order   []*savedSocket // by time saved, for expiry and MaxSockets
}

type savedKey struct{ nsp, pid string }

type savedSocket struct {
	SavedSocket
	last, head uint64 // LastSent and Head, parsed
	gone       bool   // restored or dropped: skipped in order
}

// nsLog is one namespace's entries, oldest first, from start.
type nsLog struct {
	entries []memEntry
	start   int
	next    uint64 // the number of the next entry
	dropped uint64 // the highest number dropped; 0: none
}

type memEntry struct {
	n    uint64
	at   time.Time
	size int64
	e    LogEntry
}

// NewMemoryLog returns an empty MemoryLog.
func NewMemoryLog(opts MemoryLogOptions) *MemoryLog {
	if opts.Window <= 0 {
		opts.Window = 2 * time.Minute
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 1_000_000
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.MaxSockets <= 0 {
		opts.MaxSockets = 100_000
	}
	if opts.MaxSocketBytes <= 0 {
		opts.MaxSocketBytes = 64 << 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var b [6]byte
	rand.Read(b[:])
	return &MemoryLog{
		opts:  opts,
		epoch: base64.RawURLEncoding.EncodeToString(b[:]),
		nsps:  make(map[string]*nsLog),
		saved: make(map[savedKey]*savedSocket),
	}
}

// entrySlot is counted for each entry beside its bytes: its slot in the
// entries array (the struct with its slice and string headers). The
// array's spare capacity, up to half again after it grew, is not counted;
// bench/recovery measured 236 B of heap per entry of a 40-byte event to
// one room, against 240 counted this way.
const entrySlot = int64(unsafe.Sizeof(memEntry{}))

// stringHeader is the size of a string header in a []string's array.
const stringHeader = int64(unsafe.Sizeof(""))

func (l *MemoryLog) offset(n uint64) string { return l.epoch + "." + strconv.FormatUint(n, 10) }

// parse returns the number of an offset of this log.
func (l *MemoryLog) parse(off string) (uint64, bool) {
	rest, ok := strings.CutPrefix(off, l.epoch+".")
	if !ok || rest == "" || len(rest) > 20 || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}

func (l *MemoryLog) nsLocked(nsp string) *nsLog {
	ns := l.nsps[nsp]
	if ns == nil {
		ns = &nsLog{next: 1}
		l.nsps[nsp] = ns
	}
	return ns
}

// Append records e and returns its offset.
func (l *MemoryLog) Append(ctx context.Context, nsp string, e LogEntry) (string, error) {
	size := e.Size() + entrySlot + int64(len(e.Attachments))*int64(unsafe.Sizeof([]byte(nil)))
	for _, r := range e.Rooms {
		size += stringHeader + int64(len(r))
	}
	for _, r := range e.Except {
		size += stringHeader + int64(len(r))
	}
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	ns := l.nsLocked(nsp)
	n := ns.next
	ns.next++
	e.Offset = l.offset(n)
	size += int64(len(e.Offset))
	ns.entries = append(ns.entries, memEntry{n: n, at: now, size: size, e: e})
	l.entries++
	l.bytes += size
	l.trimLocked(now)
	return e.Offset, nil
}

// trimLocked drops the entries older than the window, then the oldest
// until the bounds hold.
func (l *MemoryLog) trimLocked(now time.Time) {
	cutoff := now.Add(-l.opts.Window)
	for _, ns := range l.nsps {
		for ns.start < len(ns.entries) && ns.entries[ns.start].at.Before(cutoff) {
			l.dropLocked(ns)
		}
	}
	for l.entries > l.opts.MaxEntries || l.bytes > l.opts.MaxBytes {
		var oldest *nsLog
		for _, ns := range l.nsps {
			if ns.start < len(ns.entries) && (oldest == nil || ns.entries[ns.start].at.Before(oldest.entries[oldest.start].at)) {
				oldest = ns
			}
		}
		if oldest == nil {
			return
		}
		l.dropLocked(oldest)
	}
}

// dropLocked drops the oldest entry of ns.
func (l *MemoryLog) dropLocked(ns *nsLog) {
	me := &ns.entries[ns.start]
	ns.dropped = me.n
	l.entries--
	l.bytes -= me.size
	*me = memEntry{}
	ns.start++
	if ns.start == len(ns.entries) {
		ns.entries, ns.start = ns.entries[:0], 0
	} else if ns.start > 1024 && ns.start > len(ns.entries)/2 {
		ns.entries = append(ns.entries[:0], ns.entries[ns.start:]...)
		ns.start = 0
	}
}

// Head returns the offset of the namespace's last entry ("<epoch>.0" for
// none).
func (l *MemoryLog) Head(ctx context.Context, nsp string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ns := l.nsps[nsp]; ns != nil {
		return l.offset(ns.next - 1), nil
	}
	return l.offset(0), nil
}

// Save keeps s until s.Expires (at most the window), until it is restored,
// or until MaxSockets newer ones push it out. A socket whose rooms and
// state exceed MaxSocketBytes is not kept.
func (l *MemoryLog) Save(ctx context.Context, s SavedSocket) error {
	size := int64(len(s.State) + len(s.ID) + len(s.Key) + len(s.LastSent) + len(s.Head))
	for _, r := range s.Rooms {
		size += int64(len(r))
	}
	if size > l.opts.MaxSocketBytes {
		return nil
	}
	now := l.opts.Now()
	if limit := now.Add(l.opts.Window); s.Expires.IsZero() || s.Expires.After(limit) {
		s.Expires = limit
	}
	sv := &savedSocket{SavedSocket: s}
	sv.last, _ = l.parse(s.LastSent)
	sv.head, _ = l.parse(s.Head)
	l.mu.Lock()
	defer l.mu.Unlock()
	k := savedKey{s.Namespace, s.PID}
	if old := l.saved[k]; old != nil {
		old.gone = true
	}
	l.saved[k] = sv
	l.order = append(l.order, sv)
	// Saved in time order with one window: the front expires first.
	for len(l.order) > 0 {
		front := l.order[0]
		live := len(l.saved)
		if !front.gone && !now.After(front.Expires) && live <= l.opts.MaxSockets {
			break
		}
		if !front.gone {
			delete(l.saved, savedKey{front.Namespace, front.PID})
		}
		l.order[0] = nil
		l.order = l.order[1:]
	}
	if len(l.order) == 0 {
		l.order = nil
	}
	return nil
}

// forgetLocked drops the saved socket at k.
func (l *MemoryLog) forgetLocked(k savedKey, sv *savedSocket) {
	sv.gone = true
	delete(l.saved, k)
}

// Forget drops the saved socket pid of nsp, if there is one.
func (l *MemoryLog) Forget(ctx context.Context, nsp, pid string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := savedKey{nsp, pid}
	if sv := l.saved[k]; sv != nil {
		l.forgetLocked(k, sv)
	}
	return nil
}

// Restore takes the saved socket r names, with what it missed.
func (l *MemoryLog) Restore(ctx context.Context, r RestoreRequest) (RestoreResult, error) {
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trimLocked(now)
	k := savedKey{r.Namespace, r.PID}
	sv := l.saved[k]
	if sv == nil {
		return RestoreResult{}, &RecoveryError{RecoveryUnknown}
	}
	if now.After(sv.Expires) {
		l.forgetLocked(k, sv)
		return RestoreResult{}, &RecoveryError{RecoveryExpired}
	}
	if sv.Key != r.Key {
		return RestoreResult{}, &RecoveryError{RecoveryKey}
	}
	// The client is done with this pid, whatever follows.
	l.forgetLocked(k, sv)
	x, ok := l.parse(r.Offset)
	live := sv.LastSent == "" // a live record: everything after x
	if !ok || (!live && x > sv.last) || (live && x < sv.head) {
		return RestoreResult{}, &RecoveryError{RecoveryOffset}
	}
	// It missed what reached it after x up to LastSent (lost in flight),
	// and what was sent after Head; nothing in (LastSent, Head] reached
	// it. With nothing in flight, only what came after Head is needed.
	floor := x
	if !live && x == sv.last {
		floor = max(x, sv.head)
	}
	ns := l.nsLocked(r.Namespace)
	if ns.dropped > floor {
		return RestoreResult{}, &RecoveryError{RecoveryExpired}
	}
	until := ns.next - 1
	if r.Until != "" {
		u, ok := l.parse(r.Until)
		if !ok {
			return RestoreResult{}, &RecoveryError{RecoveryOffset}
		}
		until = min(u, until)
	}
	var missed []LogEntry
	var bytes int64
	for i := ns.after(x); i < len(ns.entries) && ns.entries[i].n <= until; i++ {
		me := &ns.entries[i]
		if !live && me.n > sv.last && me.n <= sv.head {
			i = ns.after(sv.head) - 1 // nothing there reached it
			continue
		}
		if me.e.Volatile || !me.e.Reaches(sv.ID, sv.Rooms) {
			continue
		}
		bytes += me.e.Size()
		if len(missed) >= r.MaxMessages || bytes > r.MaxBytes {
			return RestoreResult{}, &RecoveryError{RecoveryOverflow}
		}
		missed = append(missed, me.e)
	}
	return RestoreResult{Socket: sv.SavedSocket, Missed: missed, Head: l.offset(until)}, nil
}

// after returns the index in ns.entries of the first entry numbered
// above n: entries are numbered without gaps from the first one held.
func (ns *nsLog) after(n uint64) int {
	if ns.start == len(ns.entries) {
		return len(ns.entries)
	}
	first := ns.entries[ns.start].n
	if n < first {
		return ns.start
	}
	return ns.start + int(min(n-first+1, uint64(len(ns.entries)-ns.start)))
}

// Range returns the entries of nsp in (after, until] that reach id in
// rooms, volatile ones excepted.
func (l *MemoryLog) Range(ctx context.Context, nsp, after, until, id string, rooms []string) ([]LogEntry, error) {
	a, ok := l.parse(after)
	if !ok {
		return nil, &RecoveryError{RecoveryOffset}
	}
	u := uint64(1<<64 - 1)
	if until != "" {
		if u, ok = l.parse(until); !ok {
			return nil, &RecoveryError{RecoveryOffset}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ns := l.nsLocked(nsp)
	if ns.dropped > a {
		return nil, &RecoveryError{RecoveryExpired}
	}
	var out []LogEntry
	for i := ns.after(a); i < len(ns.entries) && ns.entries[i].n <= u; i++ {
		if me := &ns.entries[i]; !me.e.Volatile && me.e.Reaches(id, rooms) {
			out = append(out, me.e)
		}
	}
	return out, nil
}

// MemoryLogStats are what a MemoryLog holds now.
type MemoryLogStats struct {
	Entries int
	Bytes   int64
	Sockets int // saved
}

// Stats returns what l holds now.
func (l *MemoryLog) Stats() MemoryLogStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return MemoryLogStats{Entries: l.entries, Bytes: l.bytes, Sockets: len(l.saved)}
}

var _ RecoveryLog = (*MemoryLog)(nil)
