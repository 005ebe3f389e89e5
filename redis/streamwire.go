package redis

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
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

// maxJSONDepth bounds the nesting of an event's data encoded in msgpack,
// so that it decodes within streamLimits (under two levels of envelope).
var maxJSONDepth = streamLimits.MaxDepth - 2

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
	dec.MapsInOrder() // the event's objects keep their keys' order
	v, err := dec.Value()
	if err != nil {
		return e, err
	}
	if dec.Len() != 0 {
		return e, fmt.Errorf("%w: %d trailing bytes", clusterwire.ErrMalformed, dec.Len())
	}
	msg, ok := v.(clusterwire.Map)
	if !ok {
		return e, fmt.Errorf("data is %T, not a map", v)
	}
	if field(msg, "requestId") != nil {
		return e, errNotOurs
	}
	p, ok := field(msg, "packet").(clusterwire.Map)
	if !ok {
		return e, fmt.Errorf("packet is %T, not a map", field(msg, "packet"))
	}
	if typ := field(p, "type"); field(p, "id") != nil || !(isNumber(typ, 2) || isNumber(typ, 5)) {
		return e, errNotOurs
	}
	args, ok := field(p, "data").([]any)
	if !ok || len(args) == 0 {
		return e, errors.New("packet data is not a non-empty array")
	}
	if _, ok := args[0].(string); !ok {
		return e, errors.New("event name is not a string")
	}
	if e.Data, e.Attachments, err = placeholderJSON(args); err != nil {
		return e, err
	}
	opts, err := clusterwire.OptsFromValue(unordered(field(msg, "opts")))
	if err != nil {
		return e, err
	}
	e.Rooms, e.Except, e.Volatile = nilIfEmpty(opts.Rooms), nilIfEmpty(opts.Except), opts.Flags.Volatile
	return e, nil
}

// field returns the value of the last key k of m (as JS keeps the last of
// a repeated key), nil if none.
func field(m clusterwire.Map, k string) any {
	for i := len(m) - 1; i >= 0; i-- {
		if m[i].Key == k {
			return m[i].Value
		}
	}
	return nil
}

// unordered returns v with its Maps as map[string]any.
func unordered(v any) any {
	switch x := v.(type) {
	case clusterwire.Map:
		m := make(map[string]any, len(x))
		for _, f := range x {
			m[f.Key] = unordered(f.Value)
		}
		return m
	case []any:
		for i := range x {
			x[i] = unordered(x[i])
		}
	}
	return v
}

func decodeJSONData(data string) (socketio.LogEntry, error) {
	var e socketio.LogEntry
	var msg struct {
		Packet *struct {
			Type json.RawMessage `json:"type"`
			ID   json.RawMessage `json:"id"`
			Data json.RawMessage `json:"data"`
		} `json:"packet"`
		Opts      json.RawMessage `json:"opts"`
		RequestID json.RawMessage `json:"requestId"`
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
	// The event's arguments as is (valid JSON, checked above): an array
	// whose first element is the event name, as socketio sends them.
	rest := bytes.TrimLeft(p.Data, " \t\r\n")
	if len(rest) == 0 || rest[0] != '[' {
		return e, errors.New("packet data is not an array")
	}
	if rest = bytes.TrimLeft(rest[1:], " \t\r\n"); len(rest) == 0 || rest[0] != '"' {
		return e, errors.New("event name is not a string")
	}
	e.Data = p.Data
	if isJSONSet(msg.Opts) {
		// Rooms are strings but for a JS numeric room, which the slower
		// generic path formats.
		var o struct {
			Rooms  []string `json:"rooms"`
			Except []string `json:"except"`
			Flags  *struct {
				Volatile bool `json:"volatile"`
			} `json:"flags"`
		}
		if json.Unmarshal(msg.Opts, &o) == nil {
			e.Rooms, e.Except = nilIfEmpty(o.Rooms), nilIfEmpty(o.Except)
			e.Volatile = o.Flags != nil && o.Flags.Volatile
			return e, nil
		}
		var co clusterwire.Opts
		if err := json.Unmarshal(msg.Opts, &co); err != nil {
			return e, fmt.Errorf("opts: %w", err)
		}
		e.Rooms, e.Except = nilIfEmpty(co.Rooms), nilIfEmpty(co.Except)
		e.Volatile = co.Flags != nil && co.Flags.Volatile
	}
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

// placeholderJSON returns decoded msgpack values as a packet's JSON
// array, maps in their order, each bin replaced by a placeholder numbered
// in the order of the JSON, and the bins.
func placeholderJSON(args []any) ([]byte, [][]byte, error) {
	w := jsonWriter{}
	if err := w.value(args); err != nil {
		return nil, nil, fmt.Errorf("packet data: %w", err)
	}
	return w.buf, w.bins, nil
}

type jsonWriter struct {
	buf  []byte
	bins [][]byte
}

func (w *jsonWriter) value(v any) error {
	switch x := v.(type) {
	case nil:
		w.buf = append(w.buf, "null"...)
	case bool:
		w.buf = strconv.AppendBool(w.buf, x)
	case int64:
		w.buf = strconv.AppendInt(w.buf, x, 10)
	case float64, string:
		b, err := marshalNoEscape(x)
		if err != nil {
			return err
		}
		w.buf = append(w.buf, b...)
	case []byte:
		w.buf = fmt.Appendf(w.buf, `{"_placeholder":true,"num":%d}`, len(w.bins))
		w.bins = append(w.bins, x)
	case []any:
		w.buf = append(w.buf, '[')
		for i, e := range x {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if err := w.value(e); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, ']')
	case clusterwire.Map:
		w.buf = append(w.buf, '{')
		for i, f := range x {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if err := w.value(f.Key); err != nil {
				return err
			}
			w.buf = append(w.buf, ':')
			if err := w.value(f.Value); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, '}')
	default:
		return fmt.Errorf("value of type %T", v)
	}
	return nil
}

// marshalNoEscape is json.Marshal without the HTML escapes.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
