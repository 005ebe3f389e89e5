// Package gopool runs short tasks on reused goroutines.
//
// The server starts a goroutine for each burst of work on a connection: a
// readable websocket, a handler queue, a flush. Starting one is cheap, but a
// fresh goroutine has a small stack, and the handshake path (transport,
// Socket.IO, session lookup, database driver) is deep enough that every new
// goroutine grows its stack by copying, several times. Go hands a task to a
// goroutine that finished an earlier one and kept its stack, and starts a
// new goroutine only when none is waiting; it never blocks and never queues.
package gopool

import "sync/atomic"

// maxIdle bounds the goroutines waiting for a task; one that finishes a
// task while maxIdle others wait exits. Enough to cover a burst on a busy
// server, few enough that their stacks are noise next to the connections.
const maxIdle = 128

var (
	tasks = make(chan func()) // unbuffered: a send succeeds only if a worker waits
	idle  atomic.Int32
	// started counts the goroutines Go started, for tests.
	started atomic.Int64
)

// Go runs f on a waiting worker goroutine, or on a new one. Like a go
// statement, it returns at once and f runs concurrently; a panic in f is not
// recovered.
func Go(f func()) {
	select {
	case tasks <- f:
	default:
		started.Add(1)
		go work(f)
	}
}

// work runs f, then the tasks handed to it, until maxIdle workers are
// already waiting when it finishes one.
func work(f func()) {
	for {
		f()
		f = nil // let the task's closure go while waiting
		if idle.Add(1) > maxIdle {
			idle.Add(-1)
			return
		}
		f = <-tasks
		idle.Add(-1)
	}
}
