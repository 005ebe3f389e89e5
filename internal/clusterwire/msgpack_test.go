package clusterwire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
)

// capture is one message of testdata/redis-emitter-capture.json, what the
// real @socket.io/redis-emitter 5.1.0 published (shared/interop).
type capture struct {
	Ch   string `json:"ch"`
	Hex  string `json:"hex"`
	Text string `json:"text"`
}

func loadCapture(t testing.TB) []capture {
	t.Helper()
	b, err := os.ReadFile("testdata/redis-emitter-capture.json")
	if err != nil {
		t.Fatal(err)
	}
	var c []capture
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c) != 7 {
		t.Fatalf("capture has %d messages, want 7", len(c))
	}
	return c
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// emitterOpts is the emitter's key order: rooms, flags, except.
func emitterOpts(rooms []string, flags Map, except []string) Map {
	return Map{{"rooms", rooms}, {"flags", flags}, {"except", except}}
}

// TestEmitterCaptureEncode: the logical content of the four msgpack
// messages the emitter published encodes to exactly its bytes.
func TestEmitterCaptureEncode(t *testing.T) {
	c := loadCapture(t)
	packet := func(nsp string, data ...any) Map {
		return Map{{"type", 2}, {"data", data}, {"nsp", nsp}}
	}
	want := []any{
		[]any{"emitter", packet("/", "hello", "world"), emitterOpts([]string{}, Map{}, []string{})},
		[]any{"emitter", packet("/", "bin", []byte{1, 2, 3}, map[string]any{"a": 1}), emitterOpts([]string{"room1"}, Map{}, []string{})},
		[]any{"emitter", packet("/", "multi", 42), emitterOpts([]string{"r1", "r2"}, Map{{"volatile", true}}, []string{"r3"})},
		[]any{"emitter", packet("/admin", "adm", true), emitterOpts([]string{}, Map{}, []string{})},
	}
	for i, v := range want {
		got, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if w := unhex(t, c[i].Hex); !bytes.Equal(got, w) {
			t.Errorf("message %d (%s):\n got %x\nwant %x", i, c[i].Ch, got, w)
		}
	}
}

// TestEmitterCaptureDecode: all seven captured messages decode (msgpack
// broadcasts, JSON requests) to what the emitter meant.
func TestEmitterCaptureDecode(t *testing.T) {
	c := loadCapture(t)
	type want struct {
		event string
		args  []any
		nsp   string
		opts  socketio.BroadcastOptions
	}
	wants := []want{
		{"hello", []any{"world"}, "/", socketio.BroadcastOptions{Rooms: []string{}, Except: []string{}}},
		{"bin", []any{[]byte{1, 2, 3}, map[string]any{"a": int64(1)}}, "/", socketio.BroadcastOptions{Rooms: []string{"room1"}, Except: []string{}}},
		{"multi", []any{int64(42)}, "/", socketio.BroadcastOptions{Rooms: []string{"r1", "r2"}, Except: []string{"r3"}, Flags: socketio.BroadcastFlags{Volatile: true}}},
		{"adm", []any{true}, "/admin", socketio.BroadcastOptions{Rooms: []string{}, Except: []string{}}},
	}
	for i, w := range wants {
		v, err := Unmarshal(unhex(t, c[i].Hex))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		a := v.([]any)
		if a[0] != "emitter" {
			t.Errorf("message %d: uid %v", i, a[0])
		}
		m, nsp, err := PacketFromValue(a[1])
		if err != nil {
			t.Fatal(err)
		}
		opts, err := OptsFromValue(a[2])
		if err != nil {
			t.Fatal(err)
		}
		if m.Event != w.event || !reflect.DeepEqual(m.Args, w.args) || nsp != w.nsp || !reflect.DeepEqual(opts, w.opts) {
			t.Errorf("message %d: got %q %#v %q %#v, want %#v", i, m.Event, m.Args, nsp, opts, w)
		}
	}
	for _, i := range []int{4, 5, 6} {
		b := unhex(t, c[i].Hex)
		if b[0] != '{' || string(b) != c[i].Text {
			t.Fatalf("message %d is not the JSON %s", i, c[i].Text)
		}
		var req struct {
			Type int   `json:"type"`
			Opts *Opts `json:"opts"`
		}
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if req.Type != []int{2, 4, 6}[i-4] {
			t.Errorf("message %d: type %d", i, req.Type)
		}
	}
}

