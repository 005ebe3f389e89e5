package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/bench/internal/echo"
	"github.com/sessiongate/sessiongate/bench/internal/load"
	"github.com/sessiongate/sessiongate/socketio"
)

// TestLoadtoolAgainstEcho runs each mode that needs no database against an
// in-process Socket.IO echo server with 20 connections.
func TestLoadtoolAgainstEcho(t *testing.T) {
	io, handler := echo.New(socketio.Options{})
	ts := httptest.NewServer(handler)
	defer ts.Close()
	defer io.Close()

	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, r *load.Report)
	}{
		{"idle", []string{"-mode", "idle", "-n", "20", "-pid", strconv.Itoa(os.Getpid())}, func(t *testing.T, r *load.Report) {
			if r.Connected != 20 || r.StillOpen != 20 || r.RSSAfterKiB <= 0 {
				t.Errorf("connected %d, still open %d, rss %d KiB; want 20, 20, > 0", r.Connected, r.StillOpen, r.RSSAfterKiB)
			}
		}},
		{"broadcast", []string{"-mode", "broadcast", "-n", "20", "-trigger", "broadcast", "-timeout", "20s"}, func(t *testing.T, r *load.Report) {
			if r.Received != 20 || r.Missing != 0 || r.Latency == nil || r.Latency.Count != 20 {
				t.Errorf("received %d, missing %d, latency %+v; want all 20", r.Received, r.Missing, r.Latency)
			}
		}},
		{"handshake", []string{"-mode", "handshake", "-c", "4", "-d", "500ms"}, func(t *testing.T, r *load.Report) {
			if r.HandshakesOK == 0 || r.Failed != 0 || r.Latency == nil {
				t.Errorf("ok %d, failed %d (%v); want > 0 and 0", r.HandshakesOK, r.Failed, r.Errors)
			}
		}},
		// The echo server acks "echo" with its arguments: the events mode's
		// request/ack loop, paced at 100 a second per socket.
		{"events", []string{"-mode", "events", "-n", "4", "-cookie", "a=b", "-event", "echo", "-window", "2",
			"-warm", "200ms", "-d", "1s", "-socket-rate", "100"}, func(t *testing.T, r *load.Report) {
			if r.Connected != 4 || r.AckOK == 0 || r.AckFailed != 0 || r.Latency == nil || r.Latency.Count != r.AckOK {
				t.Errorf("connected %d, acks ok %d, refused %d (%v), latency %+v; want 4, > 0, 0, one per ack",
					r.Connected, r.AckOK, r.AckFailed, r.AckErrors, r.Latency)
			}
			if r.AckRate > 4*100*1.1 {
				t.Errorf("%.0f acks/s from 4 sockets paced at 100/s", r.AckRate)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := append([]string{"-url", ts.URL, "-sources", "1"}, tt.args...)
			if err := run(ctx, args, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			var r load.Report
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("report %q: %v", stdout.String(), err)
			}
			tt.check(t, &r)
		})
	}
}

func TestLoadtoolRefusesRemoteTargets(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-url", "http://192.0.2.1:3000", "-n", "1"}, &stdout, &stderr)
	if err == nil {
		t.Fatal("run accepted a non-loopback target")
	}
}
