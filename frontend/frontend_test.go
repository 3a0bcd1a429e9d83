package frontend

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func TestHandler(t *testing.T) {
	index := loadAssets()["index.html"]
	appJS := loadAssets()["app.js"]
	if index == nil || appJS == nil {
		t.Fatal("index.html or app.js is not embedded")
	}
	tests := []struct {
		name       string
		method     string
		target     string
		hdr        map[string]string
		wantStatus int
		wantType   string // prefix; "" skips the check
		wantBody   string // substring; "" skips the check
		wantETag   string // "" skips the check
	}{
		{"index", "GET", "/", nil, 200, "text/html; charset=utf-8", `<form id="login-form"`, index.etag},
		{"index HEAD", "HEAD", "/", nil, 200, "text/html", "", index.etag},
		{"javascript", "GET", "/assets/app.js", nil, 200, "text/javascript", "import", appJS.etag},
		{"module", "GET", "/assets/live.js", nil, 200, "text/javascript", "WebSocket", ""},
		{"css", "GET", "/assets/app.css", nil, 200, "text/css; charset=utf-8", "--primary", ""},
		{"svg", "GET", "/assets/favicon.svg", nil, 200, "image/svg+xml", "<svg", ""},
		{"etag match", "GET", "/", map[string]string{"If-None-Match": index.etag}, 304, "", "", index.etag},
		{"etag in list", "GET", "/assets/app.js", map[string]string{"If-None-Match": `"nope", W/` + appJS.etag}, 304, "", "", appJS.etag},
		{"etag star", "GET", "/assets/app.js", map[string]string{"If-None-Match": "*"}, 304, "", "", ""},
		{"etag stale", "GET", "/", map[string]string{"If-None-Match": `"stale"`}, 200, "text/html", "<!doctype html>", index.etag},
		{"unknown asset", "GET", "/assets/nope.js", nil, 404, "", "", ""},
		{"assets dir", "GET", "/assets/", nil, 404, "", "", ""},
		{"assets root", "GET", "/assets", nil, 404, "", "", ""},
		{"escape", "GET", "/assets/../frontend.go", nil, 404, "", "", ""},
		{"static prefix", "GET", "/static/app.js", nil, 404, "", "", ""},
		{"index by name", "GET", "/index.html", nil, 404, "", "", ""},
		{"other path", "GET", "/channels/3", nil, 404, "", "", ""},
		{"post", "POST", "/", nil, 405, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := serve(t, tt.method, tt.target, tt.hdr)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d; want %d", res.StatusCode, tt.wantStatus)
			}
			for k, want := range map[string]string{
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "same-origin",
			} {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s = %q; want %q", k, got, want)
				}
			}
			if tt.wantType != "" && !strings.HasPrefix(res.Header.Get("Content-Type"), tt.wantType) {
				t.Errorf("Content-Type = %q; want %q…", res.Header.Get("Content-Type"), tt.wantType)
			}
			if tt.wantBody != "" && !bytes.Contains(body, []byte(tt.wantBody)) {
				t.Errorf("body does not contain %q", tt.wantBody)
			}
			if tt.wantETag != "" && res.Header.Get("ETag") != tt.wantETag {
				t.Errorf("ETag = %q; want %q", res.Header.Get("ETag"), tt.wantETag)
			}
			switch tt.wantStatus {
			case 200, 304:
				if got := res.Header.Get("Cache-Control"); got != "no-cache" {
					t.Errorf("Cache-Control = %q; want no-cache", got)
				}
			}
			if (tt.wantStatus == 304 || tt.method == "HEAD") && len(body) != 0 {
				t.Errorf("body has %d bytes; want none", len(body))
			}
		})
	}
}

func TestETagIsStrongContentHash(t *testing.T) {
	seen := map[string]string{}
	for name, a := range loadAssets() {
		if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(a.etag) {
			t.Errorf("%s: ETag %s is not a strong quoted hash", name, a.etag)
		}
		if other, dup := seen[a.etag]; dup {
			t.Errorf("%s and %s share ETag %s", name, other, a.etag)
		}
		seen[a.etag] = name
	}
}

func TestGzip(t *testing.T) {
	a := loadAssets()["app.js"]
	if a.gz == nil {
		t.Fatal("app.js has no gzip representation")
	}
	tests := []struct {
		accept   string
		wantGzip bool
	}{
		{"", false},
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"gzip;q=0", false},
		{"identity", false},
		{"*", true},
		{"*;q=0, gzip", true},
		{"gzip;q=0, *", false},
	}
	for _, tt := range tests {
		t.Run(tt.accept, func(t *testing.T) {
			res := serve(t, "GET", "/assets/app.js", map[string]string{"Accept-Encoding": tt.accept})
			body, _ := io.ReadAll(res.Body)
			if got := res.Header.Get("Content-Encoding") == "gzip"; got != tt.wantGzip {
				t.Fatalf("gzip = %v; want %v", got, tt.wantGzip)
			}
			if !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary = %q; want Accept-Encoding", res.Header.Get("Vary"))
			}
			if tt.wantGzip {
				if res.Header.Get("ETag") != a.gzETag || a.gzETag == a.etag {
					t.Errorf("ETag = %q; want the gzip ETag %q", res.Header.Get("ETag"), a.gzETag)
				}
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(zr)
			}
			if !bytes.Equal(body, a.body) {
				t.Error("decoded body differs from the embedded file")
			}
		})
	}
	res := serve(t, "GET", "/assets/app.js", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": a.gzETag})
	if res.StatusCode != 304 {
		t.Errorf("revalidating the gzip representation: status %d; want 304", res.StatusCode)
	}
}

