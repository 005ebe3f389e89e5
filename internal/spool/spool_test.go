package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func open(t testing.TB, dir string, max int64) *Spool {
	t.Helper()
	s, err := Open(dir, max)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appendN(t testing.TB, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		tk, err := s.Append(fmt.Appendf(nil, "record %d", i))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if err := s.Sync(context.Background(), tk); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
}

// readAll reads every record, acknowledging each batch when ack is set.
func readAll(t testing.TB, s *Spool, ack bool) []string {
	t.Helper()
	var got []string
	for {
		recs, pos, err := s.Read(7)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return got
		}
		for _, r := range recs {
			got = append(got, string(r))
		}
		if ack {
			if err := s.Ack(pos); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func want(from, n int) []string {
	var w []string
	for i := from; i < from+n; i++ {
		w = append(w, fmt.Sprintf("record %d", i))
	}
	return w
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %d records %v,\nwant %d %v", len(got), got, len(want), want)
	}
}

// TestReplay: records appended and synced by a process that then dies
// without acknowledging them are read again by the next Open; acknowledged
// ones are not.
func TestReplay(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	appendN(t, s, 0, 10)
	recs, pos, err := s.Read(4)
	if err != nil || len(recs) != 4 {
		t.Fatalf("Read = %d, %v", len(recs), err)
	}
	if err := s.Ack(pos); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 10, 5)
	crash(s) // the rest never shipped
	s2 := open(t, dir, 1<<20)
	defer s2.Close()
	equal(t, readAll(t, s2, true), want(4, 11))
	if sz := s2.Size(); sz != 0 {
		t.Errorf("Size = %d after everything was acknowledged", sz)
	}
	s2.Close()
	s3 := open(t, dir, 1<<20)
	defer s3.Close()
	equal(t, readAll(t, s3, true), nil)
}

// crash lets go of s as a process that dies does: its files are closed by
// the kernel, nothing is synced or written.
func crash(s *Spool) {
	s.f.Close()
	if s.rf != nil {
		s.rf.Close()
	}
	s.lock.Close()
}

// TestLocked: a spool is used by one process at a time.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	if _, err := Open(dir, 1<<20); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	s.Close()
	open(t, dir, 1<<20).Close()
}

// TestTornTail: a record a crash cut short at the end of the log is
// discarded at Open, and appends continue after the last whole record.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20)
	appendN(t, s, 0, 3)
	s.Close()
	seg := filepath.Join(dir, fmt.Sprintf("%016x.seg", 1))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := appendRecord(nil, []byte("a record the crash cut"))
	f.Write(torn[:len(torn)-3])
	f.Close()

	s = open(t, dir, 1<<20)
	defer s.Close()
	appendN(t, s, 3, 2)
	equal(t, readAll(t, s, true), want(0, 5))
}

// TestCorruptSegment: a damaged record in an older segment is skipped with
// the rest of that segment and counted; the next segments are read.
func TestCorruptSegment(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 64<<20)
	big := bytes.Repeat([]byte("x"), MaxRecord)
	for range segmentBytes/MaxRecord + 1 { // two segments
		if _, err := s.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	appendN(t, s, 0, 2)
	s.Close()
	seg := filepath.Join(dir, fmt.Sprintf("%016x.seg", 1))
	b, _ := os.ReadFile(seg)
	b[headerLen+MaxRecord+headerLen+5] ^= 1 // the second record's payload
	os.WriteFile(seg, b, 0o600)

	s = open(t, dir, 64<<20)
	defer s.Close()
	got := readAll(t, s, true)
	if len(got) < 3 || got[0] != string(big) {
		t.Fatalf("read %d records", len(got))
	}
	equal(t, got[len(got)-2:], want(0, 2))
	if c := s.Corrupt(); c != 1 {
		t.Errorf("Corrupt = %d, want 1", c)
	}
	if ids, _ := segmentIDs(dir); len(ids) != 1 {
		t.Errorf("segments %v left after everything was acknowledged, want only the last", ids)
	}
}

// TestFull: past its byte limit the spool refuses records, and takes them
// again once the shipper acknowledged some.
func TestFull(t *testing.T) {
	s := open(t, t.TempDir(), 100)
	defer s.Close()
	n := 0
	for {
		_, err := s.Append([]byte("0123456789"))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 100/(headerLen+10) {
		t.Errorf("%d records fit in 100 bytes", n)
	}
	_, pos, _ := s.Read(1)
	if err := s.Ack(pos); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append([]byte("0123456789")); err != nil {
		t.Errorf("Append after Ack: %v", err)
	}
}

// TestGroupCommit: concurrent writers each get their record durable, and
// every record is read once.
func TestGroupCommit(t *testing.T) {
	s := open(t, t.TempDir(), 64<<20)
	defer s.Close()
	var wg sync.WaitGroup
	const writers, each = 16, 50
	for w := range writers {
		wg.Go(func() {
			appendN(t, s, w*each, each)
		})
	}
	wg.Wait()
	got := readAll(t, s, true)
	if len(got) != writers*each {
		t.Fatalf("read %d records, want %d", len(got), writers*each)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct records", len(seen))
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(appendRecord(nil, []byte("hello")))
	f.Add(appendRecord(nil, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := parseRecord(b)
		if err != nil {
			return
		}
		if n > len(b) || n != headerLen+len(p) {
			t.Fatalf("parsed %d bytes of %d, payload %d", n, len(b), len(p))
		}
		if again := appendRecord(nil, p); !bytes.Equal(again, b[:n]) {
			t.Fatalf("record does not round-trip")
		}
	})
}

// BenchmarkAppendSync measures what a granted CONNECT pays for its audit
// record: an append and the wait for its fsync, with many callers at once
// sharing fsyncs (-cpu sets the goroutines; RunParallel runs 64 per CPU).
func BenchmarkAppendSync(b *testing.B) {
	s := open(b, b.TempDir(), 1<<40)
	defer s.Close()
	rec := bytes.Repeat([]byte("a"), 300) // an audit event as JSON
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, err := s.Append(rec)
			if err != nil {
				b.Error(err)
				return
			}
			if err := s.Sync(context.Background(), tk); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFsync measures one append and its own fsync, nothing shared:
// what one fsync costs on this disk.
func BenchmarkFsync(b *testing.B) {
	s := open(b, b.TempDir(), 1<<40)
	defer s.Close()
	rec := bytes.Repeat([]byte("a"), 300)
	for b.Loop() {
		tk, err := s.Append(rec)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Sync(context.Background(), tk); err != nil {
			b.Fatal(err)
		}
	}
}
