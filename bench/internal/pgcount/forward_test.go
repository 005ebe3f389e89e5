package pgcount

import (
	"bytes"
	"testing"
)

// FuzzProxy feeds arbitrary client bytes through the proxy's parser to a
// sink: it must never panic, and must forward every byte it received.
func FuzzProxy(f *testing.F) {
	startup := []byte{0, 0, 0, 8, 0, 3, 0, 0}
	f.Add(append(startup, 'Q', 0, 0, 0, 9, 'S', 'E', 'L', 0))
	f.Add(append(startup, 'P', 0, 0, 0, 6, 0, 0, 'B', 0, 0, 0, 6, 0, 0, 'E', 0, 0, 0, 9, 0, 0, 0, 0, 0))
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47, 'x'})
	f.Add([]byte{0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		p := &Proxy{marker: `"session"`, counts: map[string]int64{}}
		p.forward(&out, bytes.NewReader(in))
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("forwarded %q, not a prefix of %q", out.Bytes(), in)
		}
	})
}
