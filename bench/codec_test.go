// Package bench_test holds the micro-benchmarks of the Socket.IO packet
// codec, written against package socketio's exported API so that they sit
// with the other benchmarks (bench/run.sh reports them in
// docs/benchmarks.md):
//
//	go test -run '^$' -bench . -benchmem ./bench/
package bench_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/socketio"
)

// The packets a server handles most: its CONNECT reply, small events both
// ways, an acknowledgement on a namespace, a binary event, and a 4 KiB event.
var (
	connectReply = &socketio.Packet{Type: socketio.PacketConnect, Data: json.RawMessage(`{"sid":"AbCdEfGhIjKlMnOpQrSt"}`)}
	smallEvent   = &socketio.Packet{Type: socketio.PacketEvent, Data: json.RawMessage(`["incident:created",{"id":4217,"title":"disk full","severity":"high"}]`)}
	ackOnNsp     = &socketio.Packet{Type: socketio.PacketAck, Namespace: "/admin", ID: 17, HasID: true, Data: json.RawMessage(`[{"ok":true}]`)}
	binaryEvent  = &socketio.Packet{Type: socketio.PacketBinaryEvent, Attachments: 1, Data: json.RawMessage(`["upload",{"name":"a.png","data":{"_placeholder":true,"num":0}}]`)}
	largeEvent   = &socketio.Packet{Type: socketio.PacketEvent, Data: json.RawMessage(`["report",{"text":"` + strings.Repeat("x", 4096) + `"}]`)}
)

func BenchmarkEncode(b *testing.B) {
	for _, bc := range []struct {
		name string
		p    *socketio.Packet
	}{
		{"ConnectReply", connectReply},
		{"Event", smallEvent},
		{"AckNamespace", ackOnNsp},
		{"BinaryEvent", binaryEvent},
		{"Event4KiB", largeEvent},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.p.Data)))
			for b.Loop() {
				bc.p.Encode()
			}
		})
	}
}

// BenchmarkEmitEncode is what an emit costs before any socket is written
// to: the arguments marshalled to JSON, then the packet encoded once (a
// broadcast encodes once for all recipients).
func BenchmarkEmitEncode(b *testing.B) {
	b.ReportAllocs()
	data := map[string]any{"id": 4217, "title": "disk full", "severity": "high"}
	for b.Loop() {
		raw, err := json.Marshal([]any{"incident:created", data})
		if err != nil {
			b.Fatal(err)
		}
		p := socketio.Packet{Type: socketio.PacketEvent, Data: raw}
		p.Encode()
	}
}

func BenchmarkEncodeBinaryMessages(b *testing.B) {
	b.ReportAllocs()
	att := [][]byte{bytes.Repeat([]byte{7}, 1024)}
	for b.Loop() {
		binaryEvent.Messages(att)
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name string
		p    *socketio.Packet
	}{
		{"Connect", &socketio.Packet{Type: socketio.PacketConnect, Data: json.RawMessage(`{"token":"abc"}`)}},
		{"Event", smallEvent},
		{"AckNamespace", ackOnNsp},
		{"BinaryEvent", binaryEvent},
		{"Event4KiB", largeEvent},
	} {
		wire := bc.p.Encode()
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			for b.Loop() {
				if _, err := socketio.DecodePacket(wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCodecFixtures keeps the benchmark inputs honest: each encodes to the
// wire form the protocol specifies and decodes back to the same packet.
func TestCodecFixtures(t *testing.T) {
	for _, tc := range []struct {
		p    *socketio.Packet
		wire string
	}{
		{connectReply, `0{"sid":"AbCdEfGhIjKlMnOpQrSt"}`},
		{smallEvent, `2["incident:created",{"id":4217,"title":"disk full","severity":"high"}]`},
		{ackOnNsp, `3/admin,17[{"ok":true}]`},
		{binaryEvent, `51-["upload",{"name":"a.png","data":{"_placeholder":true,"num":0}}]`},
	} {
		got := tc.p.Encode()
		if string(got) != tc.wire {
			t.Errorf("Encode() = %s, want %s", got, tc.wire)
			continue
		}
		back, err := socketio.DecodePacket(got)
		if err != nil {
			t.Errorf("DecodePacket(%s): %v", got, err)
			continue
		}
		if back.Type != tc.p.Type || back.ID != tc.p.ID || back.HasID != tc.p.HasID ||
			back.Attachments != tc.p.Attachments || !bytes.Equal(back.Data, tc.p.Data) {
			t.Errorf("DecodePacket(%s) = %+v, want %+v", got, back, tc.p)
		}
	}
}
