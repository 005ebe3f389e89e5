package main

import (
	"context"
	"encoding/json"

	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/httpapi"
	"github.com/sessiongate/sessiongate/socketio"
)

// publisher is the HTTP API's Publisher and RoomOperator for a namespace:
// everything goes through the namespace's adapter (ns.To(…).Except(…)), so
// that with CLUSTER set it reaches the sockets of every node.
type publisher struct{ ns *socketio.Namespace }

func (p publisher) to(t httpapi.Target) socketio.BroadcastOperator {
	return p.ns.To(t.To...).Except(t.Except...)
}

// Publish emits event with data (raw JSON, or no argument when nil) to the
// sockets t selects.
func (p publisher) Publish(ctx context.Context, t httpapi.Target, event string, data json.RawMessage) error {
	if data == nil {
		return p.to(t).Emit(ctx, event)
	}
	return p.to(t).Emit(ctx, event, data)
}

// JoinRooms makes the sockets t selects join rooms.
func (p publisher) JoinRooms(ctx context.Context, t httpapi.Target, rooms []string) error {
	return p.to(t).SocketsJoin(ctx, rooms...)
}

// LeaveRooms makes the sockets t selects leave rooms.
func (p publisher) LeaveRooms(ctx context.Context, t httpapi.Target, rooms []string) error {
	return p.to(t).SocketsLeave(ctx, rooms...)
}

// DisconnectSockets disconnects the sockets t selects.
func (p publisher) DisconnectSockets(ctx context.Context, t httpapi.Target, close bool) error {
	return p.to(t).DisconnectSockets(ctx, close)
}

// gatewayPresence is GET /api/presence's source: the gateway's merged view.
type gatewayPresence struct{ gw *gateway.Gateway }

func (p gatewayPresence) Presence(room string, limit int) (httpapi.PresenceState, bool) {
	snap, ok := p.gw.Presence(room, "", limit)
	return httpapi.PresenceState{Users: snap.Users, Count: snap.Count, Connections: snap.Connections, Truncated: snap.Truncated}, ok
}

// presenceSource is nil without PRESENCE_ROOMS: /api/presence answers 404.
func presenceSource(cfg Config, gw *gateway.Gateway) httpapi.PresenceSource {
	if len(cfg.PresenceRooms) == 0 {
		return nil
	}
	return gatewayPresence{gw}
}
