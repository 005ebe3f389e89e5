package clientip

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
)

// TestKey: the bucket key is the client's address behind a trusted proxy,
// IPv6 clients by their /64, and the peer itself when it is not trusted.
func TestKey(t *testing.T) {
	r := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	tests := []struct {
		remote, xff, want string
	}{
		{"10.0.0.1:80", "198.51.100.9", "198.51.100.9"},
		{"10.0.0.1:80", "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::7]:80", "", "2001:db8:1:2::/64"},
		{"203.0.113.7:80", "198.51.100.9", "203.0.113.7"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = tt.remote
		if tt.xff != "" {
			req.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := r.Key(req); got != tt.want {
			t.Errorf("Key(%s, XFF %q) = %q, want %q", tt.remote, tt.xff, got, tt.want)
		}
	}
}

// TestUntrustedForwarders: a peer that is not trusted but sends
// X-Forwarded-For (a proxy missing from the trusted list) is reported once
// and listed; a trusted proxy, and a peer without the header, are not; the
// list stops at MaxForwarders while the count goes on.
func TestUntrustedForwarders(t *testing.T) {
	r := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	var reported []string
	r.OnUntrustedForwarder = func(peer string) { reported = append(reported, peer) }
	xff := http.Header{"X-Forwarded-For": {"198.51.100.9"}}

	r.ClientIP("10.0.0.1:80", xff)            // trusted proxy
	r.ClientIP("192.0.2.1:80", http.Header{}) // a direct client
	if peers, n := r.UntrustedForwarders(); len(peers) != 0 || n != 0 || len(reported) != 0 {
		t.Fatalf("after honest requests: peers %v, requests %d, reported %v", peers, n, reported)
	}
	for range 3 {
		if got := r.ClientIP("192.0.2.50:80", xff); got != "192.0.2.50" {
			t.Fatalf("ClientIP = %q: an untrusted peer's header must still be ignored", got)
		}
	}
	if peers, n := r.UntrustedForwarders(); !slices.Equal(peers, []string{"192.0.2.50"}) || n != 3 {
		t.Fatalf("peers %v, requests %d, want [192.0.2.50], 3", peers, n)
	}
	if !slices.Equal(reported, []string{"192.0.2.50"}) {
		t.Fatalf("reported %v, want it once", reported)
	}

	for i := range 2 * MaxForwarders {
		r.ClientIP(fmt.Sprintf("198.18.0.%d:80", i), xff)
	}
	peers, n := r.UntrustedForwarders()
	if len(peers) != MaxForwarders || len(reported) != MaxForwarders || n != 3+2*MaxForwarders {
		t.Fatalf("after a flood: %d peers, %d reported, %d requests; want %d, %d, %d",
			len(peers), len(reported), n, MaxForwarders, MaxForwarders, 3+2*MaxForwarders)
	}
}
