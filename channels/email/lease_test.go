package email_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// fakeLease is held while granted is true.
type fakeLease struct {
	mu       sync.Mutex
	granted  bool
	released bool
}

func (l *fakeLease) Acquire(context.Context, time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.granted, nil
}

func (l *fakeLease) Release(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = true
	return nil
}

func (l *fakeLease) TTL() time.Duration { return 30 * time.Millisecond }

func (l *fakeLease) set(granted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.granted = granted
}

// TestRunLeased: intake reads the mailbox only while the node holds the lease.
func TestRunLeased(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	a := newApp(db)
	ms := newMailServer(t, serverOptions{})
	r := start(t, a, ms, runOptions{})
	r.stop(t) // only its Service is used here

	l := &fakeLease{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.svc.RunLeased(ctx, l) }()

	ms.deliver(simple("jane@example.com", "<lease1@x>", "hi", "one"))
	select {
	case err := <-done:
		t.Fatalf("RunLeased returned early: %v", err)
	case <-time.After(100 * time.Millisecond): // a few lease periods: nothing may be read without the lease
	}
	if n := customerComments(t, db); n != 0 {
		t.Fatalf("%d mails taken without the lease; want 0", n)
	}
	l.set(true)
	waitFor(t, "the mail once the lease is held", func() bool { return customerComments(t, db) == 1 })
	l.set(false)
	waitFor(t, "intake to stop after losing the lease", func() bool { return ms.conns0() })
	ms.deliver(simple("jane@example.com", "<lease2@x>", "hi", "two"))
	l.set(true)
	waitFor(t, "the second mail after taking the lease again", func() bool { return customerComments(t, db) == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !l.released {
		t.Error("the lease was not released on shutdown")
	}
}
