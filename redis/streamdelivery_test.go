package redis

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/socketio"
)

// streamNode is a server on a Cluster and, unless classic, a shared
// StreamLog (recovery for every socket, Options.StreamDelivery): a
// sessiongate node of the cluster. A classic node stands for a Node peer
// on @socket.io/redis-adapter, which reads no stream.
func streamNode(t *testing.T, key, stream string, classic bool) (*socketio.Server, string) {
	t.Helper()
	cl := newCluster(t, Options{Key: key, StreamDelivery: !classic})
	sopts := socketio.Options{NewAdapter: cl.Adapter}
	if !classic {
		log, err := NewStreamLog(waitCtx(t), StreamLogOptions{Options: Options{URL: redisURL(t), Key: key}, StreamName: stream})
		if err != nil {
			t.Fatalf("Redis at %s: %v", redisURL(t), err)
		}
		t.Cleanup(func() { log.Close() })
		sopts.Recovery = &socketio.RecoveryOptions{Log: log}
	}
	srv := socketio.NewServer(sopts)
	t.Cleanup(func() { srv.Close() })
	srv.OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
		return socketio.ConnectReply{Rooms: []string{"room1"}}, nil
	})
	if err := srv.Of("/").Adapter().(*Adapter).Ready(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, hs.URL
}

// TestStreamDelivery: with StreamDelivery, a broadcast of a sessiongate
// node reaches the clients of the other sessiongate node once (from the
// stream; its pub/sub copy is skipped) and those of a classic peer once
// (from pub/sub); a classic peer's broadcast reaches every client once.
func TestStreamDelivery(t *testing.T) {
	key := testKey()
	stream := key + ":stream"
	rc := admin(t)
	t.Cleanup(func() { rc.Do(context.Background(), rc.B().Del().Key(stream).Build()) })
	var srvs [3]*socketio.Server
	var urls [3]string
	for i := range srvs {
		srvs[i], urls[i] = streamNode(t, key, stream, i == 2)
	}
	var names [3][]string
	for round, from := range []int{0, 2, 1} {
		var clients [3]*siotest.Client
		for i := range clients {
			clients[i], _ = dial(t, urls[i], "/")
		}
		ns := srvs[from].Of("/")
		for _, ev := range []string{"a", "b", "end"} {
			if err := ns.To("room1").Emit(waitCtx(t), ev, round); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range clients {
			if _, err := c.WaitEvent(waitCtx(t), "end"); err != nil {
				t.Fatal(err)
			}
			names[i] = nil
			for _, ev := range c.Events() {
				names[i] = append(names[i], ev.Name)
			}
			if want := []string{"recovery", "a", "b", "end"}; i == 2 {
				want = want[1:] // no recovery on the classic node
				if !slices.Equal(names[i], want) {
					t.Errorf("from node %d, the classic node's client got %v, want %v", from, names[i], want)
				}
			} else if !slices.Equal(names[i], want) {
				t.Errorf("from node %d, node %d's client got %v, want %v", from, i, names[i], want)
			}
		}
	}
}
