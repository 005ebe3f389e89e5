package redis_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/sessiongate/sessiongate/redis"
	"github.com/sessiongate/sessiongate/socketio"
)

// A node of a cluster: every namespace of the server gets the Redis
// adapter; emits reach the sockets of every node, Node Socket.IO servers
// with @socket.io/redis-adapter on the same key included.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := redis.NewCluster(ctx, redis.Options{URL: "redis://sessiongate:pw@127.0.0.1:6379", Key: "socket.io"})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	srv := socketio.NewServer(socketio.Options{NewAdapter: cl.Adapter})
	defer srv.Close()
	http.Handle("/socket.io/", srv)
	// From any node: reaches user 42's sockets wherever they are.
	_ = srv.Of("/").To("user:42").Emit(ctx, "notification", map[string]any{"text": "hi"})
}
