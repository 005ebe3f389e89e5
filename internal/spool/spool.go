// Package spool is an append-only log of records in a local directory,
// made durable with group commit: writers that wait for their record to be
// on disk share one fsync. It is how the gateway keeps its audit trail
// across a crash or a database outage: each record is appended (and, for a
// granted CONNECT, made durable) before anything depends on it, read back
// in order by one shipper that writes it to the store, and deleted once the
// shipper acknowledges it.
//
// The log is a sequence of segment files (NNNNNNNNNNNNNNNN.seg, hex ids in
// order), each a sequence of records: a 4-byte little-endian payload
// length, the payload's 4-byte CRC-32C, the payload. The shipped position
// is kept in the file "shipped", written at most once a second (and by
// Close) and not fsynced, so after a crash the records shipped in the last
// second or so are read (and shipped) again: delivery is at least once.
//
// A Spool is safe for concurrent use by any number of writers and one
// reader (Read and Ack from a single goroutine).
package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of the log.
const (
	headerLen = 8
	// MaxRecord is the largest payload Append takes.
	MaxRecord = 64 << 10
	// segmentBytes is the size past which Append starts a new segment; a
	// segment is deleted once all its records are acknowledged.
	segmentBytes = 4 << 20
)

// ErrFull is returned by Append when the records not yet acknowledged
// already take the spool's byte limit.
var ErrFull = errors.New("spool: full")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("spool: closed")

// ErrLocked is returned by Open when another process has the spool open.
var ErrLocked = errors.New("spool: in use by another process")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Pos is a position in the log: the records before it have been read.
type Pos struct {
	seg uint64
	off int64
}

type segment struct {
	id   uint64
	size int64 // bytes of whole records
}

// Spool is an open log directory.
type Spool struct {
	dir  string
	max  int64
	lock *os.File // held open (and flocked) while the spool is

	mu        sync.Mutex
	segs      []segment // ascending; the last one is written
	f         *os.File  // the last segment
	appended  uint64    // records appended since Open
	synced    uint64    // of those, the ones known to be on disk
	syncing   bool      // a goroutine runs fsync for the others
	round     chan struct{}
	size      int64 // bytes not yet acknowledged
	acked     Pos
	shippedAt time.Time // when acked was last written to the shipped file
	err       error     // a failed write or fsync: no more appends
	closed    bool
	corrupt   uint64 // records skipped because they failed their check

	// The reader's, used by Read and Ack only.
	read Pos
	rf   *os.File
	rid  uint64 // segment rf holds
}

// Open opens (creating it if needed) the spool in dir, which keeps at most
// maxBytes of records not yet acknowledged. Records a previous process
// appended and did not have acknowledged are read again, from the shipped
// position on. A record cut short by a crash at the end of the log is
// discarded.
func Open(dir string, maxBytes int64) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := openLocked(dir, maxBytes)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

// openLocked opens the spool in dir, which the caller has locked.
func openLocked(dir string, maxBytes int64) (*Spool, error) {
	s := &Spool{dir: dir, max: maxBytes, round: make(chan struct{})}
	ids, err := segmentIDs(dir)
	if err != nil {
		return nil, err
	}
	shipped, ok := s.readShipped()
	if ok && slices.Contains(ids, shipped.seg) {
		for _, id := range ids {
			if id < shipped.seg {
				if err := os.Remove(s.path(id)); err != nil {
					return nil, fmt.Errorf("spool: %w", err)
				}
			}
		}
		ids = slices.DeleteFunc(ids, func(id uint64) bool { return id < shipped.seg })
	} else {
		shipped = Pos{}
	}
	for i, id := range ids {
		size, err := s.validSize(id, i == len(ids)-1)
		if err != nil {
			return nil, err
		}
		s.segs = append(s.segs, segment{id: id, size: size})
	}
	if len(s.segs) == 0 {
		s.segs = []segment{{id: 1}}
		shipped = Pos{seg: 1}
	}
	if shipped.seg == 0 {
		shipped = Pos{seg: s.segs[0].id}
	}
	shipped.off = min(shipped.off, s.segs[0].size)
	s.acked, s.read = shipped, shipped
	for _, sg := range s.segs {
		s.size += sg.size
	}
	s.size -= shipped.off
	last := s.segs[len(s.segs)-1]
	if s.f, err = os.OpenFile(s.path(last.id), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := s.syncDir(); err != nil {
		s.f.Close()
		return nil, err
	}
	return s, nil
}

func (s *Spool) path(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x.seg", id))
}

// segmentIDs lists the segments in dir, in order.
func segmentIDs(dir string) ([]uint64, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var ids []uint64
	for _, n := range names {
		id, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(n), ".seg"), 16, 64)
		if err == nil && id > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// validSize returns the length of the whole records at the start of segment
// id. For the last segment, what follows them (a record a crash cut short)
// is cut off the file, so that appends continue after the last good record.
func (s *Spool) validSize(id uint64, last bool) (int64, error) {
	b, err := os.ReadFile(s.path(id))
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	if !last {
		return int64(len(b)), nil // Read skips what fails its check
	}
	off := 0
	for off < len(b) {
		_, n, err := parseRecord(b[off:])
		if err != nil {
			break
		}
		off += n
	}
	if off < len(b) {
		if err := os.Truncate(s.path(id), int64(off)); err != nil {
			return 0, fmt.Errorf("spool: cut a torn record: %w", err)
		}
	}
	return int64(off), nil
}

// appendRecord appends payload framed as a record to b.
func appendRecord(b, payload []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, crcTable))
	return append(b, payload...)
}

