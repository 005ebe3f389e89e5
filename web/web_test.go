package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestHandlerEmbedded(t *testing.T) {
	h := Handler()
	tests := []struct {
		method, path string
		status       int
		contentType  string
		contains     string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `id="expired-banner"`},
		{"GET", "/index.html", 200, "text/html; charset=utf-8", `<script type="importmap">`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/assets/app.js", 200, "text/javascript; charset=utf-8", "import('@sessiongate/client')"},
		{"GET", "/assets/style.css", 200, "text/css; charset=utf-8", ".banner"},
		{"GET", "/assets/vendor/no-such-file.js", 404, "", ""},
		{"GET", "/assets/", 404, "", ""},
		{"GET", "/assets/vendor/", 404, "", ""},
		{"GET", "/app.js", 404, "", ""},
		{"GET", "/static/index.html", 404, "", ""},
		{"GET", "/assets/../web.go", 404, "", ""},
		{"POST", "/", 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := get(t, h, tt.method, tt.path, nil)
			b := body(t, res)
			if res.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.status)
			}
			if tt.status != 200 {
				return
			}
			if got := res.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q, want no-cache", got)
			}
			if tt.method == "HEAD" && b != "" {
				t.Errorf("HEAD body = %d bytes, want none", len(b))
			}
			if !strings.Contains(b, tt.contains) {
				t.Errorf("body does not contain %q", tt.contains)
			}
		})
	}
}

func TestHandlerRevalidation(t *testing.T) {
	h := Handler()
	res := get(t, h, "GET", "/", nil)
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	res = get(t, h, "GET", "/", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: status = %d, want 304", res.StatusCode)
	}
	res = get(t, h, "GET", "/", http.Header{"If-None-Match": {`"other"`}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("stale If-None-Match: status = %d, want 200", res.StatusCode)
	}
}

// newHandler serves what its file system holds: without vendor files the
// page still loads and their URLs are 404.
func TestHandlerWithoutVendor(t *testing.T) {
	fsys := fstest.MapFS{
		"index.html": {Data: []byte("<!doctype html><title>t</title>")},
		"app.js":     {Data: []byte("import('@sessiongate/client')")},
	}
	h, err := newHandler(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if res := get(t, h, "GET", "/", nil); res.StatusCode != 200 {
		t.Errorf("GET / = %d, want 200", res.StatusCode)
	}
	for _, p := range []string{"/assets/vendor/socket.io-client.esm.min.js", "/assets/vendor/sessiongate-client/index.js"} {
		if res := get(t, h, "GET", p, nil); res.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", p, res.StatusCode)
		}
	}

	fsys["vendor/sessiongate-client/index.js"] = &fstest.MapFile{Data: []byte("export {}")}
	fsys["vendor/socket.io.esm.min.js.map"] = &fstest.MapFile{Data: []byte("{}")}
	h, err = newHandler(fsys)
	if err != nil {
		t.Fatal(err)
	}
	for p, ct := range map[string]string{
		"/assets/vendor/sessiongate-client/index.js": "text/javascript; charset=utf-8",
		"/assets/vendor/socket.io.esm.min.js.map":    "application/json",
	} {
		res := get(t, h, "GET", p, nil)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != ct {
			t.Errorf("GET %s = %d %q, want 200 %q", p, res.StatusCode, res.Header.Get("Content-Type"), ct)
		}
	}
}

func TestNewHandlerNeedsIndex(t *testing.T) {
	if _, err := newHandler(fstest.MapFS{"app.js": {Data: []byte("x")}}); err == nil {
		t.Fatal("newHandler without index.html: no error")
	}
}

// The client files are committed: the page never asks for a build step.
func TestAppAsksForNoBuild(t *testing.T) {
	b := body(t, get(t, Handler(), "GET", "/assets/app.js", nil))
	if strings.Contains(b, "build.sh") {
		t.Error("app.js tells the user to run web/build.sh; the vendor files are committed")
	}
}

// Every import-map target is served from the committed vendor files, and so
// is every module the client's modules import.
func TestImportMapTargets(t *testing.T) {
	h := Handler()
	page := body(t, get(t, h, "GET", "/", nil))
	m := regexp.MustCompile(`(?s)<script type="importmap">(.*?)</script>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no import map in index.html")
	}
	var im struct {
		Imports map[string]string `json:"imports"`
	}
	if err := json.Unmarshal([]byte(m[1]), &im); err != nil {
		t.Fatalf("import map: %v", err)
	}
	for _, spec := range []string{"@sessiongate/client", "socket.io-client"} {
		if im.Imports[spec] == "" {
			t.Errorf("import map lacks %q", spec)
		}
	}
	for spec, target := range im.Imports {
		if res := get(t, h, "GET", target, nil); res.StatusCode != 200 {
			t.Errorf("%s → %s: status %d, want 200 (generate web/static/vendor with `make web` and commit it)", spec, target, res.StatusCode)
		}
	}

	relImport := regexp.MustCompile(`from '(\./[^']+)'`)
	seen := map[string]bool{}
	queue := []string{im.Imports["@sessiongate/client"]}
	for len(queue) > 0 {
		target := queue[0]
		queue = queue[1:]
		if seen[target] {
			continue
		}
		seen[target] = true
		res := get(t, h, "GET", target, nil)
		if res.StatusCode != 200 {
			t.Errorf("%s: status %d, want 200", target, res.StatusCode)
			continue
		}
		for _, m := range relImport.FindAllStringSubmatch(body(t, res), -1) {
			queue = append(queue, path.Join(path.Dir(target), m[1]))
		}
	}
	if len(seen) < 2 {
		t.Errorf("the client's modules import no others (%v): is the build complete?", seen)
	}
}
