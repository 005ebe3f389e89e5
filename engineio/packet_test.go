package engineio

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecodePayload(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []packet
		err  bool
	}{
		{"one text", "4hello", []packet{{typ: pktMessage, data: []byte("hello")}}, false},
		{"several", "4a\x1e2\x1e3probe", []packet{
			{typ: pktMessage, data: []byte("a")},
			{typ: pktPing, data: []byte{}},
			{typ: pktPong, data: []byte("probe")},
		}, false},
		{"text and binary", "4hello\x1ebAQIDBA==", []packet{
			{typ: pktMessage, data: []byte("hello")},
			{typ: pktMessage, binary: true, data: []byte{1, 2, 3, 4}},
		}, false},
		{"empty binary", "b", []packet{{typ: pktMessage, binary: true, data: []byte{}}}, false},
		{"empty body", "", nil, true},
		{"empty record", "4a\x1e", nil, true},
		{"bad type", "abc", nil, true},
		{"type out of range", "7x", nil, true},
		{"bad base64", "b!!!", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePayload([]byte(tt.in))
			if tt.err {
				if !errors.Is(err, errParse) {
					t.Fatalf("decodePayload(%q) error = %v, want errParse", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodePayload(%q): %v", tt.in, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("decodePayload(%q) = %d packets, want %d", tt.in, len(got), len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.typ != w.typ || g.binary != w.binary || !bytes.Equal(g.data, w.data) {
					t.Errorf("packet %d = %+v, want %+v", i, g, w)
				}
			}
			// Encoding what was decoded gives the input back.
			if enc := appendPayload(nil, got); string(enc) != tt.in {
				t.Errorf("appendPayload = %q, want %q", enc, tt.in)
			}
		})
	}
}

func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"4hello", "4a\x1e2\x1e3probe", "4hello\x1ebAQIDBA==", "b", "", "\x1e", "1", "6\x1e6", "b====", "0{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pkts, err := decodePayload(body)
		if err != nil {
			return
		}
		total := 0
		for _, p := range pkts {
			total += len(p.data)
			if !p.binary && (p.typ < pktOpen || p.typ > pktNoop) {
				t.Fatalf("decoded type %q", p.typ)
			}
		}
		if total > len(body) {
			t.Fatalf("decoded %d bytes from a %d-byte body", total, len(body))
		}
		again, err := decodePayload(appendPayload(nil, pkts))
		if err != nil || len(again) != len(pkts) {
			t.Fatalf("re-decoding failed: %v (%d packets, want %d)", err, len(again), len(pkts))
		}
	})
}

func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{"4hello", "2probe", "3", "5", "6", "1", "", "x", "0{\"sid\":\"a\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePacket(b)
		if err != nil {
			return
		}
		if p.typ != b[0] || !bytes.Equal(p.data, b[1:]) {
			t.Fatalf("decodePacket(%q) = %+v", b, p)
		}
	})
}
