package redis

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/sessiongate/sessiongate/internal/clusterwire"
)

// captureSeeds adds the payloads of the emitter capture to f.
func captureSeeds(f *testing.F) {
	b, err := os.ReadFile("../internal/clusterwire/testdata/redis-emitter-capture.json")
	if err != nil {
		f.Fatal(err)
	}
	var msgs []struct{ Hex string }
	if err := json.Unmarshal(b, &msgs); err != nil {
		f.Fatal(err)
	}
	for _, m := range msgs {
		p, err := hex.DecodeString(m.Hex)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(p))
	}
}

// bareAdapter is an Adapter without Redis or namespace, for the decoders.
func bareAdapter() *Adapter {
	c := &Cluster{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c.opts.defaults()
	return &Adapter{c: c, uid: "cZrWvl", nsp: "/", requests: map[string]*pending{}, acks: map[string]*ackPending{}}
}

// FuzzBroadcast: the broadcast decoder never panics, and what it accepts
// has an event name.
func FuzzBroadcast(f *testing.F) {
	captureSeeds(f)
	f.Add("\x93\xa6cZrWvl\x80\x80")
	a := bareAdapter()
	f.Fuzz(func(t *testing.T, payload string) {
		m, _, err := a.decodeBroadcast(clusterwire.NewDecoder(bytesOf(payload), clusterwire.Limits{}))
		if err == nil && m == nil {
			t.Fatal("accepted without a message")
		}
	})
}

// FuzzRequest: decoding a request (JSON or msgpack) and reading every
// field the handlers read never panics.
func FuzzRequest(f *testing.F) {
	captureSeeds(f)
	f.Add(`{"uid":"cZrWvl","requestId":"3A25wq","type":5,"opts":{"rooms":["room1"],"except":[]}}`)
	f.Add(`{"type":2,"sid":"x","room":1,"requestId":"r"}`)
	f.Fuzz(func(t *testing.T, payload string) {
		req, err := decodeMessage(payload)
		if err != nil {
			return
		}
		_, _ = intField(req, "type")
		_, _ = clusterwire.OptsFromValue(req["opts"])
		_, _ = roomsField(req["rooms"])
		_, _, _ = clusterwire.PacketFromValue(req["packet"])
		_, _ = clusterwire.MessageFromData(req["data"])
		_, _ = clusterwire.RoomName(req["room"])
	})
}

// FuzzResponse: answers to pending requests of every kind never panic nor
// count an answer twice.
func FuzzResponse(f *testing.F) {
	f.Add(`{"requestId":"fetch1","sockets":[{"id":"a","handshake":{"query":{"t":["x"]}},"rooms":["a"],"data":null}]}`)
	f.Add(`{"requestId":"rooms1","rooms":["a",1]}`)
	f.Add(`{"type":6,"requestId":"emit01","data":1}`)
	f.Add(`{"type":8,"requestId":"ack001","clientCount":3}`)
	f.Add("\x83\xa4type\x09\xa9requestId\xa6ack001\xa6packet\xa4ok:7")
	f.Fuzz(func(t *testing.T, payload string) {
		a := bareAdapter()
		for id, typ := range map[string]int{"fetch1": reqRemoteFetch, "rooms1": reqAllRooms, "emit01": reqServerSideEmit} {
			a.requests[id] = &pending{typ: typ, want: 1, done: make(chan struct{})}
		}
		a.acks["ack001"] = &ackPending{clientCount: func(int) {}, ack: func([]any) {}}
		a.onResponse(payload)
		a.onResponse(payload)
		for id, p := range a.requests {
			if p.got > p.want {
				t.Fatalf("%s counted %d answers of %d", id, p.got, p.want)
			}
		}
	})
}
