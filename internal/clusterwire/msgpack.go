package clusterwire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Map is a msgpack map whose keys are encoded in the given order, as a JS
// object literal is by notepack. Node's adapters write `type, data, nsp` and
// `rooms, except, flags`; a Go map would come out in random order.
type Map []Field

// Field is one key of a Map.
type Field struct {
	Key   string
	Value any
}

// Marshal encodes v as notepack.io 3.0.1 does the equivalent JS value.
func Marshal(v any) ([]byte, error) { return AppendValue(nil, v) }

// AppendValue appends the msgpack encoding of v to b, with notepack's
// choices: integers (and integral float64 values, which are JS integers) in
// their smallest form, every other number as float64, strings as str,
// []byte as bin, time.Time as the timestamp extension (−1), nil as nil.
// It takes nil, bool, string, []byte, the int, uint and float kinds, Map,
// map[string]any (keys sorted, for a stable output), []any, []string and
// time.Time; any other value is encoded as its encoding/json form would be
// decoded into any (notepack encodes what toJSON returns).
func AppendValue(b []byte, v any) ([]byte, error) { return appendValue(b, v, 0) }

// maxEncodeDepth stops a cyclic value from recursing forever.
const maxEncodeDepth = 128

var errEncodeDepth = errors.New("clusterwire: value nested too deeply")

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxEncodeDepth {
		return b, errEncodeDepth
	}
	switch v := v.(type) {
	case nil:
		return append(b, 0xc0), nil
	case bool:
		if v {
			return append(b, 0xc3), nil
		}
		return append(b, 0xc2), nil
	case string:
		return appendString(b, v), nil
	case []byte:
		return appendBin(b, v), nil
	case int:
		return appendInt(b, int64(v)), nil
	case int8:
		return appendInt(b, int64(v)), nil
	case int16:
		return appendInt(b, int64(v)), nil
	case int32:
		return appendInt(b, int64(v)), nil
	case int64:
		return appendInt(b, v), nil
	case uint:
		return appendUint(b, uint64(v)), nil
	case uint8:
		return appendUint(b, uint64(v)), nil
	case uint16:
		return appendUint(b, uint64(v)), nil
	case uint32:
		return appendUint(b, uint64(v)), nil
	case uint64:
		return appendUint(b, v), nil
	case float32:
		return appendFloat(b, float64(v)), nil
	case float64:
		return appendFloat(b, v), nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return appendInt(b, i), nil
		}
		f, err := v.Float64()
		if err != nil {
			return b, fmt.Errorf("clusterwire: number %q: %w", v, err)
		}
		return appendFloat(b, f), nil
	case time.Time:
		return appendTime(b, v), nil
	case Map:
		b = appendMapLen(b, len(v))
		var err error
		for _, f := range v {
			b = appendString(b, f.Key)
			if b, err = appendValue(b, f.Value, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = appendMapLen(b, len(v))
		var err error
		for _, k := range keys {
			b = appendString(b, k)
			if b, err = appendValue(b, v[k], depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case []any:
		b = appendArrayLen(b, len(v))
		var err error
		for _, e := range v {
			if b, err = appendValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case []string:
		b = appendArrayLen(b, len(v))
		for _, e := range v {
			b = appendString(b, e)
		}
		return b, nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return append(b, 0xc0), nil
	}
	// Like notepack's toJSON: encode what the value's JSON form is.
	j, err := json.Marshal(v)
	if err != nil {
		return b, fmt.Errorf("clusterwire: encode %T: %w", v, err)
	}
	var g any
	if err := json.Unmarshal(j, &g); err != nil {
		return b, fmt.Errorf("clusterwire: encode %T: %w", v, err)
	}
	return appendValue(b, g, depth+1)
}

func appendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 0x20:
		b = append(b, 0xa0|byte(n))
	case n < 0x100:
		b = append(b, 0xd9, byte(n))
	case n < 0x10000:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	return append(b, s...)
}

func appendBin(b, p []byte) []byte {
	n := len(p)
	switch {
	case n < 0x100:
		b = append(b, 0xc4, byte(n))
	case n < 0x10000:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = append(b, 0xc6)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	return append(b, p...)
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 0x10:
		return append(b, 0x90|byte(n))
	case n < 0x10000:
		return append(b, 0xdc, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
	}
}

func appendMapLen(b []byte, n int) []byte {
	switch {
	case n < 0x10:
		return append(b, 0x80|byte(n))
	case n < 0x10000:
		return append(b, 0xde, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
	}
}

func appendUint(b []byte, u uint64) []byte {
	switch {
	case u < 0x80:
		return append(b, byte(u))
	case u < 0x100:
		return append(b, 0xcc, byte(u))
	case u < 0x10000:
		return append(b, 0xcd, byte(u>>8), byte(u))
	case u < 0x100000000:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(u))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), u)
	}
}

func appendInt(b []byte, i int64) []byte {
	switch {
	case i >= 0:
		return appendUint(b, uint64(i))
	case i >= -0x20:
		return append(b, byte(i))
	case i >= -0x80:
		return append(b, 0xd0, byte(i))
	case i >= -0x8000:
		return append(b, 0xd1, byte(i>>8), byte(i))
	case i >= -0x80000000:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(i))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(i))
	}
}