// The app renders hostile customer text and loads nothing from elsewhere: check the
// embedded files themselves, since a browser test cannot catch a path not taken.
func TestStaticFilesAreSafe(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}[/"'\s)]`)
	const svgNS = `xmlns="http://www.w3.org/2000/svg"` // an XML namespace name, never fetched
	forbidden := []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "DOMParser", "createContextualFragment"}
	inlineScript := regexp.MustCompile(`(?i)<script(\s[^>]*)?>`)
	inlineHandler := regexp.MustCompile(`(?i)<[^>]+\son[a-z]+\s*=`)
	inlineStyle := regexp.MustCompile(`(?i)(<style|\sstyle\s*=)`)

	for name, a := range loadAssets() {
		text := string(a.body)
		for _, m := range external.FindAllString(strings.ReplaceAll(text, svgNS, ""), -1) {
			t.Errorf("%s references an external URL: %s", name, m)
		}
		switch path.Ext(name) {
		case ".js":
			for _, f := range forbidden {
				if strings.Contains(text, f) {
					t.Errorf("%s uses %s; render text with textContent or text nodes", name, f)
				}
			}
		case ".html":
			for _, tag := range inlineScript.FindAllString(text, -1) {
				if !strings.Contains(tag, "src=") {
					t.Errorf("%s has an inline script (%s); the CSP forbids it", name, tag)
				}
			}
			if m := inlineHandler.FindString(text); m != "" {
				t.Errorf("%s has an inline event handler: %s", name, m)
			}
			if m := inlineStyle.FindString(text); m != "" {
				t.Errorf("%s has inline style (%s); the CSP forbids it", name, m)
			}
		}
	}
}

// Patterns of what a file pulls in: assets named in the HTML, modules imported statically
// (loaded with the importer) and modules imported on demand with import().
var (
	refPattern     = regexp.MustCompile(`(?:src|href)="/assets/([^"]+)"`)
	importPattern  = regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"]\./([^'"]+)['"]`)
	dynamicPattern = regexp.MustCompile(`import\(\s*['"]\./([^'"]+)['"]\s*\)`)
)

// TestFirstLoadSize: the first page load — index.html, every asset it references and every
// module those import statically, transitively — stays under 200 KiB, uncompressed.
// Modules imported on demand (a page opened from the sidebar) load later and are not
// part of it; all files together still have a ceiling, so that nothing grows unseen.
func TestFirstLoadSize(t *testing.T) {
	assets := loadAssets()
	seen := map[string]bool{"index.html": true}
	queue := []string{"index.html"}
	first := 0
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		a := assets[name]
		if a == nil {
			continue // TestReferencesResolve reports it
		}
		first += len(a.body)
		var refs [][]string
		refs = append(refs, refPattern.FindAllStringSubmatch(string(a.body), -1)...)
		refs = append(refs, importPattern.FindAllStringSubmatch(string(a.body), -1)...)
		for _, m := range refs {
			if !seen[m[1]] {
				seen[m[1]] = true
				queue = append(queue, m[1])
			}
		}
	}
	for _, want := range []string{"app.js", "app.css", "live.js", "feed.js"} {
		if !seen[want] {
			t.Errorf("the first load does not include %s; is the pattern stale?", want)
		}
	}
	if first > 200<<10 {
		t.Errorf("the first load is %d bytes (%d files); keep it under 200 KiB (%d), or load what is not needed at once with import()", first, len(seen), 200<<10)
	}
	all := 0
	for _, a := range assets {
		all += len(a.body)
	}
	if all > 320<<10 {
		t.Errorf("static files total %d bytes; keep them under 320 KiB", all)
	}
	t.Logf("first load %d bytes in %d files; all files %d bytes", first, len(seen), all)
}

// Every /assets/ path in the HTML and every relative import in the modules (static or
// import()) must exist.
func TestReferencesResolve(t *testing.T) {
	assets := loadAssets()
	n := 0
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		text := string(assets[name].body)
		var refs [][]string
		refs = append(refs, refPattern.FindAllStringSubmatch(text, -1)...)
		refs = append(refs, importPattern.FindAllStringSubmatch(text, -1)...)
		refs = append(refs, dynamicPattern.FindAllStringSubmatch(text, -1)...)
		for _, m := range refs {
			n++
			if assets[m[1]] == nil {
				t.Errorf("%s refers to %s, which is not embedded", name, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("found no references at all; is the pattern stale?")
	}
}

func TestHooksPresent(t *testing.T) {
	html := string(loadAssets()["index.html"].body)
	for _, id := range []string{"login-form", "email", "password", "login-error", "channel-list", "feed", "offline-banner", "composer"} {
		if !strings.Contains(html, `id="`+id+`"`) {
			t.Errorf("index.html lacks #%s", id)
		}
	}
	js := ""
	for name, a := range loadAssets() {
		if strings.HasSuffix(name, ".js") {
			js += string(a.body)
		}
	}
	for _, hook := range []string{"channelId", "messageId", "new-messages-divider", "issue-chip", "chip.dataset.status", "'badge'"} {
		if !strings.Contains(js+html, hook) {
			t.Errorf("no module sets %s", hook)
		}
	}
}
