package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sessiongate/sessiongate/httpapi"
)

// roomCall is one call to a fakeRooms.
type roomCall struct {
	Op     httpapi.RoomOp
	To     []string
	Except []string
	Rooms  []string
	Close  bool
}

// fakeRooms records the room operations it is asked for.
type fakeRooms struct {
	mu    sync.Mutex
	calls []roomCall
	err   error
}

func (f *fakeRooms) record(c roomCall) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.err
}

func (f *fakeRooms) JoinRooms(_ context.Context, t httpapi.Target, rooms []string) error {
	return f.record(roomCall{Op: httpapi.RoomJoin, To: t.To, Except: t.Except, Rooms: rooms})
}

func (f *fakeRooms) LeaveRooms(_ context.Context, t httpapi.Target, rooms []string) error {
	return f.record(roomCall{Op: httpapi.RoomLeave, To: t.To, Except: t.Except, Rooms: rooms})
}

func (f *fakeRooms) DisconnectSockets(_ context.Context, t httpapi.Target, close bool) error {
	return f.record(roomCall{Op: httpapi.RoomDisconnect, To: t.To, Except: t.Except, Close: close})
}

func (f *fakeRooms) all() []roomCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func sameCall(a, b roomCall) bool {
	return a.Op == b.Op && slices.Equal(a.To, b.To) && slices.Equal(a.Except, b.Except) &&
		slices.Equal(a.Rooms, b.Rooms) && a.Close == b.Close
}

// TestRoomOps: the room operations take the publish key, validate their
// body as /api/publish does (plus their own fields; unknown fields and user
// rooms as targets of a join or leave are refused) and call the
// RoomOperator once with what the body says.
func TestRoomOps(t *testing.T) {
	const key = "publish-key-123"
	auth := http.Header{"Authorization": {"Bearer " + key}}
	big := `{"to":["a"],"rooms":["` + strings.Repeat("x", httpapi.MaxPublishBody) + `"]}`
	tests := []struct {
		name       string
		path       string
		header     http.Header
		body       string
		wantStatus int
		wantError  string
		want       *roomCall
	}{
		{"join", "/api/rooms/join", auth, `{"to":["user:42"],"rooms":["incident:7","oncall"]}`, 200, "",
			&roomCall{Op: httpapi.RoomJoin, To: []string{"user:42"}, Rooms: []string{"incident:7", "oncall"}}},
		{"join with except", "/api/rooms/join", auth, `{"to":["team:a"],"except":["user:7"],"rooms":["incident:7"]}`, 200, "",
			&roomCall{Op: httpapi.RoomJoin, To: []string{"team:a"}, Except: []string{"user:7"}, Rooms: []string{"incident:7"}}},
		{"leave", "/api/rooms/leave", auth, `{"to":["user:42"],"rooms":["incident:7"]}`, 200, "",
			&roomCall{Op: httpapi.RoomLeave, To: []string{"user:42"}, Rooms: []string{"incident:7"}}},
		{"disconnect", "/api/disconnect", auth, `{"to":["user:42"]}`, 200, "",
			&roomCall{Op: httpapi.RoomDisconnect, To: []string{"user:42"}}},
		{"disconnect close", "/api/disconnect", auth, `{"to":["incident:7"],"except":["user:1"],"close":true}`, 200, "",
			&roomCall{Op: httpapi.RoomDisconnect, To: []string{"incident:7"}, Except: []string{"user:1"}, Close: true}},
		{"no key", "/api/rooms/join", nil, `{"to":["a"],"rooms":["b"]}`, 401, "publish key", nil},
		{"wrong key", "/api/disconnect", http.Header{"Authorization": {"Bearer nope"}}, `{"to":["a"]}`, 401, "publish key", nil},
		{"not JSON", "/api/rooms/join", auth, `{"to":`, 400, "not a JSON object", nil},
		{"array body", "/api/rooms/leave", auth, `[]`, 400, "not a JSON object", nil},
		{"null body", "/api/disconnect", auth, `null`, 400, "not a JSON object", nil},
		{"missing to", "/api/rooms/join", auth, `{"rooms":["b"]}`, 400, `"to" is required`, nil},
		{"empty to", "/api/disconnect", auth, `{"to":[]}`, 400, "at least one room", nil},
		{"missing rooms", "/api/rooms/join", auth, `{"to":["a"]}`, 400, `"rooms" is required`, nil},
		{"empty rooms", "/api/rooms/leave", auth, `{"to":["a"],"rooms":[]}`, 400, `"rooms" must name at least one room`, nil},
		{"join a user room", "/api/rooms/join", auth, `{"to":["team:a"],"rooms":["user:42"]}`, 400, "reserved", nil},
		{"leave a user room", "/api/rooms/leave", auth, `{"to":["user:42"],"rooms":["user:42"]}`, 400, "reserved", nil},
		{"non-string room", "/api/rooms/join", auth, `{"to":["a"],"rooms":["b",1]}`, 400, `"rooms"[1] must be a string`, nil},
		{"typo of except", "/api/disconnect", auth, `{"to":["a"],"exept":["b"]}`, 400, `unknown field "exept"`, nil},
		{"rooms on disconnect", "/api/disconnect", auth, `{"to":["a"],"rooms":["b"]}`, 400, `unknown field "rooms"`, nil},
		{"close on join", "/api/rooms/join", auth, `{"to":["a"],"rooms":["b"],"close":true}`, 400, `unknown field "close"`, nil},
		{"close not bool", "/api/disconnect", auth, `{"to":["a"],"close":"yes"}`, 400, `"close" must be true or false`, nil},
		{"too many rooms", "/api/rooms/join", auth, `{"to":["a"],"rooms":[` + strings.Repeat(`"r",`, httpapi.MaxRooms) + `"r"]}`, 400, "more than 10000", nil},
		{"too large", "/api/rooms/join", auth, big, 413, "larger than", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rooms := &fakeRooms{}
			h := newHandler(t, httpapi.Config{Publisher: &fakePublisher{}, Rooms: rooms, PublishKey: key})
			res, body := do(t, h, "POST", tt.path, tt.body, tt.header)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", res.StatusCode, tt.wantStatus, body)
			}
			calls := rooms.all()
			if tt.wantStatus == 200 {
				if body != "{\"ok\":true}\n" {
					t.Errorf("body = %q", body)
				}
				if len(calls) != 1 || !sameCall(calls[0], *tt.want) {
					t.Fatalf("calls %+v, want one %+v", calls, *tt.want)
				}
				return
			}
			if len(calls) != 0 {
				t.Errorf("operator called %+v on a refused request", calls)
			}
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tt.wantError) {
				t.Errorf("body %q, want an error containing %q", body, tt.wantError)
			}
		})
	}
}

