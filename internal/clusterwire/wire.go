// Package clusterwire holds the wire shapes that Socket.IO's cluster
// adapters share, for the redis and postgres packages: a msgpack codec of
// generic values compatible with notepack.io 3.0.1 (what
// @socket.io/redis-adapter and its emitter use), the broadcast options
// {rooms, except, flags}, the broadcast packet {type:2, data, nsp}, and the
// RemoteSocket object that fetchSockets answers carry.
//
// Decoding is bounded (Limits): a bus message comes from any process that
// can publish on the bus, so its sizes and depth are checked before
// anything is allocated for them.
package clusterwire

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
)

// PacketTypeEvent is the Socket.IO packet type of a broadcast packet.
const PacketTypeEvent = 2

// ErrShape is wrapped by the errors of values that decoded but do not have
// the shape of the message they should be.
var ErrShape = errors.New("clusterwire: unexpected message shape")

func shapeErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrShape, fmt.Sprintf(format, args...))
}

// PacketData returns the data array of m's packet: [event, ...args].
func PacketData(m *socketio.Message) ([]any, error) {
	args, err := m.Values()
	if err != nil {
		return nil, err
	}
	return append([]any{m.Event}, args...), nil
}

// Packet returns the broadcast packet of m as Node's adapters encode it:
// {type:2, data:[event, ...args], nsp}, in that key order.
func Packet(m *socketio.Message, nsp string) (Map, error) {
	data, err := PacketData(m)
	if err != nil {
		return nil, err
	}
	return Map{{"type", PacketTypeEvent}, {"data", data}, {"nsp", nsp}}, nil
}

// MessageFromData returns the Message of a decoded data array
// [event, ...args].
func MessageFromData(v any) (*socketio.Message, error) {
	data, ok := v.([]any)
	if !ok || len(data) == 0 {
		return nil, shapeErr("packet data is %T, not a non-empty array", v)
	}
	ev, ok := data[0].(string)
	if !ok {
		return nil, shapeErr("event name is %T", data[0])
	}
	return socketio.NewMessage(ev, data[1:]...), nil
}

// PacketFromValue reads a decoded packet {type:2, data, nsp}: its Message and
// its nsp ("/" when absent, as Node's adapter assumes).
func PacketFromValue(v any) (*socketio.Message, string, error) {
	p, ok := v.(map[string]any)
	if !ok {
		return nil, "", shapeErr("packet is %T", v)
	}
	if t, ok := p["type"]; ok && !isInt(t, PacketTypeEvent) {
		return nil, "", shapeErr("packet type %v", t)
	}
	m, err := MessageFromData(p["data"])
	if err != nil {
		return nil, "", err
	}
	nsp := "/"
	if n, ok := p["nsp"].(string); ok {
		nsp = n
	}
	return m, nsp, nil
}

func isInt(v any, want int64) bool {
	switch v := v.(type) {
	case int64:
		return v == want
	case float64:
		return v == float64(want)
	}
	return false
}

// OptsMap returns opts as Node's adapter publishes them in msgpack:
// {rooms, except, flags} with only the flags that are set (local never
// travels; timeout in milliseconds).
func OptsMap(opts socketio.BroadcastOptions) Map {
	flags := Map{}
	if opts.Flags.Volatile {
		flags = append(flags, Field{"volatile", true})
	}
	if opts.Flags.Timeout > 0 {
		flags = append(flags, Field{"timeout", opts.Flags.Timeout.Milliseconds()})
	}
	return Map{{"rooms", strs(opts.Rooms)}, {"except", strs(opts.Except)}, {"flags", flags}}
}

