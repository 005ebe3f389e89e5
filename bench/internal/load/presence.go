package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ModePresence measures presence (contract: Presence) as many users join
// one room at once:
//
//	presence  -n sockets of as many users connect; then each subscribes to
//	          -room, the subscribes spread evenly over -spread (1s); each
//	          socket keeps the members it was told of (its subscribe ack's
//	          snapshot, then every presence event's joined and left) until
//	          every socket knows all n users or -timeout passes, and 2 s
//	          more for late or repeated events: the events and messages
//	          received, whether each socket learnt of every user exactly
//	          once, and how long it took.
const ModePresence = "presence"

// presenceQuiet is how long the presence mode keeps reading after every
// socket knows every user: four of the server's 500 ms windows, to catch a
// late or repeated event.
const presenceQuiet = 2 * time.Second

// PresenceReport is the presence mode's result.
type PresenceReport struct {
	Users   int `json:"users"`    // sockets that subscribed (one user each)
	AckedOK int `json:"acked_ok"` // subscribes acknowledged ok
	// Events are the presence events received by all sockets; Messages
	// the websocket messages of any kind the server sent them after the
	// first subscribe (the events, acks, pings).
	Events   int `json:"events"`
	Messages int `json:"messages"`
	// MaxEvents is the most events one socket received; EventBytes the
	// bytes of all the events' messages.
	MaxEvents  int   `json:"max_events"`
	EventBytes int64 `json:"event_bytes"`
	// JoinedEntries and LeftEntries add up the lengths of the events'
	// lists; SnapshotEntries the ack snapshots' users.
	JoinedEntries   int `json:"joined_entries"`
	LeftEntries     int `json:"left_entries"`
	SnapshotEntries int `json:"snapshot_entries"`
	Truncated       int `json:"truncated"` // events (or snapshots) marked truncated
	// Complete is how many sockets learnt of all Users users.
	Complete int `json:"complete"`
	// Missing is the (socket, user) pairs never learnt of.
	Missing int `json:"missing"`
	// RepeatedJoins is the (socket, user) pairs in the joined list of more
	// than one event; Overlap those in both the snapshot and an event's
	// joined list (allowed: a client applies them idempotently).
	RepeatedJoins int `json:"repeated_joins"`
	Overlap       int `json:"overlap"`
	// FinalCount is the count of the last event of the most sockets
	// (its value, and how many sockets ended on another).
	FinalCount      int `json:"final_count"`
	FinalCountOther int `json:"final_count_other"`
	// Naive is the messages a per-join fan-out to every other member sends:
	// Users × (Users − 1).
	Naive int `json:"naive"`
	// SpreadMs is how long the subscribes took to send; CompleteMs the time
	// from the first subscribe until each socket knew every user.
	SpreadMs   float64 `json:"spread_ms"`
	CompleteMs *Dist   `json:"complete_ms,omitempty"`
}

// presConn is one socket of a presence run.
type presConn struct {
	c        net.Conn
	br       *bufio.Reader
	mu       sync.Mutex
	snapshot map[string]bool
	joined   map[string]int // user → events whose joined list held it
	left     int
	events   int
	bytes    int64
	messages int
	acked    bool
	ackOK    bool
	trunc    int
	count    int // the last event's count
	snapN    int
	joinedN  int
	doneAt   time.Time // when it first knew every user
}

