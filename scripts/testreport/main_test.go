package main

import (
	"strings"
	"testing"
)

// Events as `go test -json` writes them (Time and Elapsed left out).
const events = `{"Action":"start","Package":"p/a"}
{"Action":"run","Package":"p/a","Test":"TestOK"}
{"Action":"output","Package":"p/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"p/a","Test":"TestOK","Output":"    a_test.go:5: quiet\n"}
{"Action":"output","Package":"p/a","Test":"TestOK","Output":"--- PASS: TestOK (0.00s)\n"}
{"Action":"pass","Package":"p/a","Test":"TestOK"}
{"Action":"run","Package":"p/a","Test":"TestNode"}
{"Action":"output","Package":"p/a","Test":"TestNode","Output":"=== RUN   TestNode\n"}
{"Action":"output","Package":"p/a","Test":"TestNode","Output":"    a_test.go:6: -short: needs Node (x)\n"}
{"Action":"output","Package":"p/a","Test":"TestNode","Output":"--- SKIP: TestNode (0.00s)\n"}
{"Action":"skip","Package":"p/a","Test":"TestNode"}
{"Action":"output","Package":"p/a","Output":"PASS\n"}
{"Action":"output","Package":"p/a","Output":"ok  \tp/a\t0.01s\n"}
{"Action":"pass","Package":"p/a"}
{"Action":"start","Package":"p/b"}
{"Action":"run","Package":"p/b","Test":"TestFail"}
{"Action":"output","Package":"p/b","Test":"TestFail","Output":"=== RUN   TestFail\n"}
{"Action":"output","Package":"p/b","Test":"TestFail","Output":"    b_test.go:6: boom\n"}
{"Action":"output","Package":"p/b","Test":"TestFail","Output":"--- FAIL: TestFail (0.00s)\n"}
{"Action":"fail","Package":"p/b","Test":"TestFail"}
{"Action":"run","Package":"p/b","Test":"TestHangs"}
{"Action":"output","Package":"p/b","Test":"TestHangs","Output":"    b_test.go:9: waiting\n"}
{"Action":"output","Package":"p/b","Output":"panic: test timed out\n"}
{"Action":"output","Package":"p/b","Output":"FAIL\tp/b\t600s\n"}
{"Action":"fail","Package":"p/b"}
`

func TestReport(t *testing.T) {
	var out strings.Builder
	failed, err := report(strings.NewReader(events), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("failed = false, want true")
	}
	got := out.String()
	for _, want := range []string{
		"ok  \tp/a\t0.01s\n",
		"b_test.go:6: boom",
		"b_test.go:9: waiting\npanic: test timed out\nFAIL\tp/b",
		"testreport: 1 tests skipped:\n  p/a TestNode: a_test.go:6: -short: needs Node (x)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quiet") {
		t.Errorf("report shows a passing test's log; got:\n%s", got)
	}
}

func TestReportNoSkip(t *testing.T) {
	var out strings.Builder
	failed, err := report(strings.NewReader(`{"Action":"pass","Package":"p/a","Test":"TestOK"}
{"Action":"pass","Package":"p/a"}
`), &out)
	if err != nil || failed {
		t.Fatalf("report = %v, %v; want false, nil", failed, err)
	}
	if !strings.Contains(out.String(), "testreport: no test skipped") {
		t.Errorf("got %q", out.String())
	}
}
