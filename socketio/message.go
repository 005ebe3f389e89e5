package socketio

import (
	"sync"

	"github.com/sessiongate/sessiongate/engineio"
)

// Message is an event to broadcast: its name and arguments. Args are the Go
// values of a local emit, or the values a bus decoded (float64, int64,
// string, bool, nil, []any, map[string]any, []byte); []byte values travel as
// binary attachments. A Message is encoded once for all the local
// recipients of a namespace; it must not be changed after it was emitted.
type Message struct {
	Event string
	Args  []any

	enc encodedMessage // the Engine.IO messages, computed once
}

// NewMessage returns the Message of event with args.
func NewMessage(event string, args ...any) *Message {
	return &Message{Event: event, Args: args}
}

// Values returns the event's arguments in the data model of the wire (what
// JSON and msgpack carry: float64 or int64, string, bool, nil, []any,
// map[string]any, with []byte for binary), for a bus to encode. Numbers
// come back as float64, as from a JSON decoder; structs as maps keyed by
// their JSON names.
func (m *Message) Values() ([]any, error) {
	data, bins, err := encodeArgs(nil, m.Args)
	if err != nil {
		return nil, err
	}
	return decodeArgs(data, bins)
}

// encodedMessage caches the packet of a Message for the first namespace it
// is broadcast in (another namespace encodes it anew: it is rare).
type encodedMessage struct {
	once sync.Once
	nsp  string
	enc  encodedEvent
	err  error
}

// encodedEvent is an event packet for one namespace: the Packet, its
// attachments, and the Engine.IO messages of the packet without an ack id,
// which every recipient of a broadcast shares.
type encodedEvent struct {
	packet *Packet
	bins   [][]byte
	msgs   []engineio.Message
}

// encoded returns the event's packet for namespace nsp.
func (m *Message) encoded(nsp string) (*encodedEvent, error) {
	m.enc.once.Do(func() {
		m.enc.nsp = nsp
		m.enc.enc, m.enc.err = encodeEvent(nsp, m.Event, m.Args)
	})
	if m.enc.nsp != nsp {
		e, err := encodeEvent(nsp, m.Event, m.Args)
		return &e, err
	}
	return &m.enc.enc, m.enc.err
}

func encodeEvent(nsp, event string, args []any) (encodedEvent, error) {
	p, bins, err := eventPacket(nsp, event, args)
	if err != nil {
		return encodedEvent{}, err
	}
	return encodedEvent{packet: p, bins: bins, msgs: p.Messages(bins)}, nil
}

// withAck returns the messages of the event asking for acknowledgement id.
func (e *encodedEvent) withAck(id uint64) []engineio.Message {
	p := *e.packet
	p.ID, p.HasID = id, true
	return p.Messages(e.bins)
}
