package presence

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkJoinStorm: 1,000 users join one room within a second (one every
// millisecond of fake time) on node A, whose gossip node B applies. It
// reports per storm the events each node produces (one per flush: what
// every socket in the room receives), the gossip messages and bytes A
// sends, and the CPU time per join (both engines' work included).
func BenchmarkJoinStorm(b *testing.B) {
	const users = 1000
	names := make([]string, users)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	var eventsA, eventsB, msgs, bytes int
	for b.Loop() {
		c := &clock{t0}
		a, bn := newEngine("a", c, Config{}), newEngine("b", c, Config{})
		eventsA, eventsB, msgs, bytes = 0, 0, 0, 0
		step := func() {
			evs, g := a.Step(c.now)
			eventsA += len(evs)
			for _, m := range g {
				wire := m.Encode()
				msgs++
				bytes += len(wire)
				got, err := Decode(wire)
				if err != nil {
					b.Fatal(err)
				}
				bn.Apply(got, c.now)
			}
			evs, _ = bn.Step(c.now)
			eventsB += len(evs)
		}
		for i, u := range names {
			c.now = t0.Add(time.Duration(i) * time.Millisecond)
			a.Join("incident:1", u, c.now)
			if !a.Next().After(c.now) {
				step()
			}
		}
		end := t0.Add(3 * time.Second)
		for {
			next := minTime(a.Next(), bn.Next())
			if next.After(end) {
				break
			}
			c.now = maxTime(c.now, next)
			step()
		}
		if s := bn.Snapshot("incident:1", "", 10); s.Count != users {
			b.Fatalf("node B sees %d members", s.Count)
		}
	}
	b.ReportMetric(float64(eventsA), "events_A/storm")
	b.ReportMetric(float64(eventsB), "events_B/storm")
	b.ReportMetric(float64(msgs), "gossip_msgs/storm")
	b.ReportMetric(float64(bytes), "gossip_bytes/storm")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*users), "ns/join")
}