// TestNodeCaptureEncode: our publisher's bytes for io.emit("hello","world")
// are those Node's adapter published (§1a, uid cZrWvl), key order
// rooms, except, flags.
func TestNodeCaptureEncode(t *testing.T) {
	m := Map{{"type", 2}, {"data", []any{"hello", "world"}}, {"nsp", "/"}}
	got, err := Marshal([]any{"cZrWvl", m, OptsMap(socketio.BroadcastOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "93a6635a7257766c83a47479706502a46461746192a568656c6c6fa5776f726c64a36e7370a12f83a5726f6f6d7390a6657863657074"+"90a5666c61677380")
	if !bytes.Equal(got, want) {
		t.Errorf("got %x\nwant %x", got, want)
	}
	got, _ = Marshal(OptsMap(socketio.BroadcastOptions{Flags: socketio.BroadcastFlags{Volatile: true, Timeout: time.Second, Local: true}}))
	want = unhex(t, "83a5726f6f6d7390a665786365707490a5666c61677382a8766f6c6174696c65c3a774696d656f7574cd03e8")
	if !bytes.Equal(got, want) {
		t.Errorf("flags: got %x\nwant %x", got, want)
	}
}

// TestNumbers: notepack's integer forms, integral floats as integers, the
// rest float64; and they decode back.
func TestNumbers(t *testing.T) {
	cases := []struct {
		v    any
		want string
		back any
	}{
		{0, "00", int64(0)},
		{127, "7f", int64(127)},
		{128, "cc80", int64(128)},
		{256, "cd0100", int64(256)},
		{65536, "ce00010000", int64(65536)},
		{int64(1) << 32, "cf0000000100000000", int64(1) << 32},
		{-1, "ff", int64(-1)},
		{-32, "e0", int64(-32)},
		{-33, "d0df", int64(-33)},
		{-129, "d1ff7f", int64(-129)},
		{-32769, "d2ffff7fff", int64(-32769)},
		{int64(math.MinInt64), "d38000000000000000", int64(math.MinInt64)},
		{uint64(math.MaxUint64), "cfffffffffffffffff", float64(math.MaxUint64)},
		{float64(3), "03", int64(3)},
		{float64(-200), "d1ff38", int64(-200)},
		{1.5, "cb3ff8000000000000", 1.5},
		{math.Inf(1), "cb7ff0000000000000", math.Inf(1)},
		{float32(0.5), "cb3fe0000000000000", 0.5},
		{json.Number("12"), "0c", int64(12)},
	}
	for _, c := range cases {
		b, err := Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(b) != c.want {
			t.Errorf("%T %v: %x, want %s", c.v, c.v, b, c.want)
		}
		back, err := Unmarshal(b)
		if err != nil || back != c.back {
			t.Errorf("%s decodes to %#v, %v; want %#v", c.want, back, err, c.back)
		}
	}
}

// TestLengths: the str, bin, array and map headers at their boundaries.
func TestLengths(t *testing.T) {
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		s := string(bytes.Repeat([]byte{'x'}, n))
		for _, v := range []any{s, []byte(s), make([]any, n), bigMap(n)} {
			b, err := Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("%T of %d: %v", v, n, err)
			}
			if reflect.TypeOf(back) != reflect.TypeOf(v) && !(n >= 0 && reflect.TypeOf(v) == reflect.TypeOf("")) {
				t.Errorf("%T of %d came back as %T", v, n, back)
			}
			if reflect.ValueOf(back).Len() != n {
				t.Errorf("%T of %d came back with %d", v, n, reflect.ValueOf(back).Len())
			}
		}
	}
	b, _ := Marshal(string(bytes.Repeat([]byte{'x'}, 40)))
	if b[0] != 0xd9 {
		t.Errorf("str of 40 starts %x, want d9 (notepack uses str8)", b[0])
	}
}

