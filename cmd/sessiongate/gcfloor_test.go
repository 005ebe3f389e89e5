package main

import "testing"

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		live uint64
		want int
	}{
		{0, gcMaxPercent},       // nothing measured yet
		{1 * mib, gcMaxPercent}, // 3200% capped
		{4 * mib, 800},          // 32 MiB of growth
		{5 * mib, 600},          // 640% rounded down to a step
		{16 * mib, 200},         // 32 MiB of growth
		{30 * mib, 100},         // 106%: the default
		{gcHeadroom, 100},       // from here on the default
		{4 * gcHeadroom, 100},   // never below it
	}
	for _, tt := range tests {
		if got := gcPercentFor(tt.live); got != tt.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tt.live/mib, got, tt.want)
		}
	}
}
