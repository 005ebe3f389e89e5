package load

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

func TestEventName(t *testing.T) {
	tests := []struct {
		msg  string
		name string
		ok   bool
	}{
		{`42["tick",{"bench":true}]`, "tick", true},
		{`42["session_expired",{"reason":"revoked"}]`, "session_expired", true},
		{`4217["ask","x"]`, "ask", true}, // with an ack id
		{`42[]`, "", false},
		{`42[1,2]`, "", false},
		{`42`, "", false},
		{`40{"sid":"x"}`, "", false},
		{`2`, "", false},
		{`42["unterminated`, "", false},
	}
	for _, tt := range tests {
		name, ok := eventName([]byte(tt.msg))
		if name != tt.name || ok != tt.ok {
			t.Errorf("eventName(%s) = %q, %v; want %q, %v", tt.msg, name, ok, tt.name, tt.ok)
		}
	}
}

func TestExpiredReason(t *testing.T) {
	tests := map[string]string{
		`42["session_expired",{"reason":"revoked"}]`:    "revoked",
		`42["session_expired",{"reason":"logged_out"}]`: "logged_out",
		`42["session_expired"]`:                         "?",
		`42["session_expired",{}]`:                      "?",
	}
	for msg, want := range tests {
		if got := expiredReason([]byte(msg)); got != want {
			t.Errorf("expiredReason(%s) = %q, want %q", msg, got, want)
		}
	}
}

