package engineio

import (
	"encoding/binary"
	"errors"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation byte = 0x0
	opText         byte = 0x1
	opBinary       byte = 0x2
	opClose        byte = 0x8
	opPing         byte = 0x9
	opPong         byte = 0xa
)

// WebSocket close codes (RFC 6455 §7.4.1).
const (
	closeNormal      uint16 = 1000
	closeProtocol    uint16 = 1002
	closeUnsupported uint16 = 1003
	closeTooBig      uint16 = 1009
)

var (
	// errFrameProtocol reports a frame that breaks RFC 6455.
	errFrameProtocol = errors.New("engineio: websocket protocol error")
	// errFrameTooBig reports a message larger than the maximum payload.
	errFrameTooBig = errors.New("engineio: websocket message too big")
)

// parseFrame parses the client frame at the start of b, unmasking its
// payload in place. It returns n == 0 (and no error) when b holds only part
// of a frame. A declared length over max is rejected from the header alone,
// before any payload is buffered.
func parseFrame(b []byte, max int64) (op byte, fin bool, payload []byte, n int, err error) {
	if len(b) < 2 {
		return 0, false, nil, 0, nil
	}
	fin = b[0]&0x80 != 0
	if b[0]&0x70 != 0 {
		return 0, false, nil, 0, errFrameProtocol // no extension negotiated
	}
	op = b[0] & 0x0f
	switch op {
	case opContinuation, opText, opBinary:
	case opClose, opPing, opPong:
		if !fin || b[1]&0x7f > 125 {
			return 0, false, nil, 0, errFrameProtocol
		}
	default:
		return 0, false, nil, 0, errFrameProtocol
	}
	if b[1]&0x80 == 0 {
		return 0, false, nil, 0, errFrameProtocol // clients must mask
	}
	length := uint64(b[1] & 0x7f)
	h := 2
	switch length {
	case 126:
		if len(b) < 4 {
			return 0, false, nil, 0, nil
		}
		length = uint64(binary.BigEndian.Uint16(b[2:]))
		h = 4
	case 127:
		if len(b) < 10 {
			return 0, false, nil, 0, nil
		}
		length = binary.BigEndian.Uint64(b[2:])
		if length>>63 != 0 {
			return 0, false, nil, 0, errFrameProtocol
		}
		h = 10
	}
	if length > uint64(max) {
		return 0, false, nil, 0, errFrameTooBig
	}
	if len(b) < h+4 || uint64(len(b)-h-4) < length {
		return 0, false, nil, 0, nil
	}
	mask := b[h : h+4]
	payload = b[h+4 : h+4+int(length)]
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return op, fin, payload, h + 4 + int(length), nil
}

// appendFrame appends an unmasked server frame with FIN set to b.
func appendFrame(b []byte, op byte, payload []byte) []byte {
	return append(appendFrameHeader(b, op, int64(len(payload))), payload...)
}

// appendFrameHeader appends the header of an unmasked server frame with FIN
// set and a payload of n bytes to b.
func appendFrameHeader(b []byte, op byte, n int64) []byte {
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		return append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		return binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		return binary.BigEndian.AppendUint64(b, uint64(n))
	}
}

// frameReader reassembles client messages from bytes read off a
// connection. It keeps only an unparsed partial frame and the fragments of
// an unfinished message, both nil when there are none.
type frameReader struct {
	in     []byte // bytes of a partial frame
	frag   []byte // data of a fragmented message so far
	fragOp byte   // opcode of that message; 0 when none
}

// feed parses data, calling h for each complete message (opText or
// opBinary) and control frame, in order. The payload passed to h is valid
// only during the call. It stops at the first error from parsing or from h.
func (fr *frameReader) feed(data []byte, max int64, h func(op byte, payload []byte) error) error {
	b, buffered := data, false
	if len(fr.in) > 0 {
		fr.in = append(fr.in, data...)
		b, buffered = fr.in, true
	}
	consumed := 0
	for len(b) > consumed {
		op, fin, payload, n, err := parseFrame(b[consumed:], max)
		if err != nil {
			fr.in = nil
			return err
		}
		if n == 0 {
			break
		}
		consumed += n
		if err := fr.frame(op, fin, payload, max, h); err != nil {
			fr.in = nil
			return err
		}
	}
	switch rest := b[consumed:]; {
	case len(rest) == 0:
		fr.in = nil
	case buffered && consumed == 0:
		// keep fr.in as it is: nothing was parsed from it
	default:
		fr.in = append(make([]byte, 0, len(rest)), rest...)
	}
	return nil
}

func (fr *frameReader) frame(op byte, fin bool, payload []byte, max int64, h func(byte, []byte) error) error {
	switch op {
	case opContinuation:
		if fr.fragOp == 0 {
			return errFrameProtocol
		}
		if int64(len(fr.frag))+int64(len(payload)) > max {
			return errFrameTooBig
		}
		fr.frag = append(fr.frag, payload...)
		if !fin {
			return nil
		}
		op, msg := fr.fragOp, fr.frag
		fr.frag, fr.fragOp = nil, 0
		return h(op, msg)
	case opText, opBinary:
		if fr.fragOp != 0 {
			return errFrameProtocol
		}
		if !fin {
			fr.fragOp = op
			fr.frag = append([]byte(nil), payload...)
			return nil
		}
	}
	return h(op, payload)
}
