// Package web serves sessiongate's demo page, embedded into the binary.
//
// The page is `/`; its files are under `/assets/`. The client library and
// socket.io-client's browser bundle are in static/vendor/, generated from
// client/ by web/build.sh (`make web`) and committed, so a binary from
// `go install` or `go run` serves the whole page with no Node on the machine;
// CI's `make web-check` fails when they differ from a fresh build.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// AssetsPrefix is the URL path under which the page's files are served.
const AssetsPrefix = "/assets/"

// Handler returns the handler of the demo page: GET or HEAD of `/` (and
// `/index.html`) serves the page and `/assets/<file>` its files, with their
// content type, an ETag and `Cache-Control: no-cache`; any other path is 404.
// Mount it at `/` after the API routes. It is safe for concurrent use.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(fmt.Sprintf("web: embedded files: %v", err)) // fixed at compile time
	}
	h, err := newHandler(sub)
	if err != nil {
		panic(fmt.Sprintf("web: embedded files: %v", err))
	}
	return h
}

// file is one served file, read once.
type file struct {
	data        []byte
	contentType string
	etag        string
}

type handler struct {
	files map[string]file // by URL path
}

// newHandler reads every file of fsys, which holds index.html and the assets.
func newHandler(fsys fs.FS) (*handler, error) {
	h := &handler{files: make(map[string]file)}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		f := file{
			data:        data,
			contentType: contentType(name),
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
		}
		if name == "index.html" {
			h.files["/"] = f
			h.files["/index.html"] = f
			return nil
		}
		h.files[AssetsPrefix+name] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk files: %w", err)
	}
	if _, ok := h.files["/"]; !ok {
		return nil, fmt.Errorf("no index.html")
	}
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := h.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("ETag", f.etag)
	// Revalidate every time: the files change with each build, and the ETag
	// makes an unchanged file a 304.
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(f.data))
}

// contentType returns the media type of a served file by its extension.
func contentType(name string) string {
	switch ext := strings.ToLower(path.Ext(name)); ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".map", ".json":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
		return "application/octet-stream"
	}
}
