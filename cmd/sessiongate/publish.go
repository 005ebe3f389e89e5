package main

import (
	"context"
	"encoding/json"

	"github.com/sessiongate/sessiongate/httpapi"
	"github.com/sessiongate/sessiongate/socketio"
)

// publisher is the HTTP API's Publisher and RoomOperator for a namespace:
// everything goes through the namespace's adapter, so that with CLUSTER set
// it reaches the sockets of every node.
type publisher struct{ ns *socketio.Namespace }

// Publish emits event with data (raw JSON, or no argument when nil) to the
// sockets t selects.
func (p publisher) Publish(ctx context.Context, t httpapi.Target, event string, data json.RawMessage) error {
	b := p.ns.To(t.To...).Except(t.Except...)
	if data == nil {
		return b.Emit(event)
	}
	return b.Emit(event, data)
}

// JoinRooms makes the sockets t selects join rooms.
func (p publisher) JoinRooms(ctx context.Context, t httpapi.Target, rooms []string) error {
	for _, s := range p.selected(t) {
		s.Join(rooms...)
	}
	return nil
}

// LeaveRooms makes the sockets t selects leave rooms.
func (p publisher) LeaveRooms(ctx context.Context, t httpapi.Target, rooms []string) error {
	for _, s := range p.selected(t) {
		s.Leave(rooms...)
	}
	return nil
}

// DisconnectSockets disconnects the sockets t selects.
func (p publisher) DisconnectSockets(ctx context.Context, t httpapi.Target, close bool) error {
	for _, s := range p.selected(t) {
		s.Disconnect(close)
	}
	return nil
}

// selected is a stand-in until the seam's BroadcastOperator lands.
func (p publisher) selected(t httpapi.Target) []*socketio.Socket {
	except := map[*socketio.Socket]bool{}
	if len(t.Except) > 0 {
		for _, s := range p.ns.Sockets(t.Except...) {
			except[s] = true
		}
	}
	var out []*socketio.Socket
	for _, s := range p.ns.Sockets(t.To...) {
		if !except[s] {
			out = append(out, s)
		}
	}
	return out
}
