package postgres

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/pgtest"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/socketio"
)

// benchPair is two nodes on one bus and a client of the second in room "r".
func benchPair(b *testing.B) (from *socketio.Namespace, c *siotest.Client, cl *Cluster) {
	b.Helper()
	_, url := pgtest.Schema(b)
	opts := testOptions()
	opts.ChannelPrefix = "b" + randomID()[:10]
	var nss []*socketio.Namespace
	var urls []string
	var clusters []*Cluster
	for range 2 {
		cl, err := NewCluster(context.Background(), url, opts)
		if err != nil {
			b.Fatal(err)
		}
		srv := socketio.NewServer(socketio.Options{NewAdapter: cl.Adapter})
		ns := srv.Of("/")
		ns.OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
			return socketio.ConnectReply{Rooms: []string{"r"}}, nil
		})
		hs := httptest.NewServer(srv)
		b.Cleanup(func() {
			hs.Close()
			srv.Close()
			cl.Close()
		})
		nss = append(nss, ns)
		urls = append(urls, hs.URL)
		clusters = append(clusters, cl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ns := range nss {
		for n, _ := ns.Adapter().ServerCount(ctx); n != 2; n, _ = ns.Adapter().ServerCount(ctx) {
			select {
			case <-ctx.Done():
				b.Fatal("the nodes never saw each other")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	c, err := siotest.Dial(ctx, urls[1], siotest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if _, err := c.Connected(ctx); err != nil {
		b.Fatal(err)
	}
	return nss[0], c, clusters[0]
}

// BenchmarkClusterBroadcastLatency: one broadcast at a time from one node
// to a socket on another, through NOTIFY; ns/op is the time from Emit to
// the client's receipt.
func BenchmarkClusterBroadcastLatency(b *testing.B) {
	if testing.Short() {
		b.Skip("-short: needs PostgreSQL")
	}
	from, c, _ := benchPair(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := from.To("r").Emit(ctx, "ev", 1); err != nil {
			b.Fatal(err)
		}
		if _, err := c.WaitEvent(ctx, "ev"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClusterBroadcastThroughput: 16 goroutines broadcast from one
// node; the op ends when the socket on the other node has every message.
// The publisher batches what queues up into one pipelined round trip.
func BenchmarkClusterBroadcastThroughput(b *testing.B) {
	if testing.Short() {
		b.Skip("-short: needs PostgreSQL")
	}
	from, c, _ := benchPair(b)
	ctx := context.Background()
	b.ResetTimer()
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		wg.Go(func() {
			for i := w; i < b.N; i += workers {
				if err := from.To("r").Emit(ctx, "ev", i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	for range b.N {
		if _, err := c.WaitEvent(ctx, "ev"); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
}