// appendFloat writes an integral value as notepack does a JS integer, the
// rest as float64.
func appendFloat(b []byte, f float64) []byte {
	if f == math.Trunc(f) && !math.IsInf(f, 0) && f >= -0x1p63 && f < 0x1p64 && !(f == 0 && math.Signbit(f)) {
		if f >= 0 {
			return appendUint(b, uint64(f))
		}
		return appendInt(b, int64(f))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(f))
}

// appendTime writes the msgpack timestamp as notepack writes a Date: 32
// bits when whole seconds fit, else 64 bits, else 96 bits; at millisecond
// precision like a Date.
func appendTime(b []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	s := ms / 1000
	if ms < 0 && ms%1000 != 0 {
		s-- // floor, as Math.floor
	}
	ns := (ms - s*1000) * 1e6
	switch {
	case s >= 0 && ns == 0 && s <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xd6, 0xff), uint32(s))
	case s >= 0 && s < 1<<34:
		return binary.BigEndian.AppendUint64(append(b, 0xd7, 0xff), uint64(ns)<<34|uint64(s))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc7, 12, 0xff), uint32(ns))
		return binary.BigEndian.AppendUint64(b, uint64(s))
	}
}

// Limits bound what a decoder builds from bytes a peer sent. Lengths are
// checked against the bytes left too, so a small message cannot announce
// a huge array.
type Limits struct {
	MaxDepth int // nesting of arrays and maps: 32
	MaxItems int // array elements and map entries in all: 1<<20
}

// DefaultLimits are those of Unmarshal.
var DefaultLimits = Limits{MaxDepth: 32, MaxItems: 1 << 20}

// ErrMalformed is wrapped by every decoding error: the bytes are not the
// msgpack of a value, or they exceed the Limits.
var ErrMalformed = errors.New("clusterwire: malformed msgpack")

// Unmarshal decodes one msgpack value, which must fill data, with
// DefaultLimits. See Decoder.Value for the Go types it returns.
func Unmarshal(data []byte) (any, error) {
	d := NewDecoder(data, DefaultLimits)
	v, err := d.Value()
	if err != nil {
		return nil, err
	}
	if d.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, d.Len())
	}
	return v, nil
}

// A Decoder reads msgpack values from a byte slice one at a time, so a
// receiver can read the head of a message (its uid, say) and stop there.
type Decoder struct {
	b       []byte
	lim     Limits
	items   int
	inOrder bool
}

// NewDecoder returns a Decoder of data; zero fields of lim take the
// DefaultLimits. The []byte values it returns are copies.
func NewDecoder(data []byte, lim Limits) *Decoder {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultLimits.MaxDepth
	}
	if lim.MaxItems <= 0 {
		lim.MaxItems = DefaultLimits.MaxItems
	}
	return &Decoder{b: data, lim: lim}
}

