package clusterwire

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzUnmarshal: no input panics or escapes the limits, and whatever
// decodes encodes and decodes again to the same value.
func FuzzUnmarshal(f *testing.F) {
	for _, c := range loadCapture(f) {
		f.Add(unhex(f, c.Hex))
	}
	f.Add([]byte{0xd6, 0xff, 0, 0, 0, 1})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Unmarshal(b)
		if err != nil {
			return
		}
		enc, err := Marshal(v)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", v, err)
		}
		w, err := Unmarshal(enc)
		if err != nil {
			t.Fatalf("re-encoded %x does not decode: %v", enc, err)
		}
		again, _ := Marshal(w)
		if !bytes.Equal(enc, again) {
			t.Fatalf("not stable: %x then %x", enc, again)
		}
	})
}

// FuzzOpts: opts JSON never panics.
func FuzzOpts(f *testing.F) {
	f.Add([]byte(`{"rooms":["room1"],"except":[]}`))
	f.Add([]byte(`{"rooms":[1.5],"flags":{"timeout":1e300}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var o Opts
		if json.Unmarshal(b, &o) == nil {
			_ = o.BroadcastOptions()
		}
	})
}
