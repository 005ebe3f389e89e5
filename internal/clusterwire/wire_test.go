package clusterwire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
)

// TestOptsJSON: the request form of opts, read in any key order, numeric
// rooms in decimal, flags only when set.
func TestOptsJSON(t *testing.T) {
	b, _ := json.Marshal(OptsJSON(socketio.BroadcastOptions{Rooms: []string{"a"}}))
	if string(b) != `{"rooms":["a"],"except":[]}` {
		t.Errorf("got %s", b)
	}
	b, _ = json.Marshal(OptsJSON(socketio.BroadcastOptions{Flags: socketio.BroadcastFlags{Timeout: 2 * time.Second, Local: true}}))
	if string(b) != `{"rooms":[],"except":[],"flags":{"timeout":2000}}` {
		t.Errorf("got %s", b)
	}
	var o Opts
	if err := json.Unmarshal([]byte(`{"except":["x"],"flags":{"volatile":true,"compress":false},"rooms":[7,"r"]}`), &o); err != nil {
		t.Fatal(err)
	}
	want := socketio.BroadcastOptions{Rooms: []string{"7", "r"}, Except: []string{"x"}, Flags: socketio.BroadcastFlags{Volatile: true}}
	if got := o.BroadcastOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v", got)
	}
	if err := json.Unmarshal([]byte(`{"rooms":{}}`), &o); err == nil {
		t.Error("rooms as an object accepted")
	}
}

// TestRemoteSocket: Node's shape, headers and auth always empty, query
// arrays reduced to their first element.
func TestRemoteSocket(t *testing.T) {
	s := socketio.SocketInfo{
		ID: "sid", Rooms: []string{"sid", "user:1"}, Data: map[string]any{"userId": "1"},
		Handshake: socketio.SocketHandshake{Time: "Thu Dec 03 2026", Issued: 5, Address: "1.2.3.4", Secure: true, URL: "/socket.io/?EIO=4", Query: map[string]string{"EIO": "4"}},
	}
	b, err := json.Marshal(NewRemoteSocket(s))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"sid","handshake":{"headers":{},"time":"Thu Dec 03 2026","address":"1.2.3.4","xdomain":false,"secure":true,"issued":5,"url":"/socket.io/?EIO=4","query":{"EIO":"4"},"auth":{}},"rooms":["sid","user:1"],"data":{"userId":"1"}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var r RemoteSocket
	node := strings.Replace(want, `"headers":{}`, `"headers":{"cookie":"connect.sid=x"}`, 1)
	node = strings.Replace(node, `{"EIO":"4"}`, `{"EIO":"4","t":["a","b"]}`, 1)
	if err := json.Unmarshal([]byte(node), &r); err != nil {
		t.Fatal(err)
	}
	got := r.SocketInfo()
	s.Handshake.Query["t"] = "a"
	if !reflect.DeepEqual(got, s) {
		t.Errorf("got %#v\nwant %#v", got, s)
	}
}

// TestPacketFromValue: a missing nsp is "/"; a non-event packet and a data
// array without an event name are refused.
func TestPacketFromValue(t *testing.T) {
	m, nsp, err := PacketFromValue(map[string]any{"data": []any{"e", int64(1)}, "type": int64(2)})
	if err != nil || nsp != "/" || m.Event != "e" || !reflect.DeepEqual(m.Args, []any{int64(1)}) {
		t.Errorf("got %v %q %v", m, nsp, err)
	}
	for _, v := range []any{nil, map[string]any{"type": int64(3), "data": []any{"e"}}, map[string]any{"data": []any{}}, map[string]any{"data": []any{int64(1)}}} {
		if _, _, err := PacketFromValue(v); err == nil {
			t.Errorf("%#v accepted", v)
		}
	}
}
