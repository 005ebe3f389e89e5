package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/expresssession"
)

// Refusals of VerifyRequest. The engine answers them with HTTP 403
// "Forbidden"; their text is never sent.
var (
	errOtherCookie = errors.New("gateway: request without the session cookie of its handshake")
)

// VerifyRequest binds a later request of an Engine.IO session (a polling
// GET or POST, the websocket upgrade) to the request that opened it, hs: it
// must carry the same session cookie (the same value, or none if the
// handshake had none). Without it the session id alone, which travels in
// URLs, would read and write an authenticated session. Set it as
// engineio.Options.VerifyRequest; a non-nil error refuses the request and
// leaves the session open. The engine itself refuses a later request from
// an Origin that engineio.Options.AllowedOrigins does not allow, before it
// calls VerifyRequest.
//
// The cookies are compared by their SHA-256, in constant time.
func (g *Gateway) VerifyRequest(hs *engineio.Handshake, r *http.Request) error {
	opened, sent := g.cookieDigest(hs.Header), g.cookieDigest(r.Header)
	if subtle.ConstantTimeCompare(opened[:], sent[:]) != 1 {
		g.log.Debug("request refused: not the session cookie of the handshake", "remote", g.clients.ClientIP(r.RemoteAddr, r.Header))
		return errOtherCookie
	}
	return nil
}

// cookieDigest is the SHA-256 of the session cookie in h, as the handshake
// reads it (the first one of its name), with a leading byte telling a
// missing cookie from an empty one.
func (g *Gateway) cookieDigest(h http.Header) [sha256.Size]byte {
	v, ok := expresssession.CookieFromHeader(strings.Join(h.Values("Cookie"), "; "), g.cookieName)
	if !ok {
		return sha256.Sum256(nil)
	}
	return sha256.Sum256([]byte("=" + v))
}

// ClientKey is the rate-limit key of the client of r: its address, taken
// from X-Forwarded-For behind Config.TrustedProxies, an IPv6 client by its
// /64. Set it as engineio.Options.ClientKey, so that handshakes are limited
// per client and not per proxy.
func (g *Gateway) ClientKey(r *http.Request) string {
	return g.clients.Key(r)
}

// UntrustedForwarders returns the peers that sent X-Forwarded-For without
// being in Config.TrustedProxies (up to clientip.MaxForwarders, first seen
// first) and the number of such requests. A reverse proxy in the list is
// missing from TrustedProxies: every client behind it shares its address,
// its rate-limit bucket and its audit rows. Each such peer is logged once,
// at WARN, when first seen.
func (g *Gateway) UntrustedForwarders() (peers []string, requests uint64) {
	return g.clients.UntrustedForwarders()
}

// warnUntrustedForwarder is the clients resolver's OnUntrustedForwarder.
func (g *Gateway) warnUntrustedForwarder(peer string) {
	g.log.Warn("a peer that is not in TRUSTED_PROXIES sends X-Forwarded-For: if it is a reverse proxy, every client behind it shares one rate-limit bucket and one audit address; add it to TRUSTED_PROXIES",
		"peer", peer)
}