func bigMap(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[strconv.Itoa(i)] = nil
	}
	return m
}

// TestTimestamp: a msgpack timestamp (a JS Date through notepack) decodes to
// Date.toJSON's string, in each of its three sizes; our encoding of a time
// is notepack's.
func TestTimestamp(t *testing.T) {
	cases := []struct {
		t    time.Time
		want string
		hex  string
	}{
		{time.Unix(1764755381, 0), "2025-12-03T09:49:41.000Z", "d6ff693007b5"},
		{time.UnixMilli(1764755381123), "2025-12-03T09:49:41.123Z", "d7ff1d535300693007b5"},
		{time.UnixMilli(-1500), "1969-12-31T23:59:58.500Z", "c70cff1dcd6500fffffffffffffffe"},
	}
	for _, c := range cases {
		b, _ := Marshal(c.t)
		if hex.EncodeToString(b) != c.hex {
			t.Errorf("%v encodes to %x, want %s", c.t, b, c.hex)
		}
		v, err := Unmarshal(b)
		if err != nil || v != c.want {
			t.Errorf("%x decodes to %v, %v; want %s", b, v, err, c.want)
		}
	}
	if got := DateJSON(time.Date(12345, 1, 2, 3, 4, 5, 0, time.UTC)); got != "+012345-01-02T03:04:05.000Z" {
		t.Errorf("DateJSON year 12345 = %s", got)
	}
}

// TestLimits: announced lengths beyond the bytes, depth and item caps,
// unknown extensions and trailing bytes are refused with ErrMalformed.
func TestLimits(t *testing.T) {
	deep := bytes.Repeat([]byte{0x91}, 40)
	deep = append(deep, 0xc0)
	for name, b := range map[string][]byte{
		"array32 of 2^32-1":  {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0},
		"map16 without body": {0xde, 0x00, 0x10},
		"bin32 beyond":       {0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00},
		"str truncated":      {0xa5, 'a'},
		"deep":               deep,
		"ext 5":              {0xd4, 0x05, 0x00},
		"trailing":           {0xc0, 0xc0},
		"reserved c1":        {0xc1},
		"map key array":      {0x81, 0x90, 0xc0},
		"bad nanoseconds":    {0xd7, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		"empty":              {},
	} {
		if _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	d := NewDecoder(bytes.Repeat([]byte{0x93, 0, 0, 0}, 10), Limits{MaxItems: 20})
	for range 10 {
		if _, err := d.Value(); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
	}
	t.Error("30 items decoded under MaxItems 20")
}

// TestInvalidUTF8: bad sequences become U+FFFD, as notepack's decoder does.
func TestInvalidUTF8(t *testing.T) {
	v, err := Unmarshal([]byte{0xa3, 'a', 0xff, 'b'})
	if err != nil || v != "a\uFFFDb" {
		t.Errorf("got %q, %v", v, err)
	}
}

// TestFallbackJSON: a struct is encoded as its JSON form.
func TestFallbackJSON(t *testing.T) {
	b, err := Marshal(struct {
		A int `json:"a"`
	}{7})
	if err != nil || hex.EncodeToString(b) != "81a16107" {
		t.Errorf("got %x, %v", b, err)
	}
	var p *int
	if b, _ := Marshal(p); hex.EncodeToString(b) != "c0" {
		t.Errorf("nil pointer: %x", b)
	}
}

// TestMapsInOrder: after MapsInOrder, maps come back as Map in the order
// of the bytes, nested ones too.
func TestMapsInOrder(t *testing.T) {
	b, err := Marshal(Map{{"b", 1}, {"a", Map{{"z", true}, {"y", nil}}}, {"7", []any{Map{{"q", "x"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(b, Limits{})
	d.MapsInOrder()
	v, err := d.Value()
	want := Map{{"b", int64(1)}, {"a", Map{{"z", true}, {"y", nil}}}, {"7", []any{Map{{"q", "x"}}}}}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Errorf("got %#v, %v; want %#v", v, err, want)
	}
}
