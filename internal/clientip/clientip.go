// Package clientip finds the address of the client behind a request: the
// peer itself, or, when the peer is a trusted proxy, the address that proxy
// (and any trusted proxies before it) recorded in X-Forwarded-For.
//
// Only trusted proxies are believed: X-Forwarded-For is written by whoever
// sends the request, so a client talking to the server directly could put
// any address in it and escape per-address rate limits, or blame another
// address in the audit trail.
//
// The reverse mistake is noticed: a peer that is not trusted but sends
// X-Forwarded-For is most likely a proxy missing from the trusted list, and
// every client behind it then shares its address and its rate-limit bucket.
// A Resolver remembers such peers (UntrustedForwarders) and reports each the
// first time it is seen (OnUntrustedForwarder).
package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sessiongate/sessiongate/internal/ratelimit"
)

// MaxForwarders bounds the untrusted forwarding peers a Resolver
// remembers: a client sending the header itself can make it note its own
// address, and a flood of such addresses must not grow the list.
const MaxForwarders = 16

// Resolver finds client addresses, trusting the proxies in its prefixes.
// The zero Resolver trusts no proxy: the client is always the peer. Its
// methods are safe for concurrent use.
type Resolver struct {
	// OnUntrustedForwarder, when set, is called the first time a request
	// from peer (an IP address) carries X-Forwarded-For while peer is not
	// a trusted proxy, for the first MaxForwarders such peers. It is
	// called on the request's goroutine and must not block. Set it before
	// the Resolver is used.
	OnUntrustedForwarder func(peer string)

	trusted []netip.Prefix

	forwarded  atomic.Uint64 // requests with X-Forwarded-For from untrusted peers
	mu         sync.Mutex
	forwarders []string // the first MaxForwarders such peers, in order seen
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
	if r == nil {
		return peer
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !r.trustedAddr(addr) {
		if err == nil && len(h.Values("X-Forwarded-For")) > 0 {
			r.noteForwarder(addr.Unmap().String())
		}
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

// Key is the rate-limit bucket key of the client of req: its address as
// ClientIP finds it, keyed as ratelimit.Key (an IPv6 client by its /64).
// It suits engineio.Options.ClientKey.
func (r *Resolver) Key(req *http.Request) string {
	return ratelimit.Key(r.ClientIP(req.RemoteAddr, req.Header))
}

// UntrustedForwarders returns the peers (up to MaxForwarders, in the order
// first seen) that sent X-Forwarded-For without being trusted proxies, and
// how many such requests there were in all. A proxy in the list is missing
// from the trusted list: the clients behind it are all taken for it. With
// no proxy in front of the server, the peers are clients that set the
// header themselves, and are rightly ignored.
func (r *Resolver) UntrustedForwarders() (peers []string, requests uint64) {
	if r == nil {
		return nil, 0
	}
	r.mu.Lock()
	peers = slices.Clone(r.forwarders)
	r.mu.Unlock()
	return peers, r.forwarded.Load()
}

// noteForwarder counts a request with X-Forwarded-For from the untrusted
// peer and remembers peer, reporting it when it is new.
func (r *Resolver) noteForwarder(peer string) {
	r.forwarded.Add(1)
	r.mu.Lock()
	if len(r.forwarders) >= MaxForwarders || slices.Contains(r.forwarders, peer) {
		r.mu.Unlock()
		return
	}
	r.forwarders = append(r.forwarders, peer)
	r.mu.Unlock()
	if r.OnUntrustedForwarder != nil {
		r.OnUntrustedForwarder(peer)
	}
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
