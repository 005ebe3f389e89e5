package redis

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sessiongate/sessiongate/internal/clusterwire"
	"github.com/sessiongate/sessiongate/socketio"
)

// This file is the format of a stream entry, as
// @socket.io/redis-streams-adapter 0.3.1 writes a broadcast (its
// RawClusterMessage): the fields uid, nsp, type ("3": BROADCAST) and data,
// the message's {packet, opts} in JSON, or, when it holds binary, in
// base64 of its @msgpack/msgpack encoding (whose choices for the values a
// broadcast carries are notepack's, which clusterwire speaks).

// typeBroadcast is the type field of a broadcast entry. Node also writes 4,
// 5 and 6 (socketsJoin, socketsLeave, disconnectSockets), which StreamLog
// does not apply.
const typeBroadcast = "3"

// streamLimits bound the msgpack of one entry's data.
var streamLimits = clusterwire.Limits{MaxDepth: 64, MaxItems: 1 << 20}

// maxJSONDepth bounds the nesting of an event's arguments encoded in
// msgpack, so that it decodes within streamLimits (the envelope takes 3
// levels).
const maxJSONDepth = 60

// errNotOurs is the error of entries that are well formed but not a
// broadcast to deliver or replay: another type, an acked emit, another
// packet type.
var errNotOurs = errors.New("not a broadcast without ack")

// streamOpts and streamFlags are the opts of an entry in JSON, as Node
// writes them (flags always there).
type streamOpts struct {
	Rooms  []string    `json:"rooms"`
	Except []string    `json:"except"`
	Flags  streamFlags `json:"flags"`
}

type streamFlags struct {
	Volatile bool `json:"volatile,omitempty"`
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// encodeStreamData returns the data field of e broadcast in nsp: JSON
// {"packet":{"type":2,"data":<e.Data>,"nsp":<nsp>},"opts":{...}} with e.Data
// as is, or, with attachments, base64(msgpack) of the same message with
// each attachment as a bin in place of its placeholder.
func encodeStreamData(nsp string, e socketio.LogEntry) (string, error) {
	if len(e.Attachments) == 0 {
		if !json.Valid(e.Data) {
			return "", errors.New("data is not JSON")
		}
		opts, _ := json.Marshal(streamOpts{orEmpty(e.Rooms), orEmpty(e.Except), streamFlags{e.Volatile}})
		nspJSON, _ := json.Marshal(nsp)
		var b strings.Builder
		b.Grow(len(e.Data) + len(opts) + len(nspJSON) + 48)
		b.WriteString(`{"packet":{"type":2,"data":`)
		b.Write(e.Data)
		b.WriteString(`,"nsp":`)
		b.Write(nspJSON)
		b.WriteString(`},"opts":`)
		b.Write(opts)
		b.WriteString(`}`)
		return b.String(), nil
	}
	data, err := attachValues(e.Data, e.Attachments)
	if err != nil {
		return "", err
	}
	bo := socketio.BroadcastOptions{Rooms: e.Rooms, Except: e.Except}
	bo.Flags.Volatile = e.Volatile
	msg := clusterwire.Map{
		{Key: "packet", Value: clusterwire.Map{{Key: "type", Value: clusterwire.PacketTypeEvent}, {Key: "data", Value: data}, {Key: "nsp", Value: nsp}}},
		{Key: "opts", Value: clusterwire.OptsMap(bo)},
	}
	b, err := clusterwire.Marshal(msg)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// attachValues returns the JSON array data as msgpack-ready values, in
// its key order (clusterwire.Map), with the attachment a placeholder
// {"_placeholder":true,"num":i} names in its place.
func attachValues(data []byte, bins [][]byte) ([]any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	v, err := jsonValue(d, bins, 0)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if _, err := d.Token(); err == nil {
		return nil, errors.New("data: trailing JSON")
	}
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		return nil, errors.New("data is not a non-empty JSON array")
	}
	return a, nil
}

func jsonValue(d *json.Decoder, bins [][]byte, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxJSONDepth)
	}
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Number:
		return t.Float64() // a JS number; integral ones go out as integers
	case json.Delim:
		if t == '[' {
			a := []any{}
			for d.More() {
				v, err := jsonValue(d, bins, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := d.Token()
			return a, err
		}
		m := clusterwire.Map{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return nil, err
			}
			v, err := jsonValue(d, bins, depth+1)
			if err != nil {
				return nil, err
			}
			m = append(m, clusterwire.Field{Key: k.(string), Value: v})
		}
		if _, err := d.Token(); err != nil {
			return nil, err
		}
		return attachment(m, bins)
	}
	return t, nil // string, bool, nil
}

// attachment returns the attachment m names if it is a placeholder (as
// socket.io-parser reads one: "_placeholder" true), else m.
func attachment(m clusterwire.Map, bins [][]byte) (any, error) {
	var ph bool
	var num any
	for _, f := range m {
		switch f.Key {
		case "_placeholder":
			ph, _ = f.Value.(bool)
		case "num":
			num = f.Value
		}
	}
	if !ph {
		return m, nil
	}
	n, ok := num.(float64)
	if !ok || n < 0 || n >= float64(len(bins)) || n != math.Trunc(n) {
		return nil, errors.New("illegal attachment placeholder")
	}
	return bins[int(n)], nil
}

