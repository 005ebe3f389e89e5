package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

// RecoveryOptions turn on connection state recovery (Options.Recovery).
type RecoveryOptions struct {
	// Log keeps the events sent and the sockets saved at their drop: a
	// MemoryLog on one node. Required.
	Log RecoveryLog
	// Enabled says whether a connecting socket takes part (gets a pid and
	// offsets): a client that does not expect a trailing argument on its
	// events must not. It runs on the transport's read path when the
	// CONNECT arrives, before the OnConnecting hooks (it must not block);
	// nil: every socket.
	Enabled func(s *Socket) bool
	// Key is the identity a socket's pid is bound to (sessiongate: its
	// session's hash), read before the hooks run; a saved socket is
	// recovered only by a socket with the same Key. Its second result false
	// means the socket takes no part in recovery. It runs where Enabled
	// does, and must not block. Nil: "" for every socket.
	Key func(s *Socket) (string, bool)
	// State, when set, is saved with a socket at its drop (no secret: it
	// may be stored outside the process) and given back to the hooks of its
	// recovery in ConnectEvent.Recovered.
	State func(s *Socket) json.RawMessage
	// Window is how long a dropped socket may be recovered: 2 minutes. The
	// Log's own window should be the same.
	Window time.Duration
	// MaxMessages and MaxBytes bound what one recovery replays (1,000
	// events, 1 MiB of packets): past either, the socket connects fresh
	// and is told it may have missed events.
	MaxMessages int
	MaxBytes    int64
	// OffsetEvent is the event sent right after each CONNECT of a
	// recovery socket, with RecoveryInfo and then the current offset as
	// its last argument, so that a client holds an offset before any other
	// event: "recovery".
	OffsetEvent string
	// WaitOld bounds the wait for the old socket of a recovery to end (its
	// OnDisconnect handlers to return): 5 s, after which the socket
	// connects fresh.
	WaitOld time.Duration
}

// RecoveryInfo is the first argument of the OffsetEvent.
type RecoveryInfo struct {
	// Recovered: the socket is the one that dropped, its missed events
	// were sent before its CONNECT.
	Recovered bool `json:"recovered"`
	// Missed: the client asked to recover and could not (the window or a
	// replay bound passed, or its pid or offset is unknown): it may have
	// missed events and should refetch what it shows.
	Missed bool `json:"missed"`
}

// Recovered is what ConnectEvent.Recovered gives the hooks of a socket
// being recovered.
type Recovered struct {
	Rooms []string        // the rooms the socket was in when it dropped, its own id excluded
	State json.RawMessage // what RecoveryOptions.State saved; nil if none
}

// A RecoveryLog keeps, for connection state recovery, the events of each
// namespace (Append) and the sockets that dropped (Save), and gives a
// reconnecting socket what it missed (Restore). A MemoryLog holds them in
// this process; a cluster's log (Redis streams) lets a socket recover on
// another node. Offsets are the log's strings: socketio never parses them.
// Its methods are safe for concurrent use; the server calls Append, Head
// and Save of a namespace one at a time, in the order of delivery.
type RecoveryLog interface {
	// Append records an event sent to the sockets e selects and returns
	// its offset (later appends of the namespace return later offsets).
	Append(ctx context.Context, nsp string, e LogEntry) (string, error)
	// Head returns the offset of the namespace's last entry, or the
	// offset before the first one when it has none.
	Head(ctx context.Context, nsp string) (string, error)
	// Save keeps a dropped socket until it is restored or expires.
	Save(ctx context.Context, s SavedSocket) error
	// Restore takes the saved socket r asks for and returns it, with the
	// entries it missed (see RestoreRequest), or a *RecoveryError.
	Restore(ctx context.Context, r RestoreRequest) (RestoreResult, error)
	// Range returns the entries of nsp after offset after, up to and
	// including offset until ("": up to the head), that reach the socket id
	// in rooms, volatile ones excepted; a *RecoveryError if some were
	// dropped.
	Range(ctx context.Context, nsp, after, until, id string, rooms []string) ([]LogEntry, error)
}

// A SharedLog is a RecoveryLog that the nodes of a cluster share and that
// carries the events it logs: a node appends an event and delivers it
// (to its own sockets) only when it reads it back, so every node delivers
// a namespace's events in the log's order, and an offset means the same
// on every node. A socket that dropped on one node is then recovered by
// any other (Redis streams: package redis).
//
// With a SharedLog, a broadcast that is not Local and asks no
// acknowledgement is appended to the log instead of being handed to the
// namespace's adapter; a volatile one too, flagged, so that it is
// delivered live and never replayed. What does not go through the log is
// delivered to recovery sockets as a volatile event is (with the last
// offset sent to each), and cannot be recovered: a Local broadcast, one the
// adapter receives from elsewhere (an emitter over pub/sub), and a socket's
// own Socket.Emit, which is sent at once rather than after a round trip to
// the log (broadcast to the room of its id for an event it must be able
// to recover).
//
// Each connected recovery socket also has a live record in the log (see
// SavedSocket.LastSent), saved when it connects, within a second of a
// change of its rooms and every quarter of RecoveryOptions.Window: should
// its node die without saving it, it is recovered on another node.
type SharedLog interface {
	RecoveryLog
	// Read waits until the log holds entries after offset after, or ctx
	// ends, and returns the entries of nsp among them, in order, with the
	// offset they go up to (the last entry read, of any namespace): the
	// next Read starts there. A *RecoveryError with RecoveryExpired means
	// entries after after were dropped before they were read; upTo is then
	// where reading goes on.
	Read(ctx context.Context, nsp, after string) (entries []LogEntry, upTo string, err error)
	// Forget drops the saved socket pid of nsp, if there is one: a live
	// record (see SavedSocket) of a socket that left.
	Forget(ctx context.Context, nsp, pid string) error
}

