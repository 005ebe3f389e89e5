package siotest

import (
	"context"
	"encoding/json"
	"testing"
)

// nopTransport is a transport that takes every write and reads nothing.
type nopTransport struct{}

func (nopTransport) read(ctx context.Context) ([]enginePacket, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (nopTransport) write(context.Context, []byte) error { return nil }
func (nopTransport) close()                              {}

// FuzzHandle feeds polling payloads from a server to a client: whatever
// they hold, the client must neither panic nor block.
func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		"2",
		"6\x1e40{\"sid\":\"abc\"}",
		"44{\"message\":\"unauthorized\",\"data\":{\"code\":\"NO_COOKIE\"}}",
		"44\"bare\"",
		"42[\"session_expired\",{\"reason\":\"revoked\"}]\x1e41",
		"451-[\"bin\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID",
		"431[\"ack\"]",
		"1",
		"0{}",
		"b!!",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c := &Client{ns: "/", tr: nopTransport{}, changed: make(chan struct{}), acks: map[uint64]chan []json.RawMessage{1: make(chan []json.RawMessage, 1)}, readDone: make(chan struct{})}
		c.ctx, c.end = context.WithCancel(context.Background())
		defer c.end()
		pkts, err := decodePayload(payload)
		if err != nil {
			return
		}
		for _, p := range pkts {
			if c.handle(p) != nil || c.ctx.Err() != nil {
				break
			}
		}
	})
}
