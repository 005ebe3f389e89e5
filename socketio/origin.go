package socketio

import "context"

// DefaultOriginRefusal is the CONNECT_ERROR of Options.OriginRefusal when it
// is nil: the code sessiongate's codes table gives a foreign Origin, which
// clients do not retry.
var DefaultOriginRefusal = &ConnectError{
	Message: "unauthorized",
	Data:    map[string]string{"code": "ORIGIN_NOT_ALLOWED"},
}

// refuseOrigin refuses the CONNECT p for ns of a session opened from an
// Origin the engine does not allow: no OnConnecting hook runs, and the socket never
// joins. It is refused in the protocol, not by HTTP, so that the client
// stops instead of reconnecting forever; as any refused CONNECT it counts
// toward MaxRefusedConnects. The refusal is queued behind the connection's
// earlier tasks, as a hook's refusal is.
func (c *client) refuseOrigin(ns *Namespace, p *Packet) {
	s := &Socket{id: newID(), ns: ns, client: c}
	// Never connected: its context is done from the start.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.cancel()
	s.handshake = &Handshake{Handshake: *c.conn.Handshake()} // its auth is not read
	refusal := c.srv.opts.OriginRefusal
	if refusal == nil {
		refusal = DefaultOriginRefusal
	}
	c.enqueue(0, func() {
		if h := c.srv.opts.OnOriginRefused; h != nil {
			h(s)
		}
		c.refuse(p.Namespace, connectErrorJSON(refusal))
	})
}
