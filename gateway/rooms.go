package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/socketio"
)

// Limits of SESSION_ROOMS.
const (
	// MaxSessionRoomTemplates is the most templates a SessionRooms holds.
	MaxSessionRoomTemplates = 16
	// MaxSessionRoomLen is the longest room, in bytes, a template may
	// render; a longer one is skipped (and logged).
	MaxSessionRoomLen = 256
)

// userRoomPrefix starts the room of a user (Identity.Room): a session's
// other rooms may never look like one.
const userRoomPrefix = "user:"

// SessionRooms is a parsed list of room templates over a session's JSON
// (SESSION_ROOMS: "org:{orgId},team:{passport.team}"). A template is
// literal text and placeholders: {a.b.c} is the value at that dotted path
// of the session object, as express-session stored it. "{{" and "}}" stand
// for literal braces. A placeholder whose path is missing, null, an empty
// string, an object or an array makes its template join nothing; a string
// renders as is, a number as the row's JSON writes it (42), a boolean as
// true or false. Its methods are safe for concurrent use.
type SessionRooms struct {
	templates []roomTemplate
}

// roomTemplate is one parsed template.
type roomTemplate struct {
	src   string
	parts []roomPart
}

// roomPart is literal text (path nil) or a placeholder's path.
type roomPart struct {
	text string
	path []string
}

// ParseSessionRooms parses a comma-separated list of templates; spaces
// around each are ignored, and an empty list is no templates (nil, nil). It
// refuses a template with unbalanced braces or an empty path (or an empty
// path segment), an empty template, more than MaxSessionRoomTemplates, and a
// template whose result could start with "user:" (so that the user room
// stays the user's only): one that starts with "user:", or with a
// placeholder before its text has ruled that out ("{orgId}", "us{x}").
// Errors name the template.
func ParseSessionRooms(list string) (*SessionRooms, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	items := strings.Split(list, ",")
	if len(items) > MaxSessionRoomTemplates {
		return nil, fmt.Errorf("%d templates, at most %d", len(items), MaxSessionRoomTemplates)
	}
	r := &SessionRooms{}
	for i, src := range items {
		src = strings.TrimSpace(src)
		if src == "" {
			return nil, fmt.Errorf("template %d of the list is empty", i+1)
		}
		t, err := parseRoomTemplate(src)
		if err != nil {
			return nil, fmt.Errorf("template %q: %w", src, err)
		}
		r.templates = append(r.templates, t)
	}
	return r, nil
}

func parseRoomTemplate(src string) (roomTemplate, error) {
	t := roomTemplate{src: src}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, roomPart{text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(src); i++ {
		switch ch := src[i]; {
		case ch == '{' && i+1 < len(src) && src[i+1] == '{':
			lit.WriteByte('{')
			i++
		case ch == '}' && i+1 < len(src) && src[i+1] == '}':
			lit.WriteByte('}')
			i++
		case ch == '}':
			return t, fmt.Errorf("unbalanced braces: } at byte %d without a {", i)
		case ch == '{':
			end := strings.IndexAny(src[i+1:], "{}")
			if end < 0 || src[i+1+end] != '}' {
				return t, fmt.Errorf("unbalanced braces: { at byte %d is not closed", i)
			}
			path := strings.TrimSpace(src[i+1 : i+1+end])
			if path == "" {
				return t, fmt.Errorf("empty path at byte %d", i)
			}
			segs := strings.Split(path, ".")
			if slices.Contains(segs, "") {
				return t, fmt.Errorf("path %q has an empty segment", path)
			}
			flush()
			t.parts = append(t.parts, roomPart{path: segs})
			i += 1 + end
		default:
			lit.WriteByte(ch)
		}
	}
	flush()
	if t.couldBeUserRoom() {
		return t, fmt.Errorf("its rooms could start with %q, which only the user's own room may", userRoomPrefix)
	}
	return t, nil
}

// couldBeUserRoom reports whether a rendering of t could start with
// "user:": its leading text does, or is a prefix of it followed by a
// placeholder that could complete it.
func (t roomTemplate) couldBeUserRoom() bool {
	lead := ""
	if len(t.parts) > 0 && t.parts[0].path == nil {
		lead = t.parts[0].text
	}
	if strings.HasPrefix(lead, userRoomPrefix) {
		return true
	}
	placeholderNext := len(t.parts) > 0 && (t.parts[0].path != nil || len(t.parts) > 1)
	return placeholderNext && strings.HasPrefix(userRoomPrefix, lead)
}

// Len is the number of templates.
func (r *SessionRooms) Len() int {
	if r == nil {
		return 0
	}
	return len(r.templates)
}

// String returns the templates as given, comma-separated.
func (r *SessionRooms) String() string {
	if r == nil {
		return ""
	}
	srcs := make([]string, len(r.templates))
	for i, t := range r.templates {
		srcs[i] = t.src
	}
	return strings.Join(srcs, ",")
}

// TooLongRoom is a template whose rendering was longer than
// MaxSessionRoomLen: it joins nothing.
type TooLongRoom struct {
	Template string
	Len      int
}

// Render returns the rooms of the session whose JSON is data: one per
// template that renders, sorted, without duplicates (nil when none), and the
// templates skipped for rendering too long a room. A row whose JSON is not
// an object renders nothing.
func (r *SessionRooms) Render(data []byte) (rooms []string, tooLong []TooLongRoom) {
	if r.Len() == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var sess map[string]any
	if err := dec.Decode(&sess); err != nil || sess == nil {
		return nil, nil
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil // more after the object: not JSON
	}
	var b strings.Builder
	for _, t := range r.templates {
		b.Reset()
		ok := true
		for _, p := range t.parts {
			if p.path == nil {
				b.WriteString(p.text)
				continue
			}
			s, found := scalarAt(sess, p.path)
			if !found {
				ok = false
				break
			}
			b.WriteString(s)
		}
		if !ok {
			continue
		}
		if b.Len() > MaxSessionRoomLen {
			tooLong = append(tooLong, TooLongRoom{Template: t.src, Len: b.Len()})
			continue
		}
		rooms = append(rooms, b.String())
	}
	slices.Sort(rooms)
	return slices.Compact(rooms), tooLong
}

// scalarAt returns the text of the scalar at path in obj: a non-empty
// string as is, a number as written, a boolean as true or false; false for
// anything else.
func scalarAt(obj map[string]any, path []string) (string, bool) {
	var v any = obj
	for _, seg := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[seg]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, x != ""
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false // null, object, array
}

// roomDiff returns the rooms of old not in new, and of new not in old; both
// are sorted.
func roomDiff(old, new []string) (leave, join []string) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || (i < len(old) && old[i] < new[j]):
			leave = append(leave, old[i])
			i++
		case i == len(old) || new[j] < old[i]:
			join = append(join, new[j])
			j++
		default:
			i++
			j++
		}
	}
	return leave, join
}