// MapsInOrder makes Value return maps as Map, their keys in the order of
// the bytes (a JS object's order), instead of map[string]any.
func (d *Decoder) MapsInOrder() { d.inOrder = true }

// Len returns the number of bytes not yet read.
func (d *Decoder) Len() int { return len(d.b) }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func (d *Decoder) take(n int) ([]byte, error) {
	if n < 0 || n > len(d.b) {
		return nil, malformed("truncated")
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p, nil
}

func (d *Decoder) byte1() (byte, error) {
	if len(d.b) == 0 {
		return 0, malformed("truncated")
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c, nil
}

func (d *Decoder) uintN(n int) (uint64, error) {
	p, err := d.take(n)
	if err != nil {
		return 0, err
	}
	var u uint64
	for _, c := range p {
		u = u<<8 | uint64(c)
	}
	return u, nil
}

// ArrayLen reads the header of an array and returns its length.
func (d *Decoder) ArrayLen() (int, error) {
	c, err := d.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x90:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n, err = d.uintN(2)
	case c == 0xdd:
		n, err = d.uintN(4)
	default:
		return 0, malformed("0x%02x is not an array", c)
	}
	if err != nil {
		return 0, err
	}
	return d.count(n)
}

// count checks n elements against the limit and the bytes left (each takes
// at least one).
func (d *Decoder) count(n uint64) (int, error) {
	if n > uint64(len(d.b)) {
		return 0, malformed("length %d exceeds the %d bytes left", n, len(d.b))
	}
	d.items += int(n)
	if d.items > d.lim.MaxItems {
		return 0, malformed("more than %d items", d.lim.MaxItems)
	}
	return int(n), nil
}

// String reads a str value.
func (d *Decoder) String() (string, error) {
	c, err := d.byte1()
	if err != nil {
		return "", err
	}
	n, ok, err := d.strLen(c)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", malformed("0x%02x is not a string", c)
	}
	p, err := d.take(n)
	return string(p), err
}

func (d *Decoder) strLen(c byte) (n int, ok bool, err error) {
	var u uint64
	switch {
	case c&0xe0 == 0xa0:
		u = uint64(c & 0x1f)
	case c == 0xd9:
		u, err = d.uintN(1)
	case c == 0xda:
		u, err = d.uintN(2)
	case c == 0xdb:
		u, err = d.uintN(4)
	default:
		return 0, false, nil
	}
	return int(u), true, err
}

// Value reads the next value: nil, bool, int64 (an integer; a uint64 above
// math.MaxInt64 becomes float64, as in JS), float64, string, []byte (bin),
// []any, map[string]any (integer keys are formatted in decimal, as a JS
// object would; Map after MapsInOrder), and a timestamp (ext −1) as the string Date.toJSON gives
// (ISO 8601 UTC, milliseconds). Other extensions are refused.
func (d *Decoder) Value() (any, error) { return d.value(0) }

