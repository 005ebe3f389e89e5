package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/sessiongate/sessiongate/internal/clusterwire"
)

// The ClusterMessage types of socket.io-adapter's ClusterAdapter, which
// @socket.io/postgres-adapter 0.5.0 extends (with heartbeats).
const (
	msgInitialHeartbeat     = 1
	msgHeartbeat            = 2
	msgBroadcast            = 3
	msgSocketsJoin          = 4
	msgSocketsLeave         = 5
	msgDisconnectSockets    = 6
	msgFetchSockets         = 7
	msgFetchSocketsResponse = 8
	msgServerSideEmit       = 9
	msgServerSideEmitResp   = 10
	msgBroadcastClientCount = 11
	msgBroadcastAck         = 12
	msgAdapterClose         = 13
)

// emitterUID is the uid of @socket.io/postgres-emitter's messages: never a
// node's.
const emitterUID = "emitter"

// maxNotifyPayload is PostgreSQL's bound on a NOTIFY payload (it must be
// shorter, in the default build): a JSON message this long or longer goes
// through the attachments table.
const maxNotifyPayload = 8000

// errMessage is wrapped by the errors of bus messages that are not
// ClusterMessages.
var errMessage = errors.New("postgres: malformed cluster message")

func messageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMessage, fmt.Sprintf(format, args...))
}

// clusterMessage is a decoded ClusterMessage {type, data, uid, nsp}, or the
// header of one in the attachments table (AttachmentID set). Data holds
// generic values: from JSON (float64 numbers) or from msgpack (int64 or
// float64, []byte for binary).
type clusterMessage struct {
	Type         int
	UID          string
	NSP          string // "" when absent (emitter messages)
	HasNSP       bool
	Data         map[string]any
	AttachmentID int64 // > 0 for a header
}

// parseNotification decodes the payload of a NOTIFY: a JSON ClusterMessage,
// or an attachment header {"uid","type","attachmentId"} (with "nsp" when a
// sessiongate node sent it). It is what FuzzParseNotification exercises.
func parseNotification(payload []byte) (clusterMessage, error) {
	var raw map[string]any
	d := json.NewDecoder(bytes.NewReader(payload))
	if err := d.Decode(&raw); err != nil {
		return clusterMessage{}, messageErr("json: %v", err)
	}
	if d.More() {
		return clusterMessage{}, messageErr("trailing data after the JSON object")
	}
	if raw == nil {
		return clusterMessage{}, messageErr("not a JSON object")
	}
	m, err := messageFromValue(raw)
	if err != nil {
		return m, err
	}
	if id, ok := raw["attachmentId"]; ok {
		// node-pg returns a bigserial as a string; accept a number too.
		var n int64
		switch v := id.(type) {
		case string:
			n, err = strconv.ParseInt(v, 10, 64)
		case float64:
			n = int64(v)
			if float64(n) != v {
				err = errors.New("not an integer")
			}
		default:
			err = fmt.Errorf("is %T", id)
		}
		if err != nil || n <= 0 {
			return m, messageErr("attachmentId %v: bad id", id)
		}
		m.AttachmentID = n
	}
	return m, nil
}

// parseAttachment decodes the msgpack (@msgpack/msgpack) ClusterMessage of
// an attachment row, within the decoder's limits.
func parseAttachment(payload []byte) (clusterMessage, error) {
	v, err := clusterwire.Unmarshal(payload)
	if err != nil {
		return clusterMessage{}, fmt.Errorf("%w: %w", errMessage, err)
	}
	raw, ok := v.(map[string]any)
	if !ok {
		return clusterMessage{}, messageErr("attachment is %T, not a map", v)
	}
	return messageFromValue(raw)
}

func messageFromValue(raw map[string]any) (clusterMessage, error) {
	var m clusterMessage
	t, ok := intValue(raw["type"])
	if !ok || t < msgInitialHeartbeat || t > msgAdapterClose {
		return m, messageErr("type %v", raw["type"])
	}
	m.Type = int(t)
	if u, ok := raw["uid"]; ok {
		if m.UID, ok = u.(string); !ok {
			return m, messageErr("uid is %T", u)
		}
	}
	if n, ok := raw["nsp"]; ok {
		if m.NSP, ok = n.(string); !ok {
			return m, messageErr("nsp is %T", n)
		}
		m.HasNSP = true
	}
	if d, ok := raw["data"]; ok && d != nil {
		if m.Data, ok = d.(map[string]any); !ok {
			return m, messageErr("data is %T", d)
		}
	}
	return m, nil
}

// intValue returns v as an integer when it is one (a JSON or msgpack
// number with no fraction).
func intValue(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case float64:
		if n := int64(v); float64(n) == v {
			return n, true
		}
	}
	return 0, false
}

// requestID returns data.requestId, "" when absent.
func (m clusterMessage) requestID() string {
	s, _ := m.Data["requestId"].(string)
	return s
}

// rooms returns data.rooms as room names.
func (m clusterMessage) rooms() ([]string, error) {
	v, ok := m.Data["rooms"]
	if !ok || v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, messageErr("rooms is %T", v)
	}
	out := make([]string, 0, len(a))
	for _, r := range a {
		s, err := clusterwire.RoomName(r)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// remoteSockets returns data.sockets of a FETCH_SOCKETS_RESPONSE.
func (m clusterMessage) remoteSockets() ([]clusterwire.RemoteSocket, error) {
	v, ok := m.Data["sockets"]
	if !ok || v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, messageErr("sockets is %T", v)
	}
	out := make([]clusterwire.RemoteSocket, 0, len(a))
	for _, s := range a {
		// Through JSON: the shape is clusterwire's, and a socket from an
		// attachment holds msgpack values that JSON carries as well.
		j, err := json.Marshal(s)
		if err != nil {
			return nil, messageErr("socket: %v", err)
		}
		var rs clusterwire.RemoteSocket
		if err := json.Unmarshal(j, &rs); err != nil {
			return nil, messageErr("socket: %v", err)
		}
		out = append(out, rs)
	}
	return out, nil
}

// document is an outgoing ClusterMessage in the key order Node's adapter
// writes (type, data, uid, nsp), data being nil for heartbeats and close.
func document(typ int, data clusterwire.Map, uid, nsp string) clusterwire.Map {
	d := clusterwire.Map{{Key: "type", Value: typ}}
	if data != nil {
		d = append(d, clusterwire.Field{Key: "data", Value: data})
	}
	return append(d, clusterwire.Field{Key: "uid", Value: uid}, clusterwire.Field{Key: "nsp", Value: nsp})
}

// hasBinary reports whether v holds a []byte, as Node's hasBinary does: such
// a message travels as msgpack in the attachments table.
func hasBinary(v any) bool {
	switch v := v.(type) {
	case []byte:
		return true
	case clusterwire.Map:
		for _, f := range v {
			if hasBinary(f.Value) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasBinary(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if hasBinary(e) {
				return true
			}
		}
	}
	return false
}

// appendJSON appends v as JSON.stringify writes it: clusterwire.Map keys in
// their order, no HTML escaping (Node escapes none).
func appendJSON(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case clusterwire.Map:
		b = append(b, '{')
		for i, f := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSONValue(b, f.Key); err != nil {
				return b, err
			}
			b = append(b, ':')
			if b, err = appendJSON(b, f.Value); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	return appendJSONValue(b, v)
}

func appendJSONValue(b []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return b, err
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...), nil
}
