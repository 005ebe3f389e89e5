package engineio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// Engine.IO v4 packet types, as the ASCII digit sent on the wire.
const (
	pktOpen    byte = '0'
	pktClose   byte = '1'
	pktPing    byte = '2'
	pktPong    byte = '3'
	pktMessage byte = '4'
	pktUpgrade byte = '5'
	pktNoop    byte = '6'
)

// recordSeparator joins the packets of an HTTP long-polling payload.
const recordSeparator = 0x1e

// errParse reports a malformed packet or payload.
var errParse = errors.New("engineio: malformed packet")

// packet is one decoded Engine.IO packet. binary is set only for message
// packets whose data is binary.
type packet struct {
	typ    byte
	binary bool
	data   []byte
}

// decodePacket decodes a text-encoded packet (a websocket text frame, or one
// record of a polling payload without the base64 form). data aliases b.
func decodePacket(b []byte) (packet, error) {
	if len(b) == 0 {
		return packet{}, fmt.Errorf("decode packet: empty: %w", errParse)
	}
	if b[0] < pktOpen || b[0] > pktNoop {
		return packet{}, fmt.Errorf("decode packet: type %q: %w", b[0], errParse)
	}
	return packet{typ: b[0], data: b[1:]}, nil
}

// decodePayload decodes an HTTP long-polling request body: packets joined by
// the record separator, binary ones as "b" followed by standard base64.
// Text packet data aliases body; binary data is freshly allocated, never
// larger than body.
func decodePayload(body []byte) ([]packet, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("decode payload: empty: %w", errParse)
	}
	pkts := make([]packet, 0, bytes.Count(body, []byte{recordSeparator})+1)
	for {
		rec, rest, more := bytes.Cut(body, []byte{recordSeparator})
		if len(rec) > 0 && rec[0] == 'b' {
			data := make([]byte, base64.StdEncoding.DecodedLen(len(rec)-1))
			m, err := base64.StdEncoding.Decode(data, rec[1:])
			if err != nil {
				return nil, fmt.Errorf("decode payload: base64: %w", errParse)
			}
			pkts = append(pkts, packet{typ: pktMessage, binary: true, data: data[:m]})
		} else {
			p, err := decodePacket(rec)
			if err != nil {
				return nil, fmt.Errorf("decode payload: %w", err)
			}
			pkts = append(pkts, p)
		}
		if !more {
			break
		}
		body = rest
	}
	return pkts, nil
}

// appendPayload appends pkts encoded as an HTTP long-polling payload to b.
func appendPayload(b []byte, pkts []packet) []byte {
	for i, p := range pkts {
		if i > 0 {
			b = append(b, recordSeparator)
		}
		if p.binary {
			b = append(b, 'b')
			b = base64.StdEncoding.AppendEncode(b, p.data)
			continue
		}
		b = append(b, p.typ)
		b = append(b, p.data...)
	}
	return b
}