// LogEntry is an event of the log: its packet and whom it was sent to.
type LogEntry struct {
	Offset string   // set by the log
	Rooms  []string // the broadcast's selection (a socket's own emit: its id)
	Except []string
	// Data is the EVENT packet's JSON array ["event", args...] without
	// the offset; Attachments its binary attachments, in order.
	Data        []byte
	Attachments [][]byte
	// Volatile: sent as a volatile broadcast (a SharedLog carries those
	// too): delivered live, never replayed by Range or Restore.
	Volatile bool
}

// Reaches reports whether e was sent to the socket id in rooms: to one of
// them (or to all) and to none of Except.
func (e *LogEntry) Reaches(id string, rooms []string) bool {
	in := func(r string) bool { return r == id || slices.Contains(rooms, r) }
	if slices.ContainsFunc(e.Except, in) {
		return false
	}
	return len(e.Rooms) == 0 || slices.ContainsFunc(e.Rooms, in)
}

// Size is the bytes e holds: its data and attachments.
func (e *LogEntry) Size() int64 {
	n := int64(len(e.Data))
	for _, a := range e.Attachments {
		n += int64(len(a))
	}
	return n
}

// SavedSocket is a socket that dropped, as the log keeps it.
type SavedSocket struct {
	Namespace string
	PID       string
	ID        string
	Key       string   // RecoveryOptions.Key of the socket
	Rooms     []string // its own id excluded
	State     json.RawMessage
	// LastSent is the offset of the last event sent to it; Head the log's
	// head when it dropped: every entry after LastSent and up to Head did
	// not reach it.
	//
	// A live record (a SharedLog's, of a socket still connected, kept in
	// case its node dies) has no LastSent, and Head is the offset sent
	// with its CONNECT: it is restored from any offset from Head on, and
	// replays every entry after that offset that reaches it.
	LastSent string
	Head     string
	Expires  time.Time
}

// RestoreRequest asks for the saved socket PID of Namespace. It is
// refused if Key is not the saved one (the socket stays saved), if Offset
// was not sent to it, if an entry it missed was dropped from the log, or
// if what it missed exceeds MaxMessages or MaxBytes; otherwise the saved
// socket is taken (it can be restored once) with the entries that reach it
// after Offset, up to LastSent and after Head, up to Until.
type RestoreRequest struct {
	Namespace, PID, Key, Offset string
	MaxMessages                 int
	MaxBytes                    int64
	// Until is the last offset replayed, "": the log's head. With a
	// SharedLog it is what this node has delivered: the entries after it
	// reach the socket as it reads them.
	Until string
}

// RestoreResult is a saved socket restored: the events it missed, in order,
// and the offset they go up to (RestoreRequest.Until, else the log's head).
type RestoreResult struct {
	Socket SavedSocket
	Missed []LogEntry
	Head   string
}

// RecoveryReason is why a recovery failed, as Stats counts it.
type RecoveryReason string

// The reasons a recovery fails; the socket then connects fresh (or, if
// its hooks refuse it, not at all).
const (
	RecoveryUnknown  RecoveryReason = "unknown"   // no such pid saved (never, expired, or restored already)
	RecoveryKey      RecoveryReason = "key"       // the pid belongs to another Key (another session)
	RecoveryOffset   RecoveryReason = "offset"    // the offset is malformed or was never sent to the socket
	RecoveryExpired  RecoveryReason = "expired"   // an event it missed was dropped from the log (window, log bounds)
	RecoveryOverflow RecoveryReason = "overflow"  // more to replay than MaxMessages or MaxBytes
	RecoveryBusy     RecoveryReason = "busy"      // the old socket did not end within WaitOld
	RecoveryLogError RecoveryReason = "log_error" // the log failed
	RecoveryRefused  RecoveryReason = "refused"   // an OnConnecting hook refused the socket (its session ended)
)

// RecoveryReasons lists every RecoveryReason, for metrics.
var RecoveryReasons = []RecoveryReason{RecoveryUnknown, RecoveryKey, RecoveryOffset, RecoveryExpired, RecoveryOverflow, RecoveryBusy, RecoveryLogError, RecoveryRefused}

