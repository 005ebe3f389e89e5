package load

import (
	"slices"
	"time"
)

// Dist summarises a set of latencies, in milliseconds.
type Dist struct {
	Count int     `json:"count"`
	Min   float64 `json:"min"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// distribution summarises d (which it sorts); nil when d is empty.
func distribution(d []time.Duration) *Dist {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return &Dist{
		Count: len(d),
		Min:   ms(d[0]),
		P50:   ms(percentile(d, 50)),
		P90:   ms(percentile(d, 90)),
		P99:   ms(percentile(d, 99)),
		Max:   ms(d[len(d)-1]),
		Mean:  ms(sum / time.Duration(len(d))),
	}
}

// percentile is the nearest-rank p-th percentile of sorted d.
func percentile(d []time.Duration, p int) time.Duration {
	rank := (p*len(d) + 99) / 100 // ceil(p/100 * n)
	return d[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
