package engineio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// clientFrame encodes a masked client frame.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}

type gotFrame struct {
	op   byte
	data string
}

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	tests := []struct {
		name  string
		input [][]byte // fed one after the other
		max   int64
		want  []gotFrame
		err   error
	}{
		{"text", [][]byte{clientFrame(true, opText, []byte("4hello"))}, 100,
			[]gotFrame{{opText, "4hello"}}, nil},
		{"two in one read", [][]byte{append(clientFrame(true, opText, []byte("4a")), clientFrame(true, opBinary, []byte{1, 2})...)}, 100,
			[]gotFrame{{opText, "4a"}, {opBinary, "\x01\x02"}}, nil},
		{"split across reads", func() [][]byte {
			f := clientFrame(true, opText, []byte("4split"))
			return [][]byte{f[:1], f[1:3], f[3:9], f[9:]}
		}(), 100, []gotFrame{{opText, "4split"}}, nil},
		{"fragmented with ping between", [][]byte{
			clientFrame(false, opText, []byte("4he")),
			clientFrame(true, opPing, []byte("p")),
			clientFrame(false, opContinuation, []byte("ll")),
			clientFrame(true, opContinuation, []byte("o")),
		}, 100, []gotFrame{{opPing, "p"}, {opText, "4hello"}}, nil},
		{"16-bit length", [][]byte{clientFrame(true, opBinary, big[:300])}, 1000,
			[]gotFrame{{opBinary, string(big[:300])}}, nil},
		{"64-bit length", [][]byte{clientFrame(true, opBinary, big)}, 100000,
			[]gotFrame{{opBinary, string(big)}}, nil},
		{"too big", [][]byte{clientFrame(true, opText, big[:101])}, 100, nil, errFrameTooBig},
		{"too big from header alone", [][]byte{clientFrame(true, opText, big)[:10]}, 100, nil, errFrameTooBig},
		{"fragments too big", [][]byte{
			clientFrame(false, opText, big[:60]), clientFrame(true, opContinuation, big[:60]),
		}, 100, nil, errFrameTooBig},
		{"unmasked", [][]byte{{0x81, 0x01, 'x'}}, 100, nil, errFrameProtocol},
		{"reserved bits", [][]byte{{0xc1, 0x80, 0, 0, 0, 0}}, 100, nil, errFrameProtocol},
		{"bad opcode", [][]byte{{0x83, 0x80, 0, 0, 0, 0}}, 100, nil, errFrameProtocol},
		{"fragmented control", [][]byte{clientFrame(false, opPing, nil)}, 100, nil, errFrameProtocol},
		{"continuation first", [][]byte{clientFrame(true, opContinuation, []byte("x"))}, 100, nil, errFrameProtocol},
		{"new message inside fragments", [][]byte{
			clientFrame(false, opText, []byte("4")), clientFrame(true, opText, []byte("4")),
		}, 100, nil, errFrameProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fr frameReader
			var got []gotFrame
			var err error
			for _, in := range tt.input {
				err = fr.feed(in, tt.max, func(op byte, p []byte) error {
					got = append(got, gotFrame{op, string(p)})
					return nil
				})
				if err != nil {
					break
				}
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("feed error = %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d frames, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("frame %d = %v, want %v", i, got[i].op, tt.want[i].op)
				}
			}
			if fr.in != nil || fr.frag != nil {
				t.Errorf("reader keeps %d+%d bytes after complete frames", len(fr.in), len(fr.frag))
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		b := appendFrame(nil, opBinary, make([]byte, n))
		// Mask it as a client would and parse it back.
		hdr := 2
		switch {
		case n > 65535:
			hdr = 10
		case n > 125:
			hdr = 4
		}
		masked := append(append(append([]byte{}, b[:hdr]...), 0, 0, 0, 0), b[hdr:]...)
		masked[1] |= 0x80
		op, fin, p, used, err := parseFrame(masked, 1<<20)
		if err != nil || !fin || op != opBinary || len(p) != n || used != len(masked) {
			t.Errorf("n=%d: parse = op %d fin %v len %d used %d err %v", n, op, fin, len(p), used, err)
		}
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte("4hello")), 3)
	f.Add(append(clientFrame(false, opText, []byte("4he")), clientFrame(true, opContinuation, []byte("llo"))...), 5)
	f.Add(clientFrame(true, opClose, []byte{0x03, 0xe8}), 1)
	f.Add(clientFrame(true, opBinary, bytes.Repeat([]byte{7}, 200)), 50)
	f.Add([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 4)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		const max = 1024
		var fr frameReader
		if split <= 0 || split > len(data) {
			split = len(data)
		}
		for len(data) > 0 {
			n := min(split, len(data))
			err := fr.feed(data[:n], max, func(op byte, p []byte) error {
				if len(p) > max {
					t.Fatalf("message of %d bytes over max %d", len(p), max)
				}
				return nil
			})
			if err != nil {
				return
			}
			if len(fr.in) > max+14 || len(fr.frag) > max {
				t.Fatalf("buffered %d+%d bytes over max %d", len(fr.in), len(fr.frag), max)
			}
			data = data[n:]
		}
	})
}

// TestManySmallFragments: a message sent as many small fragments is
// reassembled only up to the maximum payload; past it the reader fails
// with errFrameTooBig, never having held more, and a message within the
// limit still arrives whole.
func TestManySmallFragments(t *testing.T) {
	const max = 1000
	var stream []byte
	stream = appendClientFrame(stream, opText, false, []byte("4"))
	for range 500 { // 5000 bytes in 10-byte fragments
		stream = appendClientFrame(stream, opContinuation, false, []byte("0123456789"))
	}
	var fr frameReader
	var err error
	for i := 0; i < len(stream) && err == nil; i += 7 { // odd read sizes
		err = fr.feed(stream[i:min(i+7, len(stream))], max, func(byte, []byte) error {
			t.Fatal("a message past the limit was delivered")
			return nil
		})
		if len(fr.frag) > max {
			t.Fatalf("reassembled %d bytes, over the maximum %d", len(fr.frag), max)
		}
	}
	if err != errFrameTooBig {
		t.Fatalf("feed = %v, want errFrameTooBig", err)
	}

	var ok frameReader
	stream = appendClientFrame(nil, opText, false, []byte("4"))
	for range 99 {
		stream = appendClientFrame(stream, opContinuation, false, []byte("0123456789"))
	}
	stream = appendClientFrame(stream, opContinuation, true, []byte("!"))
	var got []byte
	if err := ok.feed(stream, max, func(op byte, p []byte) error { got = append([]byte(nil), p...); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 992 {
		t.Fatalf("message of %d bytes, want 992", len(got))
	}
}