// decodeStreamData reads the data field of a broadcast entry: JSON when it
// starts with '{', else base64 of msgpack. It returns the entry's rooms,
// except, data (a JSON array with placeholders) and attachments, and
// Volatile; errNotOurs for a packet with an ack id, a requestId, or a
// packet type other than EVENT and BINARY_EVENT; another error when the
// data does not decode or has not the shape of a broadcast.
func decodeStreamData(data string, maxBytes int) (socketio.LogEntry, error) {
	var e socketio.LogEntry
	if len(data) > maxBytes {
		return e, fmt.Errorf("data of %d bytes", len(data))
	}
	if strings.HasPrefix(data, "{") {
		return decodeJSONData(data)
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return e, fmt.Errorf("data: %w", err)
	}
	dec := clusterwire.NewDecoder(b, streamLimits)
	v, err := dec.Value()
	if err != nil {
		return e, err
	}
	if dec.Len() != 0 {
		return e, fmt.Errorf("%w: %d trailing bytes", clusterwire.ErrMalformed, dec.Len())
	}
	msg, ok := v.(map[string]any)
	if !ok {
		return e, fmt.Errorf("data is %T, not a map", v)
	}
	if msg["requestId"] != nil {
		return e, errNotOurs
	}
	p, ok := msg["packet"].(map[string]any)
	if !ok {
		return e, fmt.Errorf("packet is %T, not a map", msg["packet"])
	}
	if p["id"] != nil || !(isNumber(p["type"], 2) || isNumber(p["type"], 5)) {
		return e, errNotOurs
	}
	args, ok := p["data"].([]any)
	if !ok || len(args) == 0 {
		return e, errors.New("packet data is not a non-empty array")
	}
	if _, ok := args[0].(string); !ok {
		return e, errors.New("event name is not a string")
	}
	if e.Data, e.Attachments, err = placeholderJSON(args); err != nil {
		return e, err
	}
	opts, err := clusterwire.OptsFromValue(msg["opts"])
	if err != nil {
		return e, err
	}
	e.Rooms, e.Except, e.Volatile = nilIfEmpty(opts.Rooms), nilIfEmpty(opts.Except), opts.Flags.Volatile
	return e, nil
}

func decodeJSONData(data string) (socketio.LogEntry, error) {
	var e socketio.LogEntry
	var msg struct {
		Packet *struct {
			Type json.RawMessage `json:"type"`
			ID   json.RawMessage `json:"id"`
			Data json.RawMessage `json:"data"`
		} `json:"packet"`
		Opts      clusterwire.Opts `json:"opts"`
		RequestID json.RawMessage  `json:"requestId"`
	}
	if err := json.Unmarshal([]byte(data), &msg); err != nil {
		return e, fmt.Errorf("data: %w", err)
	}
	if isJSONSet(msg.RequestID) {
		return e, errNotOurs
	}
	p := msg.Packet
	if p == nil {
		return e, errors.New("no packet")
	}
	var typ float64
	if json.Unmarshal(p.Type, &typ) != nil || (typ != 2 && typ != 5) || isJSONSet(p.ID) {
		return e, errNotOurs
	}
	// The event's arguments as is: an array whose first element is the
	// event name, as socketio sends them.
	d := json.NewDecoder(bytes.NewReader(p.Data))
	if t, err := d.Token(); err != nil || t != json.Delim('[') {
		return e, errors.New("packet data is not an array")
	}
	if t, err := d.Token(); err != nil {
		return e, errors.New("packet data is not a non-empty array")
	} else if _, ok := t.(string); !ok {
		return e, errors.New("event name is not a string")
	}
	e.Data = p.Data
	e.Rooms, e.Except = nilIfEmpty(msg.Opts.Rooms), nilIfEmpty(msg.Opts.Except)
	e.Volatile = msg.Opts.Flags != nil && msg.Opts.Flags.Volatile
	return e, nil
}

func isJSONSet(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

func isNumber(v any, want float64) bool {
	switch v := v.(type) {
	case int64:
		return float64(v) == want
	case float64:
		return v == want
	}
	return false
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// placeholder is an attachment's place in a packet's JSON.
type placeholder int

func (p placeholder) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"_placeholder":true,"num":%d}`, int(p)), nil
}

// placeholderJSON returns decoded msgpack values as a packet's JSON array,
// each bin replaced by a placeholder numbered in the order of the JSON
// (map keys sorted, as encoding/json writes them), and the bins.
func placeholderJSON(args []any) ([]byte, [][]byte, error) {
	var bins [][]byte
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case []byte:
			bins = append(bins, x)
			return placeholder(len(bins) - 1)
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				x[k] = walk(x[k])
			}
		}
		return v
	}
	walk(args)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(args); err != nil {
		return nil, nil, fmt.Errorf("packet data: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), bins, nil
}