func (d *Decoder) value(depth int) (any, error) {
	if depth > d.lim.MaxDepth {
		return nil, malformed("nested deeper than %d", d.lim.MaxDepth)
	}
	c, err := d.byte1()
	if err != nil {
		return nil, err
	}
	switch {
	case c < 0x80:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c&0xf0 == 0x80:
		return d.mapBody(uint64(c&0x0f), depth)
	case c&0xf0 == 0x90:
		return d.arrayBody(uint64(c&0x0f), depth)
	}
	if n, ok, err := d.strLen(c); ok || err != nil {
		if err != nil {
			return nil, err
		}
		p, err := d.take(n)
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(p) {
			// notepack decodes with a UTF-8 decoder that replaces bad
			// sequences; a Go string would carry them to JSON clients.
			return string([]rune(string(p))), nil
		}
		return string(p), nil
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6:
		u, err := d.uintN(1 << (c - 0xc4))
		if err != nil {
			return nil, err
		}
		p, err := d.take(int(min(u, math.MaxInt32)))
		if err != nil {
			return nil, err
		}
		return slices.Clone(p), nil
	case 0xc7, 0xc8, 0xc9:
		u, err := d.uintN(1 << (c - 0xc7))
		if err != nil {
			return nil, err
		}
		return d.ext(int(min(u, math.MaxInt32)))
	case 0xca:
		u, err := d.uintN(4)
		return float64(math.Float32frombits(uint32(u))), err
	case 0xcb:
		u, err := d.uintN(8)
		return math.Float64frombits(u), err
	case 0xcc, 0xcd, 0xce, 0xcf:
		u, err := d.uintN(1 << (c - 0xcc))
		if err != nil {
			return nil, err
		}
		if u > math.MaxInt64 {
			return float64(u), nil
		}
		return int64(u), nil
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n := 1 << (c - 0xd0)
		u, err := d.uintN(n)
		if err != nil {
			return nil, err
		}
		shift := 64 - 8*n
		return int64(u<<shift) >> shift, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return d.ext(1 << (c - 0xd4))
	case 0xdc, 0xdd:
		u, err := d.uintN(2 << (c - 0xdc))
		if err != nil {
			return nil, err
		}
		return d.arrayBody(u, depth)
	case 0xde, 0xdf:
		u, err := d.uintN(2 << (c - 0xde))
		if err != nil {
			return nil, err
		}
		return d.mapBody(u, depth)
	}
	return nil, malformed("unknown type byte 0x%02x", c)
}

func (d *Decoder) arrayBody(n uint64, depth int) (any, error) {
	cnt, err := d.count(n)
	if err != nil {
		return nil, err
	}
	a := make([]any, cnt)
	for i := range a {
		if a[i], err = d.value(depth + 1); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (d *Decoder) mapBody(n uint64, depth int) (any, error) {
	cnt, err := d.count(n)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	var om Map
	if d.inOrder {
		om = make(Map, 0, cnt)
	} else {
		m = make(map[string]any, cnt)
	}
	for range cnt {
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		var key string
		switch k := k.(type) {
		case string:
			key = k
		case int64:
			key = strconv.FormatInt(k, 10)
		default:
			return nil, malformed("map key of type %T", k)
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if d.inOrder {
			om = append(om, Field{key, v})
		} else {
			m[key] = v
		}
	}
	if d.inOrder {
		return om, nil
	}
	return m, nil
}

func (d *Decoder) ext(n int) (any, error) {
	t, err := d.byte1()
	if err != nil {
		return nil, err
	}
	p, err := d.take(n)
	if err != nil {
		return nil, err
	}
	if int8(t) != -1 {
		return nil, malformed("extension type %d", int8(t))
	}
	var sec, nsec int64
	switch n {
	case 4:
		sec = int64(binary.BigEndian.Uint32(p))
	case 8:
		u := binary.BigEndian.Uint64(p)
		nsec, sec = int64(u>>34), int64(u&(1<<34-1))
	case 12:
		nsec, sec = int64(binary.BigEndian.Uint32(p)), int64(binary.BigEndian.Uint64(p[4:]))
	default:
		return nil, malformed("timestamp of %d bytes", n)
	}
	if nsec > 999999999 {
		return nil, malformed("timestamp nanoseconds %d", nsec)
	}
	return DateJSON(time.Unix(sec, nsec)), nil
}

// DateJSON formats t as JS Date.prototype.toJSON does:
// "2026-12-03T09:49:41.000Z", with a six-digit signed year outside 0–9999.
func DateJSON(t time.Time) string {
	t = t.UTC()
	y := t.Year()
	rest := t.Format("-01-02T15:04:05.000Z")
	switch {
	case y >= 0 && y <= 9999:
		return fmt.Sprintf("%04d%s", y, rest)
	case y < 0:
		return fmt.Sprintf("-%06d%s", -y, rest)
	default:
		return fmt.Sprintf("+%06d%s", y, rest)
	}
}
