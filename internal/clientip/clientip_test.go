package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParsePrefixes([]string{"10.0.0.0/8", " 127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	r := New(trusted)
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct client: its header is ignored", "203.0.113.7:4000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"one trusted proxy", "10.1.2.3:4000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"a client's forged entry before the proxy's is skipped", "10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.9"}, "198.51.100.9"},
		{"two trusted proxies", "127.0.0.1:4000", []string{"198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"several header lines, read from the last", "10.1.2.3:4000", []string{"6.6.6.6", "198.51.100.9, 10.0.0.5"}, "198.51.100.9"},
		{"IPv6 proxy", "[::1]:4000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv4-mapped proxy", "[::ffff:10.0.0.1]:4000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"trusted proxy without the header", "10.1.2.3:4000", nil, "10.1.2.3"},
		{"garbage ends the walk at the last trusted hop", "10.1.2.3:4000", []string{"198.51.100.9, not-an-ip"}, "10.1.2.3"},
		{"every hop trusted", "10.1.2.3:4000", []string{"10.4.4.4"}, "10.4.4.4"},
		{"no port", "203.0.113.7", nil, "203.0.113.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.xff {
				h.Add("X-Forwarded-For", v)
			}
			if got := r.ClientIP(tt.remote, h); got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
	var none *Resolver
	if got := none.ClientIP("10.1.2.3:4000", http.Header{"X-Forwarded-For": {"1.2.3.4"}}); got != "10.1.2.3" {
		t.Errorf("nil Resolver: ClientIP = %q, want the peer", got)
	}
	if _, err := ParsePrefixes([]string{"10.0.0.0/33"}); err == nil {
		t.Error("ParsePrefixes accepted 10.0.0.0/33")
	}
	if _, err := ParsePrefixes([]string{"proxy.local"}); err == nil {
		t.Error("ParsePrefixes accepted a host name")
	}
}

// FuzzClientIP: whatever the header holds, the client is the peer or an
// address that parses.
func FuzzClientIP(f *testing.F) {
	trusted, _ := ParsePrefixes([]string{"10.0.0.0/8", "::1"})
	r := New(trusted)
	f.Add("10.0.0.1:80", "198.51.100.9, 10.0.0.2")
	f.Add("[::1]:80", "2001:db8::1,,")
	f.Add("203.0.113.7:1", "x")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		got := r.ClientIP(remote, http.Header{"X-Forwarded-For": {xff}})
		peer := remote
		if host, _, err := net.SplitHostPort(remote); err == nil {
			peer = host
		}
		if got != peer {
			if _, err := netip.ParseAddr(got); err != nil {
				t.Fatalf("ClientIP(%q, %q) = %q: neither the peer nor an address", remote, xff, got)
			}
		}
	})
}