// sessionRooms renders the rooms of a session's row, logging the templates
// that rendered too long a room.
func (g *Gateway) sessionRooms(data []byte, short string) []string {
	if g.rooms == nil {
		return nil
	}
	rooms, tooLong := g.rooms.Render(data)
	for _, t := range tooLong {
		g.log.Warn("session room skipped: longer than the limit", "template", t.Template, "bytes", t.Len, "limit", MaxSessionRoomLen, "session", short)
	}
	return rooms
}

// roomMove is a socket whose session rooms changed.
type roomMove struct {
	s *socketio.Socket
	c *conn
}

// movesLocked records rooms as what the sockets of l must be in, and returns
// the sockets to move: those not there yet, or whose last move failed.
// Gateway.mu is held.
func movesLocked(l *liveSession, rooms []string) []roomMove {
	var moves []roomMove
	for s, c := range l.sockets {
		if c.dirty || !slices.Equal(c.want, rooms) {
			c.want, c.dirty = rooms, false
			moves = append(moves, roomMove{s, c})
		}
	}
	return moves
}

// moveRooms has each socket of moves leave the session rooms it should no
// longer be in, then join the new ones. Leaving first: a room the session
// lost must stop reaching the socket before anything else.
func (g *Gateway) moveRooms(ctx context.Context, moves []roomMove) {
	for _, m := range moves {
		g.moveSocket(ctx, m.s, m.c)
	}
}

// notSubscribed returns the rooms of rooms the socket did not also
// subscribe to: a room it holds for both reasons stays while either does.
func notSubscribed(c *conn, rooms []string) []string {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	var out []string
	for _, r := range rooms {
		if !c.subs[r] {
			out = append(out, r)
		}
	}
	return out
}

func (g *Gateway) moveSocket(ctx context.Context, s *socketio.Socket, c *conn) {
	c.moveMu.Lock()
	defer c.moveMu.Unlock()
	g.mu.Lock()
	want := c.want
	g.mu.Unlock()
	leave, join := roomDiff(c.joined, want)
	if len(leave) == 0 && len(join) == 0 {
		return
	}
	if !s.Connected() {
		return // it left all its rooms
	}
	if drop := notSubscribed(c, leave); len(drop) > 0 {
		s.Leave(drop...)
	}
	if len(join) > 0 {
		jctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := s.Join(jctx, join...)
		cancel()
		if err != nil {
			// Not half in: the rooms it may have joined are left again, and
			// the move is retried at the session's next check.
			s.Leave(notSubscribed(c, join)...)
			c.joined, _ = roomDiff(c.joined, leave)
			if errors.Is(err, socketio.ErrDisconnected) {
				return
			}
			g.mu.Lock()
			c.dirty = true
			g.mu.Unlock()
			g.log.Error("joining session rooms failed; retried at the next check", "session", c.short, "socket", s.ID(), "rooms", len(join), "err", err)
			return
		}
	}
	c.joined = want
	g.log.Debug("session rooms changed", "session", c.short, "socket", s.ID(), "left", leave, "joined", join)
	g.audit.add(sessiongate.AuditEvent{
		Time:        g.now(),
		Action:      sessiongate.ActionRoomsChanged,
		Severity:    sessiongate.SeverityInfo,
		UserID:      c.identity.UserID,
		SessionHash: c.short,
		RemoteAddr:  c.client.remoteAddr,
		UserAgent:   c.client.userAgent,
		SocketID:    c.client.socketID,
		Details:     roomsChangedDetails(leave, join),
	})
}

// roomsChangedDetails is the Details of SOCKET_ROOMS_CHANGED:
// "left: a b; joined: c" (cut to MaxAuditDetails by Sanitized).
func roomsChangedDetails(leave, join []string) string {
	return "left: " + strings.Join(leave, " ") + "; joined: " + strings.Join(join, " ")
}