func runPresence(ctx context.Context, cfg *Config, rep *Report) error {
	rep.Requested = cfg.N
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := newRawDialer(cfg.URL, cfg.Sources, cfg.Creds)
	if err != nil {
		return err
	}
	open := opened(openAll(runCtx, cfg, rep, func(ctx context.Context, i int) (*presConn, error) {
		c, br, err := d.connect(ctx, cfg.Creds[i].Cookie)
		if err != nil {
			return nil, err
		}
		return &presConn{c: c, br: br, snapshot: map[string]bool{}, joined: map[string]int{}}, nil
	}, nil))
	cfg.progress("%s: %d/%d connected in %.1fs", cfg.Mode, rep.Connected, cfg.N, rep.ConnectSeconds)
	defer func() {
		for _, h := range open {
			h.c.Close()
		}
	}()
	if rep.Connected == 0 {
		return errors.New("no connection could be opened")
	}
	if err := Sleep(ctx, cfg.Settle); err != nil {
		return err
	}
	want := len(open)
	var complete atomic.Int64
	allDone := make(chan struct{})
	var readers sync.WaitGroup
	for _, h := range open {
		readers.Go(func() {
			h.read(runCtx, want, func() {
				if complete.Add(1) == int64(want) {
					close(allDone)
				}
			})
		})
	}
	// The subscribes, evenly spread.
	sub := clientFrame(0x1, true, []byte(`420["subscribe",{"room":"`+cfg.Room+`"}]`))
	t0 := time.Now()
	var senders sync.WaitGroup
	for i, h := range open {
		at := t0.Add(cfg.Spread * time.Duration(i) / time.Duration(want))
		senders.Go(func() {
			time.Sleep(time.Until(at))
			h.c.Write(sub)
		})
	}
	senders.Wait()
	spread := time.Since(t0)
	select {
	case <-allDone:
	case <-time.After(cfg.Timeout):
		cfg.progress("%s: timeout: %d/%d sockets know every user", cfg.Mode, complete.Load(), want)
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := Sleep(ctx, presenceQuiet); err != nil {
		return err
	}
	cancel()
	for _, h := range open {
		h.c.Close()
	}
	readers.Wait()

	p := &PresenceReport{Users: want, Naive: want * (want - 1), SpreadMs: ms(spread)}
	counts := map[int]int{}
	var done []time.Duration
	for _, h := range open {
		h.mu.Lock()
		if h.ackOK {
			p.AckedOK++
		}
		p.Events += h.events
		p.Messages += h.messages
		p.MaxEvents = max(p.MaxEvents, h.events)
		p.EventBytes += h.bytes
		p.JoinedEntries += h.joinedN
		p.LeftEntries += h.left
		p.SnapshotEntries += h.snapN
		p.Truncated += h.trunc
		known := len(h.snapshot)
		for u, n := range h.joined {
			if n > 1 {
				p.RepeatedJoins++
			}
			if h.snapshot[u] {
				p.Overlap++
			} else {
				known++
			}
		}
		if known >= want {
			p.Complete++
		}
		p.Missing += max(want-known, 0)
		counts[h.count]++
		if !h.doneAt.IsZero() {
			done = append(done, h.doneAt.Sub(t0))
		}
		h.mu.Unlock()
	}
	for c, n := range counts {
		if n > counts[p.FinalCount] || (n == counts[p.FinalCount] && c > p.FinalCount) {
			p.FinalCount = c
		}
	}
	p.FinalCountOther = want - counts[p.FinalCount]
	p.CompleteMs = distribution(done)
	rep.Presence = p
	rep.StillOpen = want
	cfg.progress("%s: %d users: %d events (%d messages) received, %d/%d sockets complete, %d repeated joins, %d left entries; naive %d",
		cfg.Mode, want, p.Events, p.Messages, p.Complete, want, p.RepeatedJoins, p.LeftEntries, p.Naive)
	if p.Complete < want {
		return errors.New("presence: " + strconv.Itoa(want-p.Complete) + " sockets did not learn of every user")
	}
	return nil
}

// presenceEvent is the payload of a presence event; presenceAck the
// subscribe ack's argument.
type presenceEvent struct {
	Room      string            `json:"room"`
	Joined    []json.RawMessage `json:"joined"`
	Left      []json.RawMessage `json:"left"`
	Count     int               `json:"count"`
	Truncated bool              `json:"truncated"`
}

type presenceAck struct {
	OK       bool `json:"ok"`
	Presence *struct {
		Users     []json.RawMessage `json:"users"`
		Count     int               `json:"count"`
		Truncated bool              `json:"truncated"`
	} `json:"presence"`
}

// userKey is a user as a string: the JSON string's value, or the JSON
// text of anything else (a number).
func userKey(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// read answers pings and records the subscribe ack and the presence
// events until the connection ends; done is called once the socket knows
// want users.
func (h *presConn) read(ctx context.Context, want int, done func()) {
	stop := context.AfterFunc(ctx, func() { h.c.Close() })
	defer stop()
	for {
		op, msg, err := readServerFrame(h.br)
		if err != nil {
			return
		}
		switch op {
		case 0x8:
			return
		case 0x9:
			if _, err := h.c.Write(wsPong); err != nil {
				return
			}
			continue
		case 0x1:
		default:
			continue
		}
		h.mu.Lock()
		h.messages++
		h.mu.Unlock()
		switch {
		case len(msg) == 1 && msg[0] == '2':
			if _, err := h.c.Write(eioPong); err != nil {
				return
			}
			continue
		case bytes.HasPrefix(msg, []byte("430[")):
			var a []presenceAck
			if json.Unmarshal(msg[3:], &a) != nil || len(a) == 0 {
				continue
			}
			h.mu.Lock()
			h.acked, h.ackOK = true, a[0].OK
			if a[0].Presence != nil {
				for _, u := range a[0].Presence.Users {
					h.snapshot[userKey(u)] = true
				}
				h.snapN += len(a[0].Presence.Users)
				if a[0].Presence.Truncated {
					h.trunc++
				}
			}
		case bytes.HasPrefix(msg, []byte(`42["presence",`)):
			args, ok := eventArgs(msg)
			var ev presenceEvent
			if !ok || len(args) < 2 || json.Unmarshal(args[1], &ev) != nil {
				continue
			}
			h.mu.Lock()
			h.events++
			h.bytes += int64(len(msg))
			h.count = ev.Count
			h.joinedN += len(ev.Joined)
			h.left += len(ev.Left)
			if ev.Truncated {
				h.trunc++
			}
			for _, u := range ev.Joined {
				h.joined[userKey(u)]++
			}
		default:
			continue
		}
		// h.mu is held.
		if h.doneAt.IsZero() && h.knownLocked() >= want {
			h.doneAt = time.Now()
			h.mu.Unlock()
			done()
			continue
		}
		h.mu.Unlock()
	}
}

// knownLocked is how many users the socket has learnt of.
func (h *presConn) knownLocked() int {
	n := len(h.snapshot)
	for u := range h.joined {
		if !h.snapshot[u] {
			n++
		}
	}
	return n
}