func TestCredentialsRoundTrip(t *testing.T) {
	in := []Credential{
		{SID: "abc123", Cookie: "connect.sid=s%3Aabc123.L3URH8qEUlRhbJErOXuJ%2FR5i21GJUY02kERb2c2p5w0"},
		{SID: "x", Cookie: "a=b; connect.sid=s%3Ax.y"},
	}
	var b strings.Builder
	if err := WriteCredentials(&b, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadCredentials(strings.NewReader("# comment\n\n" + b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) || out[0] != in[0] || out[1] != in[1] {
		t.Errorf("read back %+v, want %+v", out, in)
	}
	if _, err := ReadCredentials(strings.NewReader("no tab here\n")); err == nil {
		t.Error("a line without a tab was accepted")
	}
}

func TestDistribution(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := distribution(d)
	want := Dist{Count: 100, Min: 1, P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if *got != want {
		t.Errorf("distribution = %+v, want %+v", *got, want)
	}
	if distribution(nil) != nil {
		t.Error("distribution(nil) is not nil")
	}
}

func TestConfigRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"remote target", Config{Mode: ModeIdle, URL: "http://192.0.2.1:3000", N: 1}, "loopback"},
		{"too many", Config{Mode: ModeIdle, URL: "http://127.0.0.1:3000", N: MaxConnections + 1}, "-n"},
		{"too long", Config{Mode: ModeIdle, URL: "http://127.0.0.1:3000", N: 1, Hold: MaxDuration + 1}, "limited"},
		{"unknown mode", Config{Mode: "flood", URL: "http://127.0.0.1:3000", N: 1}, "unknown mode"},
		{"broadcast without publisher", Config{Mode: ModeBroadcast, URL: "http://127.0.0.1:3000", N: 1}, "exactly one"},
		{"remote publisher", Config{Mode: ModeBroadcast, URL: "http://127.0.0.1:3000", N: 1, PublishURL: "http://192.0.2.1/api/publish", Room: "r"}, "loopback"},
		{"revoke without db", Config{Mode: ModeRevoke, URL: "http://127.0.0.1:3000", N: 1}, "-db"},
		{"revoke with too few sessions", Config{Mode: ModeRevoke, URL: "http://127.0.0.1:3000", N: 2, DatabaseURL: "postgres://127.0.0.1/test", Table: "session",
			Creds: []Credential{{SID: "a", Cookie: "c"}, {SID: "a", Cookie: "c"}}}, "distinct"},
		{"raw broadcast", Config{Mode: ModeBroadcast, Raw: true, URL: "http://127.0.0.1:3000", N: 1, Trigger: "b"}, "raw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.fill()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("fill() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzEventName(f *testing.F) {
	for _, s := range []string{`42["tick",{}]`, `4217["a"]`, `42[`, `42`, `2`, `451-["b",{"_placeholder":true,"num":0}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		name, ok := eventName(msg)
		if !ok && name != "" {
			t.Fatalf("eventName(%q) = %q, false", msg, name)
		}
		expiredReason(append([]byte("42"), msg...))
	})
}

func FuzzReadCredentials(f *testing.F) {
	f.Add("sid\tconnect.sid=s%3Asid.sig\n")
	f.Add("# c\n\n\tx\n")
	f.Add("a\tb\nc")
	f.Fuzz(func(t *testing.T, in string) {
		creds, err := ReadCredentials(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, c := range creds {
			if c.SID == "" || c.Cookie == "" {
				t.Fatalf("empty field in %+v", c)
			}
		}
	})
}

func TestMedianRound(t *testing.T) {
	rounds := []Round{{Last: 30}, {Last: 10}, {Last: 20}, {Last: 40}}
	if got := medianRound(rounds); got.Last != 20 {
		t.Errorf("medianRound = %v, want the lower middle (20)", got.Last)
	}
	if rounds[0].Last != 30 {
		t.Error("medianRound reordered its argument")
	}
}

func TestFanField(t *testing.T) {
	if v, ok := fanField([]byte(`42["fan",{"r":3}]`), "r"); !ok || v != 3 {
		t.Errorf("fanField r = %d, %v; want 3, true", v, ok)
	}
	if v, ok := fanField([]byte(`42["one",{"t":1764750000123456789}]`), "t"); !ok || v != 1764750000123456789 {
		t.Errorf("fanField t = %d, %v", v, ok)
	}
	for _, msg := range []string{`42["fan"]`, `42["fan",{"x":1}]`, `42["fan","r"]`, `2`} {
		if _, ok := fanField([]byte(msg), "r"); ok {
			t.Errorf("fanField(%s) found r", msg)
		}
	}
}

func TestRedisInfo(t *testing.T) {
	reply := "$63\r\n# Stats\r\ntotal_net_input_bytes:12\r\ntotal_net_output_bytes:345\r\n\r\n"
	info, err := readBulk(bufio.NewReader(strings.NewReader(reply)))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := infoField(info, "total_net_output_bytes"); err != nil || v != 345 {
		t.Errorf("total_net_output_bytes = %d, %v; want 345", v, err)
	}
	if _, err := infoField(info, "missing"); err == nil {
		t.Error("a missing field was found")
	}
	if _, err := readBulk(bufio.NewReader(strings.NewReader("-ERR no\r\n"))); err == nil {
		t.Error("an error reply was read as a bulk string")
	}
}

func TestFanFieldSlowPath(t *testing.T) {
	// Not the servers' compact form: decoded as JSON.
	if v, ok := fanField([]byte(`42["fan", { "r" : 4 }]`), "r"); !ok || v != 4 {
		t.Errorf("fanField = %d, %v; want 4, true", v, ok)
	}
	if _, ok := fanField([]byte(`42["fan",{"r":12345678901234567890}]`), "r"); ok {
		t.Error("an out-of-range value was read")
	}
}

func TestAckErrorCode(t *testing.T) {
	tests := map[string]string{
		`[{"ok":true}]`: "",
		`[{"ok":true,"presence":{"users":["1"],"count":1,"connections":1}}]`: "",
		`[{"ok":false,"error":{"code":"FORBIDDEN","message":"no"}}]`:         "FORBIDDEN",
		`[{"error":{"code":"UNAVAILABLE","message":"x","temporary":true}}]`:  "UNAVAILABLE",
		`[{"ok":false}]`: "not ok",
		`[{"ok":true,"event":"bench:act","echo":{"n":1}}]`: "",
	}
	for args, want := range tests {
		if got := ackErrorCode([]byte(args)); got != want {
			t.Errorf("ackErrorCode(%s) = %q, want %q", args, got, want)
		}
	}
}

func TestUserKey(t *testing.T) {
	for raw, want := range map[string]string{`"7"`: "7", `7`: "7", `"alice"`: "alice"} {
		if got := userKey([]byte(raw)); got != want {
			t.Errorf("userKey(%s) = %q, want %q", raw, got, want)
		}
	}
}