// TestRoomOpsDisabled: without a publish key, or without a RoomOperator,
// the room operations are JSON 404s; other methods are 405.
func TestRoomOpsDisabled(t *testing.T) {
	for _, cfg := range []httpapi.Config{
		{Publisher: &fakePublisher{}, Rooms: &fakeRooms{}},
		{Publisher: &fakePublisher{}, PublishKey: "k"},
	} {
		h := newHandler(t, cfg)
		for _, p := range []string{"/api/rooms/join", "/api/rooms/leave", "/api/disconnect"} {
			res, body := do(t, h, "POST", p, `{"to":["a"]}`, http.Header{"Authorization": {"Bearer k"}})
			if res.StatusCode != 404 || !strings.Contains(body, `"error"`) {
				t.Errorf("%s = %d %q, want JSON 404", p, res.StatusCode, body)
			}
		}
	}
	h := newHandler(t, httpapi.Config{Publisher: &fakePublisher{}, Rooms: &fakeRooms{}, PublishKey: "k"})
	if res, _ := do(t, h, "GET", "/api/rooms/join", "", nil); res.StatusCode != 405 {
		t.Errorf("GET = %d, want 405", res.StatusCode)
	}
}

// TestRoomOpsError: an operator failure is a 500 without its text, counted.
func TestRoomOpsError(t *testing.T) {
	rooms := &fakeRooms{err: io.ErrClosedPipe}
	h := newHandler(t, httpapi.Config{Publisher: &fakePublisher{}, Rooms: rooms, PublishKey: "k"})
	auth := http.Header{"Authorization": {"Bearer k"}}
	res, body := do(t, h, "POST", "/api/disconnect", `{"to":["a"]}`, auth)
	if res.StatusCode != 500 || strings.Contains(body, "pipe") {
		t.Errorf("status %d body %q, want 500 without internals", res.StatusCode, body)
	}
	do(t, h, "POST", "/api/rooms/join", `{"to":["a"]}`, auth)
	do(t, h, "POST", "/api/rooms/join", `{"to":["a"]}`, nil)
	want := map[string]uint64{httpapi.PublishOK: 0, httpapi.PublishBadRequest: 1, httpapi.PublishUnauthorized: 1, httpapi.PublishError: 1}
	if got := h.Stats().RoomOps; !maps.Equal(got, want) {
		t.Errorf("Stats().RoomOps = %v, want %v", got, want)
	}
}

func FuzzParseRoomRequest(f *testing.F) {
	for _, s := range []string{
		`{"to":["user:42"],"rooms":["incident:7"]}`,
		`{"to":["a"],"except":["b"],"rooms":["c"]}`,
		`{"to":["a"],"close":true}`,
		`{"to":["a"],"rooms":["user:1"]}`,
		`{"to":[],"rooms":[1]}`,
		`{"to":["\ud800"],"x":1}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, op := range []httpapi.RoomOp{httpapi.RoomJoin, httpapi.RoomLeave, httpapi.RoomDisconnect} {
			req, err := httpapi.ParseRoomRequest(op, body)
			if err != nil {
				if req != nil {
					t.Fatal("request and error both returned")
				}
				continue
			}
			if len(req.To) == 0 || len(req.To) > httpapi.MaxRooms {
				t.Fatalf("%s accepted target %q", op, req.To)
			}
			for _, list := range [][]string{req.To, req.Except, req.Rooms} {
				for _, r := range list {
					if r == "" || len(r) > httpapi.MaxRoomName {
						t.Fatalf("%s accepted room %q", op, r)
					}
				}
			}
			if op != httpapi.RoomDisconnect {
				if len(req.Rooms) == 0 {
					t.Fatalf("%s accepted no rooms", op)
				}
				for _, r := range req.Rooms {
					if strings.HasPrefix(r, "user:") {
						t.Fatalf("%s accepted user room %q", op, r)
					}
				}
			}
		}
	})
}
