package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestDecodePacket(t *testing.T) {
	tests := []struct {
		in   string
		want Packet
	}{
		{"0", Packet{Type: PacketConnect, Namespace: "/"}},
		{`0{"token":"123"}`, Packet{Type: PacketConnect, Namespace: "/", Data: json.RawMessage(`{"token":"123"}`)}},
		{"0/custom,", Packet{Type: PacketConnect, Namespace: "/custom"}},
		{"0/custom", Packet{Type: PacketConnect, Namespace: "/custom"}},
		{`0/admin,{"a":1}`, Packet{Type: PacketConnect, Namespace: "/admin", Data: json.RawMessage(`{"a":1}`)}},
		{"1", Packet{Type: PacketDisconnect, Namespace: "/"}},
		{"1/admin,", Packet{Type: PacketDisconnect, Namespace: "/admin"}},
		{`2["hello",1]`, Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`["hello",1]`)}},
		{`2[42]`, Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`[42]`)}},
		{`2/admin,456["project:delete",123]`, Packet{Type: PacketEvent, Namespace: "/admin", ID: 456, HasID: true, Data: json.RawMessage(`["project:delete",123]`)}},
		{`3/admin,456[]`, Packet{Type: PacketAck, Namespace: "/admin", ID: 456, HasID: true, Data: json.RawMessage(`[]`)}},
		{`4{"message":"Not authorized"}`, Packet{Type: PacketConnectError, Namespace: "/", Data: json.RawMessage(`{"message":"Not authorized"}`)}},
		{`4"bad"`, Packet{Type: PacketConnectError, Namespace: "/", Data: json.RawMessage(`"bad"`)}},
		{`51-["hello",{"_placeholder":true,"num":0}]`, Packet{Type: PacketBinaryEvent, Namespace: "/", Attachments: 1, Data: json.RawMessage(`["hello",{"_placeholder":true,"num":0}]`)}},
		{`61-/admin,456[{"_placeholder":true,"num":0}]`, Packet{Type: PacketBinaryAck, Namespace: "/admin", ID: 456, HasID: true, Attachments: 1, Data: json.RawMessage(`[{"_placeholder":true,"num":0}]`)}},
		{`20["a"]`, Packet{Type: PacketEvent, Namespace: "/", ID: 0, HasID: true, Data: json.RawMessage(`["a"]`)}},
		{`29007199254740991["a"]`, Packet{Type: PacketEvent, Namespace: "/", ID: MaxAckID, HasID: true, Data: json.RawMessage(`["a"]`)}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := DecodePacket([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodePacket: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got %+v, want %+v", *got, tt.want)
			}
			if enc := got.Encode(); string(enc) != tt.in && !(tt.in == "0/custom" && string(enc) == "0/custom,") {
				t.Errorf("Encode = %q, want %q", enc, tt.in)
			}
		})
	}
}

func TestDecodePacketInvalid(t *testing.T) {
	for _, in := range []string{
		"", "7", "a", "abc", "2{}", `42abc["message-with-ack",1]`, "2", "3", "3[]",
		`2"hello"`, `2[]`, `2[true]`, `2["connect"]`, `2["disconnect",1]`, `2["newListener"]`,
		`0[]`, `0"x"`, `1{}`, `4[]`, `4 1`, `5["a"]`, `5-["a"]`, `5x-["a"]`, `51000000-["a"]`,
		`51001-["a"]`, `511-["a"]`, `50-["a"]`, `60-1[]`, `500-["a"]`, `5-1-["a"]`, `2["a"`, `2123456789012345678["a"]`, `29007199254740992["a"]`,
		`0{"a":1}x`, `2/nsp,["a",]`,
	} {
		t.Run(in, func(t *testing.T) {
			p, err := DecodePacket([]byte(in))
			if err == nil {
				t.Fatalf("DecodePacket(%q) = %+v, want error", in, p)
			}
			if !errors.Is(err, ErrInvalidPacket) {
				t.Errorf("error %v does not wrap ErrInvalidPacket", err)
			}
		})
	}
}

