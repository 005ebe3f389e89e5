package adaptertest_test

import (
	"context"
	"sync"
	"testing"

	"github.com/sessiongate/sessiongate/socketio"
	"github.com/sessiongate/sessiongate/socketio/adaptertest"
)

// loopbackBus is a cluster in one process: each node's adapter calls the
// others' MemoryAdapters directly, with the arguments reduced to the wire's
// data model (Message.Values), as a bus would carry them. It checks the
// suite itself with several nodes.
type loopbackBus struct {
	mu    sync.Mutex
	nodes []*loopback
}

type loopback struct {
	*socketio.MemoryAdapter
	bus *loopbackBus
}

func (b *loopbackBus) others(self *loopback) []*loopback {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*loopback
	for _, n := range b.nodes {
		if n != self {
			out = append(out, n)
		}
	}
	return out
}

// wire returns m as another node decodes it.
func wire(m *socketio.Message) (*socketio.Message, error) {
	args, err := m.Values()
	if err != nil {
		return nil, err
	}
	return socketio.NewMessage(m.Event, args...), nil
}

func (a *loopback) Broadcast(ctx context.Context, m *socketio.Message, opts socketio.BroadcastOptions) error {
	if err := a.MemoryAdapter.Broadcast(ctx, m, opts); err != nil || opts.Flags.Local {
		return err
	}
	w, err := wire(m)
	if err != nil {
		return err
	}
	for _, o := range a.bus.others(a) {
		o.MemoryAdapter.Broadcast(ctx, w, opts)
	}
	return nil
}

func (a *loopback) BroadcastWithAck(ctx context.Context, m *socketio.Message, opts socketio.BroadcastOptions, clientCount func(int), ack func([]any)) error {
	if err := a.MemoryAdapter.BroadcastWithAck(ctx, m, opts, clientCount, ack); err != nil || opts.Flags.Local {
		return err
	}
	w, err := wire(m)
	if err != nil {
		return err
	}
	for _, o := range a.bus.others(a) {
		// Another node's acks carry their first argument only.
		o.MemoryAdapter.BroadcastWithAck(ctx, w, opts, clientCount, func(args []any) { ack(args[:min(len(args), 1)]) })
	}
	return nil
}

func (a *loopback) each(opts socketio.BroadcastOptions, f func(*socketio.MemoryAdapter)) {
	f(a.MemoryAdapter)
	if !opts.Flags.Local {
		for _, o := range a.bus.others(a) {
			f(o.MemoryAdapter)
		}
	}
}

func (a *loopback) AddSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) error {
	a.each(opts, func(m *socketio.MemoryAdapter) { m.AddSockets(ctx, opts, rooms) })
	return nil
}

func (a *loopback) DelSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) error {
	a.each(opts, func(m *socketio.MemoryAdapter) { m.DelSockets(ctx, opts, rooms) })
	return nil
}

func (a *loopback) DisconnectSockets(ctx context.Context, opts socketio.BroadcastOptions, close bool) error {
	a.each(opts, func(m *socketio.MemoryAdapter) { m.DisconnectSockets(ctx, opts, close) })
	return nil
}

func (a *loopback) FetchSockets(ctx context.Context, opts socketio.BroadcastOptions) ([]socketio.SocketInfo, error) {
	var all []socketio.SocketInfo
	a.each(opts, func(m *socketio.MemoryAdapter) {
		infos, _ := m.FetchSockets(ctx, opts)
		for _, in := range infos {
			in.Local = m == a.MemoryAdapter
			all = append(all, in)
		}
	})
	return all, nil
}

func (a *loopback) AllRooms(ctx context.Context) ([]string, error) {
	var all []string
	a.each(socketio.BroadcastOptions{}, func(m *socketio.MemoryAdapter) {
		rooms, _ := m.AllRooms(ctx)
		all = append(all, rooms...)
	})
	return all, nil
}

func (a *loopback) ServerSideEmit(ctx context.Context, m *socketio.Message) error {
	w, err := wire(m)
	if err != nil {
		return err
	}
	for _, o := range a.bus.others(a) {
		o.ServerEvent(socketio.Event{Name: w.Event, Args: w.Args}, nil)
	}
	return nil
}

func (a *loopback) ServerSideEmitWithAck(ctx context.Context, m *socketio.Message) ([]any, error) {
	w, err := wire(m)
	if err != nil {
		return nil, err
	}
	var acks []any
	for _, o := range a.bus.others(a) {
		o.ServerEvent(socketio.Event{Name: w.Event, Args: w.Args}, func(arg any) { acks = append(acks, arg) })
	}
	return acks, nil
}

func (a *loopback) ServerCount(ctx context.Context) (int, error) {
	return len(a.bus.others(a)) + 1, nil
}

func TestLoopbackCluster(t *testing.T) {
	adaptertest.Run(t, func(t *testing.T, n int) []*socketio.Server {
		bus := &loopbackBus{}
		var servers []*socketio.Server
		for range n {
			srv := socketio.NewServer(socketio.Options{NewAdapter: func(local *socketio.MemoryAdapter) socketio.Adapter {
				a := &loopback{MemoryAdapter: local, bus: bus}
				bus.mu.Lock()
				bus.nodes = append(bus.nodes, a)
				bus.mu.Unlock()
				return a
			}})
			t.Cleanup(func() { srv.Close() })
			servers = append(servers, srv)
		}
		if err := adaptertest.AwaitServers(t.Context(), servers, n); err != nil {
			t.Fatal(err)
		}
		return servers
	}, 3)
}