func strs(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// OptsFromValue reads decoded broadcast options {rooms, except, flags?} in
// any key order; a missing field is empty. Rooms given as numbers (a JS
// numeric room) are formatted in decimal.
func OptsFromValue(v any) (socketio.BroadcastOptions, error) {
	var o socketio.BroadcastOptions
	if v == nil {
		return o, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return o, shapeErr("opts is %T", v)
	}
	var err error
	if o.Rooms, err = roomList(m["rooms"]); err != nil {
		return o, err
	}
	if o.Except, err = roomList(m["except"]); err != nil {
		return o, err
	}
	if f, ok := m["flags"].(map[string]any); ok {
		o.Flags.Volatile, _ = f["volatile"].(bool)
		if ms, ok := number(f["timeout"]); ok && ms > 0 {
			o.Flags.Timeout = time.Duration(min(ms, float64(math.MaxInt64/int64(time.Millisecond)))) * time.Millisecond
		}
	}
	return o, nil
}

func number(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

func roomList(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, shapeErr("room list is %T", v)
	}
	out := make([]string, 0, len(a))
	for _, r := range a {
		s, err := RoomName(r)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// RoomName returns a decoded room name: a string, or a number in decimal
// (Node lets a room be any key of a Map).
func RoomName(v any) (string, error) {
	switch r := v.(type) {
	case string:
		return r, nil
	case int64:
		return fmt.Sprint(r), nil
	case float64:
		return fmt.Sprint(r), nil
	}
	return "", shapeErr("room is %T", v)
}

// Opts is the JSON form of broadcast options in requests: {"rooms",
// "except"} and, when set, "flags".
type Opts struct {
	Rooms  []string `json:"rooms"`
	Except []string `json:"except"`
	Flags  *Flags   `json:"flags,omitempty"`
}

// Flags are the JSON broadcast flags.
type Flags struct {
	Volatile bool  `json:"volatile,omitempty"`
	Timeout  int64 `json:"timeout,omitempty"` // milliseconds
}

// OptsJSON returns opts in their JSON form; with flags only when one that
// travels is set.
func OptsJSON(opts socketio.BroadcastOptions) Opts {
	o := Opts{Rooms: strs(opts.Rooms), Except: strs(opts.Except)}
	if opts.Flags.Volatile || opts.Flags.Timeout > 0 {
		o.Flags = &Flags{Volatile: opts.Flags.Volatile, Timeout: opts.Flags.Timeout.Milliseconds()}
	}
	return o
}

// UnmarshalJSON reads opts in any key order, with numeric rooms
// formatted in decimal and unknown flags ignored.
func (o *Opts) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	bo, err := OptsFromValue(v)
	if err != nil {
		return err
	}
	*o = OptsJSON(bo)
	return nil
}

// BroadcastOptions returns o as socketio options.
func (o Opts) BroadcastOptions() socketio.BroadcastOptions {
	bo := socketio.BroadcastOptions{Rooms: o.Rooms, Except: o.Except}
	if o.Flags != nil {
		bo.Flags.Volatile = o.Flags.Volatile
		bo.Flags.Timeout = time.Duration(o.Flags.Timeout) * time.Millisecond
	}
	return bo
}

// RemoteSocket is the JSON of a socket in a fetchSockets answer, as Node's
// adapters send it ({id, handshake, rooms, data}), with the handshake
// reduced to what may leave a node: headers and auth are always empty.
type RemoteSocket struct {
	ID        string          `json:"id"`
	Handshake RemoteHandshake `json:"handshake"`
	Rooms     []string        `json:"rooms"`
	Data      any             `json:"data"`
}

// RemoteHandshake is the handshake of a RemoteSocket, in Node's key order.
type RemoteHandshake struct {
	Headers map[string]any `json:"headers"`
	Time    string         `json:"time"`
	Address string         `json:"address"`
	XDomain bool           `json:"xdomain"`
	Secure  bool           `json:"secure"`
	Issued  int64          `json:"issued"`
	URL     string         `json:"url"`
	Query   map[string]any `json:"query"`
	Auth    map[string]any `json:"auth"`
}

// NewRemoteSocket returns the wire form of s. It never carries a header,
// a cookie or the auth payload, whatever the SocketInfo holds.
func NewRemoteSocket(s socketio.SocketInfo) RemoteSocket {
	q := make(map[string]any, len(s.Handshake.Query))
	for k, v := range s.Handshake.Query {
		q[k] = v
	}
	rooms := s.Rooms
	if rooms == nil {
		rooms = []string{}
	}
	return RemoteSocket{
		ID: s.ID,
		Handshake: RemoteHandshake{
			Headers: map[string]any{},
			Time:    s.Handshake.Time,
			Address: s.Handshake.Address,
			Secure:  s.Handshake.Secure,
			Issued:  s.Handshake.Issued,
			URL:     s.Handshake.URL,
			Query:   q,
			Auth:    map[string]any{},
		},
		Rooms: rooms,
		Data:  s.Data,
	}
}

// SocketInfo returns r as a socketio.SocketInfo of another node. A query
// value given as an array (a repeated parameter in Node) keeps its first
// element; headers and auth are dropped.
func (r RemoteSocket) SocketInfo() socketio.SocketInfo {
	var q map[string]string
	if len(r.Handshake.Query) > 0 {
		q = make(map[string]string, len(r.Handshake.Query))
		for k, v := range r.Handshake.Query {
			switch v := v.(type) {
			case string:
				q[k] = v
			case []any:
				if len(v) > 0 {
					q[k], _ = v[0].(string)
				}
			}
		}
	}
	return socketio.SocketInfo{
		ID:    r.ID,
		Rooms: r.Rooms,
		Data:  r.Data,
		Handshake: socketio.SocketHandshake{
			Time:    r.Handshake.Time,
			Issued:  r.Handshake.Issued,
			Address: r.Handshake.Address,
			Secure:  r.Handshake.Secure,
			URL:     r.Handshake.URL,
			Query:   q,
		},
	}
}
