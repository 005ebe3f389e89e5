package engineio

import (
	"encoding/binary"
	"runtime"
	"testing"
)

// The Engine.IO codec on the packets a server handles most: a Socket.IO
// event in a message packet, the heartbeat, a polling payload of several
// packets with a binary one, and websocket frames in both directions.
// Run: go test -run '^$' -bench . -benchmem ./engineio/

var benchEvent = []byte(`42["incident:created",{"id":7,"title":"Database latency above threshold","severity":"high"}]`)

func BenchmarkDecodePacket(b *testing.B) {
	msg := append([]byte{pktMessage}, benchEvent...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodePacket(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePayload(b *testing.B) {
	body := appendPayload(nil, []packet{
		{typ: pktMessage, data: benchEvent},
		{typ: pktPong},
		{typ: pktMessage, binary: true, data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
	})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodePayload(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendPayload(b *testing.B) {
	pkts := []packet{
		{typ: pktMessage, data: benchEvent},
		{typ: pktPing},
		{typ: pktMessage, binary: true, data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendPayload(buf[:0], pkts)
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	msg := append([]byte{pktMessage}, benchEvent...)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendFrame(buf[:0], opText, msg)
	}
}

func BenchmarkParseFrame(b *testing.B) {
	msg := append([]byte{pktMessage}, benchEvent...)
	// A masked client text frame, as browsers send.
	frame := []byte{0x80 | opText, 0x80 | byte(len(msg))}
	frame = binary.BigEndian.AppendUint32(frame, 0x1f2e3d4c)
	frame = append(frame, msg...)
	buf := make([]byte, len(frame))
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		copy(buf, frame) // parseFrame unmasks in place
		if _, _, _, n, err := parseFrame(buf, 1e6); err != nil || n != len(frame) {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkBroadcast1MB sends one 1 MB text message to 100 websocket
// sessions whose clients read it, and reports the bytes allocated per
// recipient: O(1), as the recipients share the payload.
// Run: go test -run '^$' -bench Broadcast1MB ./engineio/
func BenchmarkBroadcast1MB(b *testing.B) {
	rig := newBroadcastRig(b, 100)
	msg := Message{Data: make([]byte, 1e6)}
	rig.broadcast(b, msg) // warm the pools
	b.SetBytes(int64(len(msg.Data)) * int64(len(rig.sockets)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		rig.broadcast(b, msg)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N*len(rig.sockets)), "B/recipient")
}
