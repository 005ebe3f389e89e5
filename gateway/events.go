package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/hook"
	"github.com/sessiongate/sessiongate/socketio"
)

// Client events (contract: Client events): an event a client sends that no
// handler on the namespace takes (EventSubscribe, EventUnsubscribe and the
// application's own ns.On handlers take precedence) is forwarded to the
// application by Config.Events, when its name matches Config.ClientEvents,
// and the application's answer becomes the client's ack.
//
// The call is made inline, on the socket's handler goroutine: the events of
// one socket reach the application one at a time, in the order the client
// sent them (one call in flight per socket), and a slow application delays
// only that socket's next events. Other sockets have their own goroutines;
// the calls of the whole process are bounded by the hook client's
// MaxInFlight.

// EventRequest is what the application is told of a client event.
type EventRequest struct {
	User    string // the session's passport.user
	Socket  string // the socket id
	Session string // sessiongate.ShortHash of the session id, never the id
	Event   string
	Args    []any // the event's arguments, decoded from JSON (never binary)

	Cookie    string // the handshake's Cookie header
	UserAgent string
	ClientIP  string // behind TRUSTED_PROXIES, the client's address
}

// EventForwarder hands a client event to the application and returns its
// answer, the JSON the client's ack carries. A *RejectedError is a refusal
// (REJECTED); any other error means the application could not answer
// (UNAVAILABLE, temporary). Forward must return once ctx is done.
type EventForwarder interface {
	Forward(ctx context.Context, req EventRequest) (json.RawMessage, error)
}

// RejectedError is the application's refusal of a client event: a 4xx
// answer. Its body is not passed on: the client sees a fixed message and
// the status.
type RejectedError struct{ Status int }

func (e *RejectedError) Error() string {
	return fmt.Sprintf("the application refused the event (%d)", e.Status)
}

// reservedClientEvents are never forwarded: the gateway's own events, and
// the names Socket.IO reserves (its decoder refuses the latter already).
var reservedClientEvents = map[string]bool{
	EventSubscribe: true, EventUnsubscribe: true,
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

// eventReply is a refused client event's ack: {"error": {...}}. A
// forwarded event's ack is the application's JSON instead.
type eventReply struct {
	Error *ackError `json:"error"`
}

func refuseEvent(code, msg string) eventReply {
	return eventReply{Error: &ackError{Code: code, Message: msg, Temporary: code == sessiongate.ECodeUnavailable}}
}

// events is the gateway's client event forwarding.
type clientEvents struct {
	fwd      EventForwarder // nil: every client event is UNKNOWN_EVENT
	patterns []RoomPattern  // nil: every name
	logged   logThrottle
}

// allowed reports whether name may be forwarded.
func (e *clientEvents) allowed(name string) bool {
	if reservedClientEvents[name] {
		return false
	}
	return e.patterns == nil || matchAny(e.patterns, name)
}

// clientEvent is the namespace's fallback handler (OnUnhandled).
func (g *Gateway) clientEvent(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
	if e, away := g.limited(s, connOf(s), LimitEvents); e != nil {
		answer(ack, eventReply{Error: e}, away)
		return
	}
	reply := g.clientEventReply(s, ev)
	if ack != nil {
		_ = ack(reply) // an error means the socket is gone
	}
}

// clientEventReply forwards ev and returns the ack's one argument: the
// application's JSON (a json.RawMessage) or an eventReply.
func (g *Gateway) clientEventReply(s *socketio.Socket, ev socketio.Event) any {
	c := connOf(s)
	if c == nil || g.events.fwd == nil || !g.events.allowed(ev.Name) {
		return refuseEvent(sessiongate.ECodeUnknownEvent, "unknown event")
	}
	if holdsBinary(ev.Args) {
		return refuseEvent(sessiongate.ECodeInvalidEvent, "binary arguments are not forwarded; send JSON")
	}
	req := EventRequest{
		User:      c.identity.UserID,
		Socket:    s.ID(),
		Session:   c.short,
		Event:     ev.Name,
		Args:      ev.Args,
		Cookie:    s.Handshake().Header.Get("Cookie"),
		UserAgent: c.client.userAgent,
		ClientIP:  c.client.remoteAddr,
	}
	if req.Args == nil {
		req.Args = []any{}
	}
	// The socket's context ends with it: an answer nobody waits for is not
	// waited for either.
	answer, err := g.events.fwd.Forward(s.Context(), req)
	var rejected *RejectedError
	switch {
	case errors.As(err, &rejected):
		return refuseEvent(sessiongate.ECodeRejected, fmt.Sprintf("the application refused the event (%d)", rejected.Status))
	case err != nil:
		if s.Context().Err() == nil {
			g.events.logged.log(g, "client event: application unavailable", "event", ev.Name, "session", c.short, "err", err)
		}
		return refuseEvent(sessiongate.ECodeUnavailable, "the application could not be reached; retry later")
	}
	return answer
}

// holdsBinary reports whether any argument holds bytes (a binary
// attachment) at any depth.
func holdsBinary(args []any) bool {
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			return true
		case []any:
			if holdsBinary(v) {
				return true
			}
		case map[string]any:
			for _, x := range v {
				if holdsBinary([]any{x}) {
					return true
				}
			}
		}
	}
	return false
}

// logThrottle spaces WARN lines of a failing application: every call fails
// the same way while it is down; the others go to DEBUG.
type logThrottle struct {
	mu     sync.Mutex
	logged time.Time
}

func (l *logThrottle) log(g *Gateway, msg string, args ...any) {
	now := g.now()
	l.mu.Lock()
	warn := now.Sub(l.logged) >= unavailableLogEvery
	if warn {
		l.logged = now
	}
	l.mu.Unlock()
	if warn {
		g.log.Warn(msg, args...)
	} else {
		g.log.Debug(msg, args...)
	}
}

// HookForwarder forwards client events to the application (EVENTS_URL)
// through c: a POST of {"user","socket","session","event","args"} with the
// handshake's Cookie, User-Agent and client address, signed. A 200 whose
// body is JSON is the answer; a 4xx is a *RejectedError; a 3xx, a 5xx, a
// 200 that is not JSON, a timeout or a failed connection is an error
// (UNAVAILABLE).
func HookForwarder(c *hook.Client) EventForwarder { return hookForwarder{c} }

type hookForwarder struct{ c *hook.Client }

// eventBody is the JSON the application receives.
type eventBody struct {
	User    string `json:"user"`
	Socket  string `json:"socket"`
	Session string `json:"session"`
	Event   string `json:"event"`
	Args    []any  `json:"args"`
}

func (h hookForwarder) Forward(ctx context.Context, req EventRequest) (json.RawMessage, error) {
	body, err := json.Marshal(eventBody{User: req.User, Socket: req.Socket, Session: req.Session, Event: req.Event, Args: req.Args})
	if err != nil {
		return nil, err
	}
	resp, err := h.c.Post(ctx, body, hook.Forwarded{Cookie: req.Cookie, UserAgent: req.UserAgent, ClientIP: req.ClientIP})
	switch {
	case err != nil:
		return nil, err
	case resp.Status == http.StatusOK:
		if !json.Valid(resp.Body) {
			return nil, errors.New("application answered 200 with a body that is not JSON")
		}
		return json.RawMessage(resp.Body), nil
	case resp.Status >= 400 && resp.Status < 500:
		return nil, &RejectedError{Status: resp.Status}
	}
	return nil, fmt.Errorf("application answered %d", resp.Status)
}
