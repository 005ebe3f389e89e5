package socketio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Binary attachments (see the package documentation for what is
// supported): encodeArgs replaces each []byte with a placeholder object and
// collects the bytes; reconstruct puts received attachments back in place of
// their placeholders.

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	marshalerType  = reflect.TypeFor[json.Marshaler]()
	textMarshaler  = reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()
	binaryTypes    sync.Map // reflect.Type → bool: may hold a []byte
)

// encodeArgs returns the JSON array of args, with binary values replaced by
// placeholders, and the attachments in placeholder order.
func encodeArgs(head any, args []any) (json.RawMessage, [][]byte, error) {
	e := &argEncoder{}
	e.buf.WriteByte('[')
	n := 0
	if head != nil {
		if err := e.value(reflect.ValueOf(head)); err != nil {
			return nil, nil, err
		}
		n++
	}
	for _, a := range args {
		if n > 0 {
			e.buf.WriteByte(',')
		}
		n++
		if err := e.value(reflect.ValueOf(a)); err != nil {
			return nil, nil, err
		}
	}
	e.buf.WriteByte(']')
	return e.buf.Bytes(), e.bins, nil
}

type argEncoder struct {
	buf  bytes.Buffer
	bins [][]byte
}

func (e *argEncoder) marshal(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode argument: %w", err)
	}
	e.buf.Write(b)
	return nil
}

func (e *argEncoder) value(v reflect.Value) error {
	if !v.IsValid() {
		e.buf.WriteString("null")
		return nil
	}
	t := v.Type()
	if t == rawMessageType {
		if v.Len() == 0 {
			e.buf.WriteString("null")
			return nil
		}
		return e.marshal(v.Interface())
	}
	if !mayHoldBinary(t) {
		return e.marshal(v.Interface())
	}
	switch t.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			e.buf.WriteString("null")
			return nil
		}
		return e.value(v.Elem())
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			fmt.Fprintf(&e.buf, `{"_placeholder":true,"num":%d}`, len(e.bins))
			e.bins = append(e.bins, v.Bytes())
			return nil
		}
		if v.IsNil() {
			e.buf.WriteString("null")
			return nil
		}
		return e.array(v)
	case reflect.Array:
		return e.array(v)
	case reflect.Map:
		if v.IsNil() {
			e.buf.WriteString("null")
			return nil
		}
		keys := v.MapKeys()
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = k.String()
		}
		order := make([]int, len(keys))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })
		e.buf.WriteByte('{')
		for n, i := range order {
			if n > 0 {
				e.buf.WriteByte(',')
			}
			if err := e.marshal(names[i]); err != nil {
				return err
			}
			e.buf.WriteByte(':')
			if err := e.value(v.MapIndex(keys[i])); err != nil {
				return err
			}
		}
		e.buf.WriteByte('}')
		return nil
	case reflect.Struct:
		e.buf.WriteByte('{')
		first := true
		if err := e.fields(v, &first); err != nil {
			return err
		}
		e.buf.WriteByte('}')
		return nil
	}
	return e.marshal(v.Interface())
}

func (e *argEncoder) array(v reflect.Value) error {
	e.buf.WriteByte('[')
	for i := range v.Len() {
		if i > 0 {
			e.buf.WriteByte(',')
		}
		if err := e.value(v.Index(i)); err != nil {
			return err
		}
	}
	e.buf.WriteByte(']')
	return nil
}

func (e *argEncoder) fields(v reflect.Value, first *bool) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				ft, fv = ft.Elem(), fv.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if err := e.fields(fv, first); err != nil {
					return err
				}
				continue
			}
			if !f.IsExported() {
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		if strings.Contains(","+opts+",", ",omitempty,") && isEmpty(fv) {
			continue
		}
		if !*first {
			e.buf.WriteByte(',')
		}
		*first = false
		if err := e.marshal(name); err != nil {
			return err
		}
		e.buf.WriteByte(':')
		if err := e.value(fv); err != nil {
			return err
		}
	}
	return nil
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return v.IsZero() && v.Kind() != reflect.Struct
}

// mayHoldBinary reports whether a value of type t can contain a []byte that
// encodeArgs must turn into an attachment.
func mayHoldBinary(t reflect.Type) bool {
	if b, ok := binaryTypes.Load(t); ok {
		return b.(bool)
	}
	binaryTypes.Store(t, true) // conservative answer while recursing
	b := computeBinary(t)
	binaryTypes.Store(t, b)
	return b
}

func computeBinary(t reflect.Type) bool {
	if t == rawMessageType || t.Implements(marshalerType) || t.Implements(textMarshaler) {
		return false
	}
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.Uint8 || mayHoldBinary(t.Elem())
	case reflect.Pointer, reflect.Array:
		return mayHoldBinary(t.Elem())
	case reflect.Map:
		return t.Key().Kind() == reflect.String && mayHoldBinary(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if (f.IsExported() || f.Anonymous) && f.Tag.Get("json") != "-" && mayHoldBinary(f.Type) {
				return true
			}
		}
	}
	return false
}

// reconstruct replaces the placeholders in v, a value decoded by
// encoding/json into any, with the attachments they point to.
func reconstruct(v any, bins [][]byte) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if ph, ok := x["_placeholder"].(bool); ok && ph {
			num, ok := x["num"].(float64)
			if !ok || num < 0 || num >= float64(len(bins)) || num != math.Trunc(num) {
				return nil, invalid("illegal attachment placeholder")
			}
			return bins[int(num)], nil
		}
		for k, e := range x {
			r, err := reconstruct(e, bins)
			if err != nil {
				return nil, err
			}
			x[k] = r
		}
	case []any:
		for i, e := range x {
			r, err := reconstruct(e, bins)
			if err != nil {
				return nil, err
			}
			x[i] = r
		}
	}
	return v, nil
}

// decodeArgs decodes a packet's JSON array payload and puts its attachments
// back in place.
func decodeArgs(data json.RawMessage, bins [][]byte) ([]any, error) {
	var args []any
	if err := json.Unmarshal(data, &args); err != nil {
		return nil, invalid("payload: %v", err)
	}
	for i, a := range args {
		r, err := reconstruct(a, bins)
		if err != nil {
			return nil, err
		}
		args[i] = r
	}
	return args, nil
}
