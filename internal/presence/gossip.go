package presence

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The types of gossip messages.
const (
	// TypeDelta carries the (room, user) socket counts of the sender that
	// changed in its last window; 0 means the user has none left there.
	TypeDelta = "delta"
	// TypeState carries the sender's whole state (possibly over several
	// messages); it refreshes the TTL of every entry it names.
	TypeState = "state"
	// TypeBye says the sender is leaving: drop its entries now.
	TypeBye = "bye"
	// TypeSync asks every node for its state (a node that just started).
	TypeSync = "sync"
)

// Bounds of a gossip message, checked by Decode.
const (
	// Version is the wire version; a message of another is refused.
	Version = 1
	// MaxMessage is the largest encoded message Decode takes, in bytes.
	// Senders split a state or delta into messages of about 64 KiB at most.
	MaxMessage = 1 << 20
	// MaxNodeLen is the longest node id.
	MaxNodeLen = 64
	// MaxRoomLen is the longest room name, in bytes (the gateway's).
	MaxRoomLen = 256
	// MaxUserLen is the longest user id, in bytes: a user with a longer one
	// is tracked on its own node only (never gossiped).
	MaxUserLen = 512
	// MaxConns is the largest socket count an entry may carry.
	MaxConns = 1 << 20
)

// Message is one gossip message between the nodes of a cluster, sent as the
// JSON text Encode returns:
//
//	{"v":1,"t":"delta","node":"9f2c…","rooms":{"incident:7":{"42":2,"7":0}}}
type Message struct {
	Type string
	Node string
	// Rooms maps a room to its users' socket counts on the sender (delta,
	// state only).
	Rooms map[string]map[string]int
}

type wireMessage struct {
	V     int                       `json:"v"`
	T     string                    `json:"t"`
	Node  string                    `json:"node"`
	Rooms map[string]map[string]int `json:"rooms,omitempty"`
}

// Encode returns m's wire form.
func (m Message) Encode() string {
	b, err := json.Marshal(wireMessage{V: Version, T: m.Type, Node: m.Node, Rooms: m.Rooms})
	if err != nil {
		panic(err) // strings and ints only: cannot fail
	}
	return string(b)
}

// ErrInvalid is wrapped by Decode's errors.
var ErrInvalid = errors.New("presence: invalid gossip message")

// Decode parses and checks a message another node sent: at most
// MaxMessage bytes, this Version, a known type, a node id, and entries
// whose rooms, users and counts are within the bounds above. Anything else
// is refused whole, with an error wrapping ErrInvalid.
func Decode(data string) (Message, error) {
	if len(data) > MaxMessage {
		return Message{}, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(data), MaxMessage)
	}
	var w wireMessage
	if err := json.Unmarshal([]byte(data), &w); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if w.V != Version {
		return Message{}, fmt.Errorf("%w: version %d", ErrInvalid, w.V)
	}
	switch w.T {
	case TypeDelta, TypeState:
	case TypeBye, TypeSync:
		if len(w.Rooms) > 0 {
			return Message{}, fmt.Errorf("%w: %s with rooms", ErrInvalid, w.T)
		}
	default:
		return Message{}, fmt.Errorf("%w: type %q", ErrInvalid, w.T)
	}
	if w.Node == "" || len(w.Node) > MaxNodeLen || !utf8.ValidString(w.Node) {
		return Message{}, fmt.Errorf("%w: node id", ErrInvalid)
	}
	for r, users := range w.Rooms {
		if !validName(r, MaxRoomLen) || strings.HasPrefix(r, "user:") {
			return Message{}, fmt.Errorf("%w: room name", ErrInvalid)
		}
		for u, c := range users {
			if !validName(u, MaxUserLen) || c < 0 || c > MaxConns {
				return Message{}, fmt.Errorf("%w: entry of room %q", ErrInvalid, r)
			}
		}
	}
	return Message{Type: w.T, Node: w.Node, Rooms: w.Rooms}, nil
}

func validName(s string, maxLen int) bool {
	return s != "" && len(s) <= maxLen && utf8.ValidString(s)
}

// entryOverhead bounds the JSON bytes of an entry beyond its two names:
// quotes, colons, commas, braces, a count of up to 7 digits.
const entryOverhead = 24

// chunkSize is the size a builder's messages stay under: small enough that
// a receiver applies one in a millisecond or so (it holds the presence lock
// meanwhile, which room changes wait for), large enough that a state of
// 100,000 entries is a few dozen messages.
const chunkSize = 64 << 10

// jsonLen bounds the length of s, valid UTF-8, as encoding/json writes
// it, quotes excluded: a quote or a backslash takes 2 bytes, a control character or
// one of <>& 6, and a non-ASCII byte is counted twice (U+2028 and U+2029,
// 3 bytes, take 6).
func jsonLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 6
		case c == '"' || c == '\\' || c >= 0x80:
			n += 2
		default:
			n++
		}
	}
	return n
}

// builder splits entries into messages of at most chunkSize bytes.
type builder struct {
	typ, node string
	out       []Message
	cur       Message
	size      int
}

func (b *builder) add(roomName, user string, c int) {
	if !validName(user, MaxUserLen) || !validName(roomName, MaxRoomLen) {
		return // refused by Decode: kept on this node
	}
	n := jsonLen(user) + entryOverhead
	if b.cur.Rooms[roomName] == nil {
		n += jsonLen(roomName) + entryOverhead
	}
	if b.cur.Rooms == nil || b.size+n > chunkSize {
		b.flush()
		b.cur = Message{Type: b.typ, Node: b.node, Rooms: make(map[string]map[string]int)}
		b.size = 0
	}
	users := b.cur.Rooms[roomName]
	if users == nil {
		users = make(map[string]int)
		b.cur.Rooms[roomName] = users
	}
	users[user] = c
	b.size += n
}

func (b *builder) flush() {
	if len(b.cur.Rooms) > 0 {
		b.out = append(b.out, b.cur)
	}
}

// done returns the messages; with atLeastOne, an empty message when there
// were no entries.
func (b *builder) done(atLeastOne bool) []Message {
	b.flush()
	if len(b.out) == 0 && atLeastOne {
		b.out = append(b.out, Message{Type: b.typ, Node: b.node})
	}
	return b.out
}
