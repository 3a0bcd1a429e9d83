package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const buttonPage = `<!doctype html>
<html><head><title>browsertest</title></head>
<body>
<button id="go" type="button">Go</button>
<p id="out">waiting</p>
<script>
document.getElementById("go").addEventListener("click", () => {
	document.getElementById("out").textContent = "clicked";
});
</script>
</body></html>`

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func htmlHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, body)
	}
}

// step bounds one browser step.
func step(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClickChangesText(t *testing.T) {
	url := serve(t, htmlHandler(buttonPage))
	ctx := step(t, New(t))

	if err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#go")),
	); err != nil {
		t.Fatalf("load: %v", err)
	}
	if got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#out"))); err != nil || got != "waiting" {
		t.Fatalf("before click: got %q, %v; want waiting", got, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#go"))); err != nil {
		t.Fatalf("click: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("out").textContent === "clicked"`)); err != nil {
		t.Fatalf("wait for the text to change: %v", err)
	}
	if got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#out"))); err != nil || got != "clicked" {
		t.Fatalf("after click: got %q, %v; want clicked", got, err)
	}
}

func TestScreenshotIsPNG(t *testing.T) {
	url := serve(t, htmlHandler(buttonPage))
	ctx := step(t, New(t))

	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#go"))); err != nil {
		t.Fatalf("load: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(shot, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot starts with %q; want the PNG signature", shot[:min(len(shot), 8)])
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	// The viewport: the 1280 px wide window less the browser's own frame.
	if cfg.Width != 1280 || cfg.Height < 400 || cfg.Height > 800 {
		t.Errorf("screenshot is %dx%d; want 1280 wide and 400 to 800 high", cfg.Width, cfg.Height)
	}
}

// TestNewTabHasOwnCookies logs two "agents" in at once: each tab keeps its own cookie.
func TestNewTabHasOwnCookies(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "agent", Value: r.URL.Query().Get("as"), Path: "/"})
		http.Redirect(w, r, "/whoami", http.StatusSeeOther)
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		who := "nobody"
		if c, err := r.Cookie("agent"); err == nil {
			who = c.Value
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><p id="who">%s</p>`, who)
	})
	url := serve(t, mux)

	browser := New(t)
	alice := step(t, NewTab(t, browser))
	bob := step(t, NewTab(t, browser))
	first := step(t, browser)

	whoami := func(ctx context.Context) string {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(url+"/whoami")); err != nil {
			t.Fatalf("whoami: %v", err)
		}
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#who")))
		if err != nil {
			t.Fatalf("whoami: %v", err)
		}
		return got
	}
	login := func(ctx context.Context, as string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(url+"/login?as="+as)); err != nil {
			t.Fatalf("login as %s: %v", as, err)
		}
	}

	login(alice, "alice")
	if got := whoami(bob); got != "nobody" {
		t.Fatalf("bob's tab before login: got %q; want nobody", got)
	}
	login(bob, "bob")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"alice", alice, "alice"},
		{"bob", bob, "bob"},
		{"first tab", first, "nobody"},
	} {
		if got := whoami(tc.ctx); got != tc.want {
			t.Errorf("%s: got %q; want %q", tc.name, got, tc.want)
		}
	}
}