func TestEncodeArgsBinary(t *testing.T) {
	type inner struct {
		Blob  []byte `json:"blob"`
		Skip  []byte `json:"-"`
		Empty []byte `json:"empty,omitempty"`
		Name  string
	}
	type outer struct {
		inner
		List []inner           `json:"list"`
		Map  map[string][]byte `json:"map"`
		Ptr  *inner            `json:"ptr,omitempty"`
		Raw  json.RawMessage   `json:"raw"`
		Arr  [2]byte           `json:"arr"`
	}
	tests := []struct {
		name string
		args []any
		json string
		bins [][]byte
	}{
		{"plain", []any{1, "2", map[string]any{"3": []any{true}}}, `["ev",1,"2",{"3":[true]}]`, nil},
		{"top", []any{[]byte{1}, []byte{2}}, `["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, [][]byte{{1}, {2}}},
		{"nested", []any{map[string]any{"a": []any{1, map[string]any{"b": []byte("x")}}}}, `["ev",{"a":[1,{"b":{"_placeholder":true,"num":0}}]}]`, [][]byte{[]byte("x")}},
		{"struct", []any{outer{
			inner: inner{Blob: []byte{1}, Skip: []byte{9}, Name: "n"},
			List:  []inner{{Blob: []byte{2}}},
			Map:   map[string][]byte{"k": {3}},
			Raw:   json.RawMessage(`{"r":1}`),
			Arr:   [2]byte{7, 8},
		}}, `["ev",{"blob":{"_placeholder":true,"num":0},"Name":"n","list":[{"blob":{"_placeholder":true,"num":1},"Name":""}],"map":{"k":{"_placeholder":true,"num":2}},"raw":{"r":1},"arr":[7,8]}]`, [][]byte{{1}, {2}, {3}}},
		{"pointer", []any{&inner{Blob: []byte{5}}}, `["ev",{"blob":{"_placeholder":true,"num":0},"Name":""}]`, [][]byte{{5}}},
		{"nil", []any{nil, []any(nil), map[string]any(nil)}, `["ev",null,null,null]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, bins, err := encodeArgs("ev", tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != tt.json {
				t.Errorf("json = %s\nwant   %s", data, tt.json)
			}
			if !reflect.DeepEqual(bins, tt.bins) {
				t.Errorf("bins = %v, want %v", bins, tt.bins)
			}
			if !json.Valid(data) {
				t.Errorf("invalid JSON %s", data)
			}
		})
	}
}

func TestDecodeArgs(t *testing.T) {
	bins := [][]byte{{1, 2}, {3}}
	args, err := decodeArgs(json.RawMessage(`["ev",{"a":[{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":0},{"_placeholder":false,"num":0}]`), bins)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"ev", map[string]any{"a": []any{[]byte{3}}}, []byte{1, 2}, map[string]any{"_placeholder": false, "num": 0.0}}
	if !reflect.DeepEqual(args, want) {
		t.Fatalf("got %#v, want %#v", args, want)
	}
	for _, bad := range []string{
		`[{"_placeholder":true,"num":2}]`, `[{"_placeholder":true,"num":-1}]`,
		`[{"_placeholder":true,"num":0.5}]`, `[{"_placeholder":true}]`, `[{"_placeholder":true,"num":"0"}]`,
	} {
		if _, err := decodeArgs(json.RawMessage(bad), bins); err == nil {
			t.Errorf("decodeArgs(%s) succeeded", bad)
		}
	}
}

func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{
		"0", `0{"token":"123"}`, "0/custom,", "1/admin,", `2["hello",1]`, `2/admin,456["a",123]`,
		`3/admin,456[]`, `4{"message":"x"}`, `51-["hello",{"_placeholder":true,"num":0}]`,
		`61-/admin,456[{"_placeholder":true,"num":0}]`, "abc", "2{}", `29007199254740991["a"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePacket(b)
		if err != nil {
			return
		}
		binary := p.Type == PacketBinaryEvent || p.Type == PacketBinaryAck
		if p.Attachments > MaxAttachments || p.ID > MaxAckID || binary != (p.Attachments > 0) {
			t.Fatalf("limits not enforced: %+v", p)
		}
		q, err := DecodePacket(p.Encode())
		if err != nil {
			t.Fatalf("re-decode of %q (%q): %v", b, p.Encode(), err)
		}
		if q.Type != p.Type || q.Namespace != p.Namespace || q.ID != p.ID || q.HasID != p.HasID ||
			q.Attachments != p.Attachments || !bytes.Equal(q.Data, p.Data) {
			t.Fatalf("round trip: %+v != %+v", q, p)
		}
	})
}

func FuzzReconstruct(f *testing.F) {
	f.Add([]byte(`["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`), uint8(2))
	f.Add([]byte(`["ev",{"a":[1,{"b":{"_placeholder":true,"num":0}}]}]`), uint8(1))
	f.Add([]byte(`[{"_placeholder":true,"num":3}]`), uint8(1))
	f.Add([]byte(`[{"_placeholder":true,"num":1e300}]`), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		bins := make([][]byte, n)
		for i := range bins {
			bins[i] = []byte{byte(i)}
		}
		args, err := decodeArgs(data, bins)
		if err != nil {
			return
		}
		out, outBins, err := encodeArgs(nil, args)
		if err != nil {
			t.Fatalf("encodeArgs: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %s", out)
		}
		// Every attachment put back travels again as one.
		for _, b := range outBins {
			if len(b) != 1 || int(b[0]) >= int(n) {
				t.Fatalf("unexpected attachment %v", b)
			}
		}
	})
}
