// Package frontend serves Switchboard's web app: plain ES modules, a stylesheet and an
// HTML shell, embedded in the binary with no build step.
//
// Handler answers GET / with the HTML shell and GET /assets/NAME with the other files of
// the static directory. Embedded files have no modification time, so every file gets a
// strong ETag (a hash of its content) computed once, and is served with
// "Cache-Control: no-cache": browsers revalidate on every load and get a 304 when nothing
// changed. Every response, 404s included, carries a strict Content-Security-Policy: the
// app loads nothing from other origins and runs no inline script or style.
package frontend

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent on every response of Handler.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'"

// indexName is the file served at "/"; the others are served under assetsPrefix.
const (
	indexName    = "index.html"
	assetsPrefix = "/assets/"
)

// asset is one embedded file, ready to serve.
type asset struct {
	body   []byte
	etag   string // strong, quoted: a hash of body
	gz     []byte // gzip of body; nil when it would not save enough to matter
	gzETag string // the gzip representation's own strong ETag
	ctype  string
}

// loadAssets reads and hashes the embedded files once per process.
var loadAssets = sync.OnceValue(func() map[string]*asset {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("frontend: " + err.Error())
	}
	assets := make(map[string]*asset)
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		assets[name] = newAsset(name, body)
		return nil
	})
	if err != nil {
		panic("frontend: reading embedded files: " + err.Error())
	}
	return assets
})

func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	tag := hex.EncodeToString(sum[:12])
	a := &asset{body: body, etag: `"` + tag + `"`, ctype: contentType(name)}
	if len(body) >= 512 && compressible(a.ctype) {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body)*9/10 {
			a.gz = buf.Bytes()
			a.gzETag = `"` + tag + `-gz"`
		}
	}
	return a
}

// contentType names the media type of a file by its extension. The common web types are
// spelled out so that the answer does not depend on the host's mime tables.
func contentType(name string) string {
	switch ext := strings.ToLower(path.Ext(name)); ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".map":
		return "application/json; charset=utf-8"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".woff2":
		return "font/woff2"
	case ".txt":
		return "text/plain; charset=utf-8"
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
		return "application/octet-stream"
	}
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, "image/svg") ||
		strings.HasPrefix(ctype, "application/json")
}

// Handler returns the web app's handler. Mount it at "/" (it expects full request paths):
// it answers "/" and "/assets/…", and 404 for anything else it is given.
func Handler() http.Handler {
	return handler{assets: loadAssets()}
}

type handler struct {
	assets map[string]*asset // read-only after load
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")

	var name string
	switch p := r.URL.Path; {
	case p == "/":
		name = indexName
	case strings.HasPrefix(p, assetsPrefix):
		name = strings.TrimPrefix(p, assetsPrefix)
	}
	a := h.assets[name] // directories are not entries: no listings
	if name == "" || a == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	body, etag := a.body, a.etag
	if a.gz != nil {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			body, etag = a.gz, a.gzETag
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		hdr.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// etagMatches reports whether an If-None-Match header matches etag, using the weak
// comparison RFC 9110 prescribes for If-None-Match.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header admits gzip: an explicit gzip
// entry with q > 0, or else a "*" entry with q > 0.
func acceptsGzip(header string) bool {
	star := false
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		if coding == "gzip" {
			return q > 0
		}
		star = q > 0
	}
	return star
}