var errBadRecord = errors.New("spool: bad record")

// parseRecord parses the record at the start of b and returns its payload
// (sharing b's memory) and the record's length.
func parseRecord(b []byte) (payload []byte, n int, err error) {
	if len(b) < headerLen {
		return nil, 0, errBadRecord
	}
	size := binary.LittleEndian.Uint32(b)
	if size > MaxRecord || int(size) > len(b)-headerLen {
		return nil, 0, errBadRecord
	}
	payload = b[headerLen : headerLen+int(size)]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, errBadRecord
	}
	return payload, headerLen + int(size), nil
}

// Append appends payload to the log and returns its ticket for Sync. The
// record is in the operating system's cache when Append returns, on disk
// once a Sync has covered it. Append never waits for a disk flush, except
// when it starts a new segment (every few MiB).
func (s *Spool) Append(payload []byte) (ticket uint64, err error) {
	if len(payload) > MaxRecord {
		return 0, fmt.Errorf("spool: record of %d bytes, more than %d", len(payload), MaxRecord)
	}
	rec := appendRecord(make([]byte, 0, headerLen+len(payload)), payload)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return 0, ErrClosed
	case s.err != nil:
		return 0, s.err
	case s.size+int64(len(rec)) > s.max:
		return 0, ErrFull
	}
	cur := &s.segs[len(s.segs)-1]
	if cur.size > 0 && cur.size+int64(len(rec)) > segmentBytes {
		if err := s.rotateLocked(); err != nil {
			s.err = err
			return 0, err
		}
		cur = &s.segs[len(s.segs)-1]
	}
	if _, err := s.f.WriteAt(rec, cur.size); err != nil {
		// A disk that is full now may have room later: cut what was
		// written of the record, and only if that fails too stop.
		err = fmt.Errorf("spool: write: %w", err)
		if terr := s.f.Truncate(cur.size); terr != nil {
			s.err = errors.Join(err, terr)
			return 0, s.err
		}
		return 0, err
	}
	cur.size += int64(len(rec))
	s.size += int64(len(rec))
	s.appended++
	return s.appended, nil
}

// rotateLocked makes the last segment durable and starts the next one.
func (s *Spool) rotateLocked() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("spool: sync: %w", err)
	}
	s.synced = s.appended
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("spool: close segment: %w", err)
	}
	id := s.segs[len(s.segs)-1].id + 1
	f, err := os.OpenFile(s.path(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: new segment: %w", err)
	}
	s.f = f
	s.segs = append(s.segs, segment{id: id})
	return s.syncDir()
}

// syncDir makes the directory's entries (a new segment) durable.
func (s *Spool) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync dir: %w", err)
	}
	return nil
}

