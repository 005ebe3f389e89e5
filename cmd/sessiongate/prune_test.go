package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/sqlite"
)

func TestPruneInterval(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want time.Duration
	}{
		{map[string]string{}, DefaultPruneInterval},                                       // sessiongate owns login
		{map[string]string{"AUTH_ENDPOINTS": "false"}, 0},                                 // the Node app prunes
		{map[string]string{"AUTH_ENDPOINTS": "false", "PRUNE_INTERVAL": "1h"}, time.Hour}, // on request
		{map[string]string{"PRUNE_INTERVAL": "0"}, 0},
		{map[string]string{"PRUNE_INTERVAL": "2m"}, 2 * time.Minute},
	}
	for _, tt := range tests {
		tt.env["SESSION_SECRETS"] = "test secret"
		m, _, _ := testMain(tt.env)
		if err := m.ParseFlags(testCtx(t), nil); err != nil {
			t.Fatalf("%v: ParseFlags: %v", tt.env, err)
		}
		if got := m.Config.pruneInterval(); got != tt.want {
			t.Errorf("%v: pruneInterval = %v, want %v", tt.env, got, tt.want)
		}
	}
	m, _, _ := testMain(map[string]string{"SESSION_SECRETS": "test secret", "PRUNE_INTERVAL": "-5m"})
	if err := m.ParseFlags(testCtx(t), nil); err == nil {
		t.Error("PRUNE_INTERVAL=-5m accepted")
	}
}

// TestServePrunes: serve deletes the expired rows of its SQLite store when it
// starts, and leaves the live ones.
func TestServePrunes(t *testing.T) {
	env := validEnv(t)
	env["PRUNE_INTERVAL"] = "1h"
	ctx := testCtx(t)
	db, err := sqlite.Open(ctx, filepath.Join(env["DATA_DIR"], "sessiongate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for sid, exp := range map[string]time.Time{"expired": now.Add(-time.Hour), "live": now.Add(time.Hour)} {
		if err := db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: []byte(`{"cookie":{}}`), Expire: exp}); err != nil {
			t.Fatal(err)
		}
	}

	startMain(t, env)
	for {
		rows, err := db.Sessions(ctx, []string{"expired", "live"})
		if err != nil {
			t.Fatal(err)
		}
		if rows["live"] == nil {
			t.Fatal("the live session was pruned")
		}
		if rows["expired"] == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("the expired session was never pruned")
		case <-time.After(20 * time.Millisecond): // poll until the pruner ran
		}
	}
}
