package adaptertest_test

import (
	"testing"

	"github.com/sessiongate/sessiongate/socketio"
	"github.com/sessiongate/sessiongate/socketio/adaptertest"
)

// The in-memory adapter is a cluster of one.
func TestMemoryAdapter(t *testing.T) {
	adaptertest.Run(t, func(t *testing.T, n int) []*socketio.Server {
		srv := socketio.NewServer(socketio.Options{})
		t.Cleanup(func() { srv.Close() })
		return []*socketio.Server{srv}
	}, 1)
}