// ErrRecovery is wrapped by every *RecoveryError.
var ErrRecovery = errors.New("socketio: recovery failed")

// RecoveryError is a failed recovery, with its reason.
type RecoveryError struct {
	Reason RecoveryReason
}

func (e *RecoveryError) Error() string { return "socketio: recovery failed: " + string(e.Reason) }

// Unwrap returns ErrRecovery.
func (e *RecoveryError) Unwrap() error { return ErrRecovery }

// reasonOf is the reason of a Restore or Range error.
func reasonOf(err error) RecoveryReason {
	var re *RecoveryError
	if errors.As(err, &re) {
		return re.Reason
	}
	return RecoveryLogError
}

// RecoveryStats count recoveries; each count only grows.
type RecoveryStats struct {
	Attempted uint64 // CONNECTs that carried a pid and an offset
	Succeeded uint64
	Failed    map[RecoveryReason]uint64 // every reason, zero or not
	Replayed  uint64                    // events sent again to recovered sockets
	// ReadGaps counts the times a SharedLog had dropped entries before
	// this node read them: its sockets missed those events live.
	ReadGaps uint64
}

// recoveryCounters are the server's RecoveryStats.
type recoveryCounters struct {
	attempted, succeeded, replayed, readGaps atomic.Uint64
	failed                                   [8]atomic.Uint64 // by index in RecoveryReasons
}

func (c *recoveryCounters) fail(r RecoveryReason) {
	if i := slices.Index(RecoveryReasons, r); i >= 0 {
		c.failed[i].Add(1)
	}
}

func (c *recoveryCounters) stats() RecoveryStats {
	st := RecoveryStats{
		Attempted: c.attempted.Load(),
		Succeeded: c.succeeded.Load(),
		Replayed:  c.replayed.Load(),
		ReadGaps:  c.readGaps.Load(),
		Failed:    make(map[RecoveryReason]uint64, len(RecoveryReasons)),
	}
	for i, r := range RecoveryReasons {
		st.Failed[r] = c.failed[i].Load()
	}
	return st
}

// RecoveryStats returns the counts of recoveries.
func (s *Server) RecoveryStats() RecoveryStats { return s.recoveries.stats() }

// maxTokenLen bounds a pid and an offset read from a client.
const maxTokenLen = 64

// recoveryClaim is the pid and offset of a CONNECT's auth.
type recoveryClaim struct {
	pid, offset string
}

// parseClaim reads "pid" and "offset" from a CONNECT's auth payload, as
// socket.io-client puts them there. hasPID: a pid is there (the client was
// connected before); ok: both are strings of 1 to 64 printable ASCII
// characters. Other fields are the application's.
func parseClaim(auth json.RawMessage) (c recoveryClaim, hasPID, ok bool) {
	if len(auth) == 0 || auth[0] != '{' {
		return recoveryClaim{}, false, false
	}
	var v struct {
		PID    json.RawMessage `json:"pid"`
		Offset json.RawMessage `json:"offset"`
	}
	if json.Unmarshal(auth, &v) != nil {
		return recoveryClaim{}, false, false
	}
	pid, ok1 := token(v.PID)
	off, ok2 := token(v.Offset)
	return recoveryClaim{pid, off}, ok1, ok1 && ok2
}

// token returns the JSON string raw if it is one of 1 to maxTokenLen
// printable ASCII characters.
func token(raw json.RawMessage) (string, bool) {
	if len(raw) < 3 || raw[0] != '"' || len(raw) > 2+6*maxTokenLen {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || s == "" || len(s) > maxTokenLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return "", false
		}
	}
	return s, true
}

// withOffset returns the messages of an EVENT packet whose JSON array data
// gets offset appended as its last element.
func withOffset(p *Packet, bins [][]byte, offset string) []engineio.Message {
	q := *p
	q.Data = appendOffset(p.Data, offset)
	return q.Messages(bins)
}

// appendOffset returns the JSON array data with the string offset appended.
func appendOffset(data []byte, offset string) []byte {
	out := make([]byte, 0, len(data)+len(offset)+4)
	out = append(out, data[:len(data)-1]...) // without its ']'
	out = append(out, ',')
	out = strconv.AppendQuote(out, offset) // offsets are ASCII: a JSON string too
	return append(out, ']')
}

// entryPacket is the packet of a log entry for namespace nsp.
func entryPacket(nsp string, e *LogEntry) *Packet {
	p := &Packet{Type: PacketEvent, Namespace: nsp, Data: e.Data}
	if len(e.Attachments) > 0 {
		p.Type, p.Attachments = PacketBinaryEvent, len(e.Attachments)
	}
	return p
}

// savesOnClose are the reasons after which a socket is saved for
// recovery, as Node's: the connection was lost, not left.
var savesOnClose = map[Reason]bool{
	ReasonTransportClose: true, ReasonTransportError: true, ReasonPingTimeout: true,
	ReasonForcedClose: true, ReasonServerShutdown: true, ReasonForcedServerClose: true,
}
