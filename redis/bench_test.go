package redis

// The client choice (rueidis against go-redis) was measured with these
// benchmarks against the local Redis:
//
//	go test -run '^$' -bench 'Client' -benchtime 3s ./redis/
//
// BenchmarkClientPublish: PUBLISH of a 120-byte message from parallel
// goroutines (as many broadcasting handlers do); BenchmarkClientSubscribe:
// one dynamic SUBSCRIBE on a connection already subscribed to other
// channels, until its confirmation, then its UNSUBSCRIBE (a room's first
// member joining and its last leaving).
//
// On the 2-core test machine (shared with other work), Redis 7.0.15 on
// loopback, 2026-12-03, -count 3:
//
//	PUBLISH, 8 × GOMAXPROCS publishers  rueidis 6.7–8.4 µs/op   go-redis 36–52 µs/op
//	SUBSCRIBE + UNSUBSCRIBE round trip  rueidis 85–141 µs/op    go-redis 85–153 µs/op
//
// rueidis pipelines concurrent commands on one connection (4–6× the
// publish rate, the hot path of a broadcast); subscription churn costs
// the same with both. rueidis also reports the end of the subscriber
// connection (SetPubSubHooks' channel), which the resubscription relies on.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

var benchPayload = strings.Repeat("x", 120)

func BenchmarkClientPublish(b *testing.B) {
	ctx := context.Background()
	b.Run("rueidis", func(b *testing.B) {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{"127.0.0.1:6379"}, DisableCache: true})
		if err != nil {
			b.Fatalf("Redis at 127.0.0.1:6379: %v", err)
		}
		defer c.Close()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := c.Do(ctx, c.B().Publish().Channel("bench#pub").Message(benchPayload).Build()).Error(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("go-redis", func(b *testing.B) {
		c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
		defer c.Close()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := c.Publish(ctx, "bench#pub", benchPayload).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkClientSubscribe(b *testing.B) {
	ctx := context.Background()
	b.Run("rueidis", func(b *testing.B) {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{"127.0.0.1:6379"}, DisableCache: true})
		if err != nil {
			b.Fatalf("Redis at 127.0.0.1:6379: %v", err)
		}
		defer c.Close()
		d, cancel := c.Dedicate()
		defer cancel()
		confirmed := make(chan string, 1)
		d.SetPubSubHooks(rueidis.PubSubHooks{
			OnMessage: func(rueidis.PubSubMessage) {},
			OnSubscription: func(s rueidis.PubSubSubscription) {
				if s.Kind == "subscribe" {
					confirmed <- s.Channel
				}
			},
		})
		for i := range 100 {
			d.Do(ctx, d.B().Subscribe().Channel(fmt.Sprint("bench#base#", i)).Build())
			<-confirmed
		}
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			ch := fmt.Sprint("bench#room#", i)
			if err := d.Do(ctx, d.B().Subscribe().Channel(ch).Build()).Error(); err != nil {
				b.Fatal(err)
			}
			for <-confirmed != ch {
			}
			if err := d.Do(ctx, d.B().Unsubscribe().Channel(ch).Build()).Error(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-redis", func(b *testing.B) {
		c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
		defer c.Close()
		ps := c.Subscribe(ctx)
		defer ps.Close()
		wait := func(kind, ch string) {
			for {
				m, err := ps.Receive(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if s, ok := m.(*goredis.Subscription); ok && s.Kind == kind && s.Channel == ch {
					return
				}
			}
		}
		for i := range 100 {
			ch := fmt.Sprint("bench#base#", i)
			if err := ps.Subscribe(ctx, ch); err != nil {
				b.Fatal(err)
			}
			wait("subscribe", ch)
		}
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			ch := fmt.Sprint("bench#room#", i)
			if err := ps.Subscribe(ctx, ch); err != nil {
				b.Fatal(err)
			}
			wait("subscribe", ch)
			if err := ps.Unsubscribe(ctx, ch); err != nil {
				b.Fatal(err)
			}
			wait("unsubscribe", ch)
		}
	})
}

// BenchmarkRoomBroadcast: single-room emits from one node to a socket on
// another, through Redis; each op is one emit, timed until the last one
// arrived at the client.
//
//	go test -run '^$' -bench RoomBroadcast -benchtime 3s ./redis/
//
// Same machine: 100–130 µs/op one after the other (a PUBLISH round trip
// each), 42 µs/op from parallel emitters (BenchmarkRoomBroadcastParallel,
// about 24,000 delivered per second with Redis, both nodes and the client
// on 2 shared cores).
func BenchmarkRoomBroadcast(b *testing.B) {
	nodes := benchNodes(b, 2)
	c, _ := dialBench(b, nodes[1], "user:1")
	ns := nodes[0].Of("/")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := ns.To("user:1").Emit(ctx, "n", i); err != nil {
			b.Fatal(err)
		}
	}
	if err := ns.To("user:1").Emit(ctx, "last"); err != nil {
		b.Fatal(err)
	}
	if _, err := c.WaitEvent(waitCtx(b), "last"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRoomBroadcastParallel: the same from 8 × GOMAXPROCS goroutines
// (handlers of many sockets emitting at once), pipelined by rueidis.
func BenchmarkRoomBroadcastParallel(b *testing.B) {
	nodes := benchNodes(b, 2)
	c, _ := dialBench(b, nodes[1], "user:1")
	ns := nodes[0].Of("/")
	ctx := context.Background()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := ns.To("user:1").Emit(ctx, "n", 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := ns.To("user:1").Emit(ctx, "last"); err != nil {
		b.Fatal(err)
	}
	if _, err := c.WaitEvent(waitCtx(b), "last"); err != nil {
		b.Fatal(err)
	}
}