// Sync returns once the record of ticket (and every one before it) is on
// disk. Concurrent callers share fsyncs: one runs while the others wait, and
// it covers every record appended before it began. It returns ctx.Err() if
// ctx ends first, and the error of a failed fsync (after which the spool
// takes no more records).
func (s *Spool) Sync(ctx context.Context, ticket uint64) error {
	s.mu.Lock()
	for {
		switch {
		case s.synced >= ticket:
			s.mu.Unlock()
			return nil
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return err
		case s.closed:
			s.mu.Unlock()
			return ErrClosed
		}
		if !s.syncing {
			s.syncing = true
			target, f := s.appended, s.f
			s.mu.Unlock()
			err := f.Sync()
			s.mu.Lock()
			switch {
			case s.synced >= target:
				// A new segment was started meanwhile, after syncing f.
			case err != nil:
				s.err = fmt.Errorf("spool: sync: %w", err)
			default:
				s.synced = target
			}
			s.syncing = false
			close(s.round)
			s.round = make(chan struct{})
			continue
		}
		round := s.round
		s.mu.Unlock()
		select {
		case <-round:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
}

// SyncAll makes every record appended so far durable.
func (s *Spool) SyncAll(ctx context.Context) error {
	s.mu.Lock()
	t := s.appended
	s.mu.Unlock()
	return s.Sync(ctx, t)
}

// Read returns up to max records after the read position, in the order they
// were appended, and the position after them, to pass to Ack once they are
// shipped. The payloads are the caller's. A record that fails its check
// (damaged on disk) is skipped with the rest of its segment and counted in
// Corrupt. Read and Ack must be called from one goroutine.
func (s *Spool) Read(max int) ([][]byte, Pos, error) {
	s.mu.Lock()
	segs := slices.Clone(s.segs)
	s.mu.Unlock()
	var out [][]byte
	for len(out) < max {
		i := slices.IndexFunc(segs, func(sg segment) bool { return sg.id >= s.read.seg })
		if i < 0 {
			break
		}
		sg := segs[i]
		if sg.id != s.read.seg {
			s.read = Pos{seg: sg.id}
		}
		if s.read.off >= sg.size {
			if i == len(segs)-1 {
				break
			}
			s.read = Pos{seg: segs[i+1].id}
			continue
		}
		p, err := s.readAt(sg)
		if errors.Is(err, errBadRecord) {
			s.mu.Lock()
			s.corrupt++
			s.mu.Unlock()
			s.read.off = sg.size
			continue
		}
		if err != nil {
			return out, s.read, err
		}
		out = append(out, p)
	}
	return out, s.read, nil
}

// readAt reads the record at the read position of sg and moves past it.
func (s *Spool) readAt(sg segment) ([]byte, error) {
	if s.rf == nil || s.rid != sg.id {
		if s.rf != nil {
			s.rf.Close()
			s.rf = nil
		}
		f, err := os.Open(s.path(sg.id))
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.rf, s.rid = f, sg.id
	}
	var hdr [headerLen]byte
	if _, err := s.rf.ReadAt(hdr[:], s.read.off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errBadRecord
		}
		return nil, fmt.Errorf("spool: read: %w", err)
	}
	size := int64(binary.LittleEndian.Uint32(hdr[:]))
	if size > MaxRecord || s.read.off+headerLen+size > sg.size {
		return nil, errBadRecord
	}
	b := make([]byte, headerLen+size)
	if _, err := s.rf.ReadAt(b, s.read.off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errBadRecord
		}
		return nil, fmt.Errorf("spool: read: %w", err)
	}
	p, n, err := parseRecord(b)
	if err != nil {
		return nil, err
	}
	s.read.off += int64(n)
	return p, nil
}

// Ack records that every record before p has been shipped: their bytes no
// longer count against the limit, segments wholly before p are deleted, and
// p is written as the shipped position.
func (s *Spool) Ack(p Pos) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	freed := int64(0)
	var drop []uint64
	for _, sg := range s.segs {
		switch {
		case sg.id < s.acked.seg || sg.id > p.seg:
		case sg.id == s.acked.seg && sg.id == p.seg:
			freed += p.off - s.acked.off
		case sg.id == s.acked.seg:
			freed += sg.size - s.acked.off
		case sg.id == p.seg:
			freed += p.off
		default:
			freed += sg.size
		}
		if sg.id < p.seg {
			drop = append(drop, sg.id)
		}
	}
	s.size -= freed
	s.acked = p
	s.segs = slices.DeleteFunc(s.segs, func(sg segment) bool { return sg.id < p.seg })
	for _, id := range drop {
		if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: delete shipped segment: %w", err)
		}
	}
	// Writing the position costs the disk a metadata update that the
	// writers' fsyncs then wait for: at most once per shippedEvery.
	if now := time.Now(); len(drop) > 0 || now.Sub(s.shippedAt) >= shippedEvery {
		s.shippedAt = now
		return s.writeShipped(p)
	}
	return nil
}

// shippedEvery is how often Ack writes the shipped position: after a
// crash, up to this much of what was shipped is shipped again.
const shippedEvery = time.Second

// writeShipped replaces the shipped position file. It is not fsynced: a
// position lost in a crash makes records be shipped twice, not lost.
func (s *Spool) writeShipped(p Pos) error {
	tmp := filepath.Join(s.dir, "shipped.tmp")
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%016x %d\n", p.seg, p.off), 0o600); err != nil {
		return fmt.Errorf("spool: write shipped position: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "shipped")); err != nil {
		return fmt.Errorf("spool: write shipped position: %w", err)
	}
	return nil
}

func (s *Spool) readShipped() (Pos, bool) {
	b, err := os.ReadFile(filepath.Join(s.dir, "shipped"))
	if err != nil {
		return Pos{}, false
	}
	var p Pos
	if _, err := fmt.Sscanf(string(b), "%x %d\n", &p.seg, &p.off); err != nil || p.off < 0 {
		return Pos{}, false
	}
	return p, true
}

// Size returns the bytes of records not yet acknowledged.
func (s *Spool) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Max returns the spool's byte limit.
func (s *Spool) Max() int64 { return s.max }

// Err returns the error that stopped appends (a failed write or fsync), or
// nil.
func (s *Spool) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Corrupt returns how many damaged records Read skipped.
func (s *Spool) Corrupt() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.corrupt
}

// Close makes what was appended durable and closes the files. Records not
// acknowledged stay in the directory for the next Open. The reader must
// have stopped.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	// Waiters of a running fsync are woken by it and then see closed.
	s.closed = true
	err := s.writeShipped(s.acked)
	err = errors.Join(err, s.f.Sync())
	err = errors.Join(err, s.f.Close())
	if s.rf != nil {
		err = errors.Join(err, s.rf.Close())
	}
	err = errors.Join(err, s.lock.Close())
	if err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}
