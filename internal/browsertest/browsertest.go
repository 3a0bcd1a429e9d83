// Package browsertest starts a headless Chromium for end-to-end tests, driven by chromedp.
//
// New starts one browser per test and returns a chromedp context for its first tab;
// NewTab adds a tab in a separate browser context (its own cookies and storage), so one
// test can log two agents in at once. Run actions with chromedp.Do and chromedp.Run, and
// bound each step with context.WithTimeout on the returned context, never on the first
// call that starts the browser (New has done that already).
//
// SWITCHBOARD_CHROMIUM names the browser (default /usr/bin/chromium, Debian's package; the
// README's test command installs it). When it is missing, the test is skipped, or failed
// under CI=true, as storetest does for servers.
package browsertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-hq/switchboard/internal/storetest"
)

// DefaultChromium is used when SWITCHBOARD_CHROMIUM is unset.
const DefaultChromium = "/usr/bin/chromium"

// startTimeout bounds starting the browser and opening a tab.
const startTimeout = 60 * time.Second

// New starts a headless Chromium with a fresh profile under t.TempDir and returns the
// chromedp context of its first tab. The browser is killed when the test ends.
func New(t testing.TB) context.Context {
	t.Helper()
	exe := os.Getenv("SWITCHBOARD_CHROMIUM")
	if exe == "" {
		exe = DefaultChromium
	}
	path, err := exec.LookPath(exe)
	if err != nil {
		storetest.Unavailable(t, "Chromium ("+exe+")", err)
	}
	dataDir := filepath.Join(t.TempDir(), "chromium-profile")
	out := new(syncBuffer)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // root in containers and CI
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(dataDir),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(out),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	stop := func() {
		cancelCtx()
		cancelAlloc() // waits until the browser process has exited
		killLeftovers(dataDir)
		removeAllRetry(dataDir)
	}

	// The first Do starts the browser and binds it to ctx, which has no deadline: bound
	// the start by cancelling everything if it takes too long.
	timer := time.AfterFunc(startTimeout, cancelAlloc)
	err = chromedp.Do(ctx)
	inTime := timer.Stop()
	if err != nil {
		stop()
		if !inTime {
			t.Fatalf("browsertest: %s did not start within %v: %v\n%s", path, startTimeout, err, out)
		}
		t.Fatalf("browsertest: start %s: %v\n%s", path, err, out)
	}
	t.Cleanup(stop)
	return ctx
}

// NewTab opens a tab in a new browser context of the browser that New started, and
// returns its chromedp context: it shares no cookies, storage or cache with the first
// tab or any other NewTab, like a second person on another computer. browserCtx is the
// context New returned (or one derived from it). The tab is closed when the test ends.
func NewTab(t testing.TB, browserCtx context.Context) context.Context {
	t.Helper()
	if c := chromedp.FromContext(browserCtx); c == nil || c.Browser == nil {
		t.Fatal("browsertest: NewTab needs the context that New returned")
	}
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	timer := time.AfterFunc(startTimeout, cancel)
	err := chromedp.Do(ctx)
	inTime := timer.Stop()
	if err != nil {
		cancel()
		if !inTime {
			t.Fatalf("browsertest: new tab did not open within %v: %v", startTimeout, err)
		}
		t.Fatalf("browsertest: new tab: %v", err)
	}
	t.Cleanup(cancel)
	return ctx
}

// syncBuffer collects the browser's output, which a goroutine of chromedp writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// removeAllRetry removes dir, trying again for a few seconds: Chromium's helper processes
// can still write there just after the browser exits.
func removeAllRetry(dir string) {
	deadline := time.Now().Add(5 * time.Second)
	for os.RemoveAll(dir) != nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}
