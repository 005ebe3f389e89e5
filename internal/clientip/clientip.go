// Package clientip finds the address of the client behind a request: the
// peer itself, or, when the peer is a trusted proxy, the address that proxy
// (and any trusted proxies before it) recorded in X-Forwarded-For.
//
// Only trusted proxies are believed: X-Forwarded-For is written by whoever
// sends the request, so a client talking to the server directly could put
// any address in it and escape per-address rate limits, or blame another
// address in the audit trail.
package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds client addresses, trusting the proxies in its prefixes.
// The zero Resolver trusts no proxy: the client is always the peer.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver trusting proxies whose address is in one of
// trusted.
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

// ParsePrefixes parses a list of CIDR prefixes or single addresses
// ("10.0.0.0/8", "127.0.0.1", "::1").
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, err
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// ClientIP returns the client's IP address for a request from remoteAddr
// ("ip:port", as http.Request.RemoteAddr) with header h. While the address
// at hand is a trusted proxy, it steps to the address that proxy appended
// to X-Forwarded-For, from the right; the first address that is not a
// trusted proxy is the client. When X-Forwarded-For runs out or holds
// something that is not an address, the last trusted hop is the client.
func (r *Resolver) ClientIP(remoteAddr string, h http.Header) string {
	peer := remoteAddr
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		peer = host
	}
	if r == nil || len(r.trusted) == 0 {
		return peer
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !r.trustedAddr(addr) {
		return peer
	}
	client := addr
	hops := h.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := strings.Split(hops[i], ",")
		for j := len(list) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(list[j]))
			if err != nil {
				return client.String()
			}
			client = a.Unmap()
			if !r.trustedAddr(client) {
				return client.String()
			}
		}
	}
	return client.String()
}

func (r *Resolver) trustedAddr(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
