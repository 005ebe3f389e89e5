package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/sessiongate/sessiongate/engineio"
)

// PacketType is the type of a Socket.IO packet.
type PacketType byte

// The packet types of the Socket.IO v5 protocol.
const (
	PacketConnect PacketType = iota
	PacketDisconnect
	PacketEvent
	PacketAck
	PacketConnectError
	PacketBinaryEvent
	PacketBinaryAck
)

var packetTypeNames = [...]string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"}

func (t PacketType) String() string {
	if int(t) < len(packetTypeNames) {
		return packetTypeNames[t]
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// Limits enforced by DecodePacket.
const (
	// MaxAttachments is the largest number of binary attachments a packet
	// may announce: socket.io-parser's default (maxAttachments, since
	// 4.2.3). A binary packet announcing none is invalid, as there.
	MaxAttachments = 10
	// MaxAckID is the largest acknowledgement id accepted: the largest
	// integer a JavaScript number holds exactly.
	MaxAckID = 1<<53 - 1
)

// ErrInvalidPacket is wrapped by every error DecodePacket returns.
var ErrInvalidPacket = errors.New("socketio: invalid packet")

// Packet is one Socket.IO packet. For the binary types, Data holds the JSON
// with {"_placeholder":true,"num":N} objects in place of the attachments,
// and Attachments their number.
type Packet struct {
	Type        PacketType
	Namespace   string // "/" when empty
	ID          uint64 // acknowledgement id; meaningful only if HasID
	HasID       bool
	Data        json.RawMessage // nil: no payload
	Attachments int
}

// Encode returns the packet's text form:
// <type>[<attachments>-][<namespace>,][<id>][<data>].
func (p *Packet) Encode() []byte {
	b := make([]byte, 0, 24+len(p.Namespace)+len(p.Data))
	b = append(b, '0'+byte(p.Type))
	if p.Type == PacketBinaryEvent || p.Type == PacketBinaryAck {
		b = strconv.AppendInt(b, int64(p.Attachments), 10)
		b = append(b, '-')
	}
	if p.Namespace != "" && p.Namespace != "/" {
		b = append(b, p.Namespace...)
		b = append(b, ',')
	}
	if p.HasID {
		b = strconv.AppendUint(b, p.ID, 10)
	}
	return append(b, p.Data...)
}

var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidPacket, fmt.Sprintf(format, args...))
}

// errTooManyAttachments is wrapped by the error of a packet announcing more
// than MaxAttachments attachments.
var errTooManyAttachments = fmt.Errorf("%w: too many attachments", ErrInvalidPacket)

// DecodePacket parses the text form of a packet, validating it as the
// reference implementation does: the payload must be valid JSON of the shape
// the type requires (an object for CONNECT, none for DISCONNECT, an array
// starting with a non-reserved event name for events, an array for acks).
// Data aliases b.
func DecodePacket(b []byte) (*Packet, error) {
	p, err := decodeHeader(b)
	if err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// decodeHeader parses a packet's type, attachment count, namespace and ack
// id, and sets Data to the rest of b without looking at it: a packet the
// connection's state refuses costs no JSON parsing.
func decodeHeader(b []byte) (*Packet, error) {
	if len(b) == 0 {
		return nil, invalid("empty")
	}
	if b[0] < '0' || b[0] > '6' {
		return nil, invalid("unknown packet type %q", b[0])
	}
	p := &Packet{Type: PacketType(b[0] - '0'), Namespace: "/"}
	i := 1
	if p.Type == PacketBinaryEvent || p.Type == PacketBinaryAck {
		start := i
		for i < len(b) && b[i] != '-' {
			if b[i] < '0' || b[i] > '9' || i-start >= 4 {
				return nil, invalid("illegal attachments")
			}
			i++
		}
		if i == start || i == len(b) {
			return nil, invalid("illegal attachments")
		}
		n, _ := strconv.Atoi(string(b[start:i]))
		if n < 1 {
			return nil, invalid("illegal attachments")
		}
		if n > MaxAttachments {
			return nil, fmt.Errorf("%w: %d", errTooManyAttachments, n)
		}
		p.Attachments = n
		i++ // '-'
	}
	if i < len(b) && b[i] == '/' {
		start := i
		for i < len(b) && b[i] != ',' {
			i++
		}
		p.Namespace = string(b[start:i])
		if i < len(b) {
			i++ // ','
		}
	}
	if i < len(b) && b[i] >= '0' && b[i] <= '9' {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-start >= 16 {
				return nil, invalid("ack id too long")
			}
			i++
		}
		id, err := strconv.ParseUint(string(b[start:i]), 10, 64)
		if err != nil || id > MaxAckID {
			return nil, invalid("ack id out of range")
		}
		p.ID, p.HasID = id, true
	}
	if i < len(b) {
		p.Data = b[i:]
	}
	return p, nil
}

func (p *Packet) validate() error {
	if p.Data == nil {
		switch p.Type {
		case PacketConnect, PacketDisconnect:
			return nil
		default:
			return invalid("%v without payload", p.Type)
		}
	}
	if !json.Valid(p.Data) {
		return invalid("payload is not JSON")
	}
	first := firstByte(p.Data)
	switch p.Type {
	case PacketConnect:
		if first != '{' {
			return invalid("CONNECT payload is not an object")
		}
	case PacketDisconnect:
		return invalid("DISCONNECT with payload")
	case PacketConnectError:
		if first != '{' && first != '"' {
			return invalid("CONNECT_ERROR payload is not an object or string")
		}
	case PacketEvent, PacketBinaryEvent:
		if first != '[' {
			return invalid("event payload is not an array")
		}
		if _, err := eventName(p.Data); err != nil {
			return err
		}
	case PacketAck, PacketBinaryAck:
		if !p.HasID {
			return invalid("ack without id")
		}
		if first != '[' {
			return invalid("ack payload is not an array")
		}
	}
	return nil
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// eventName returns the event name, the first element of a valid JSON array:
// a string that is not reserved, or a number (kept in its JSON form).
func eventName(data []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // '['
		return "", invalid("event payload: %v", err)
	}
	tok, err := dec.Token()
	if err != nil {
		return "", invalid("event payload: %v", err)
	}
	switch v := tok.(type) {
	case string:
		if reservedEvents[v] {
			return "", invalid("reserved event name %q", v)
		}
		return v, nil
	case json.Number:
		return v.String(), nil
	}
	return "", invalid("event name is not a string")
}

// Messages returns the Engine.IO messages carrying p and its attachments:
// the text packet, then one binary message per attachment.
func (p *Packet) Messages(attachments [][]byte) []engineio.Message {
	msgs := make([]engineio.Message, 0, 1+len(attachments))
	msgs = append(msgs, engineio.Message{Data: p.Encode()})
	for _, a := range attachments {
		msgs = append(msgs, engineio.Message{Data: a, Binary: true})
	}
	return msgs
}
