package nodetest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstalled(t *testing.T) {
	lock := []byte(`{"lockfileVersion": 3}`)
	sum := sha256.Sum256(lock)
	tests := []struct {
		name    string
		modules bool
		stamp   string // "" = none
		want    string // substring of the problem, "" = none
	}{
		{"no node_modules", false, "", "not installed"},
		{"installed by hand", true, "", ""},
		{"current stamp", true, hex.EncodeToString(sum[:]) + "\n", ""},
		{"stale stamp", true, strings.Repeat("0", 64) + "\n", "stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), lock, 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.modules {
				if err := os.Mkdir(filepath.Join(dir, "node_modules"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tt.stamp != "" {
				if err := os.WriteFile(filepath.Join(dir, "node_modules", StampFile), []byte(tt.stamp), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := installed(dir)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("installed = %q, want %q", got, tt.want)
			}
		})
	}
}
