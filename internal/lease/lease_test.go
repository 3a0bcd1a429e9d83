package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/internal/lease"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func acquire(t *testing.T, l *lease.Lease, now time.Time) bool {
	t.Helper()
	ok, err := l.Acquire(context.Background(), now)
	if err != nil {
		t.Fatalf("%s acquire at %s: %v", l.Holder(), now.Format(time.TimeOnly), err)
	}
	return ok
}

func TestTwoHoldersAndExpiry(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a := lease.New(db, "sla", "node-a", 30*time.Second)
		b := lease.New(db, "sla", "node-b", 30*time.Second)
		other := lease.New(db, "imap", "node-b", 30*time.Second)

		steps := []struct {
			name  string
			l     *lease.Lease
			at    time.Duration
			want  bool
			owner string
		}{
			{"a takes the free lease", a, 0, true, "node-a"},
			{"b is refused while a holds it", b, 10 * time.Second, false, "node-a"},
			{"a renews before expiry", a, 20 * time.Second, true, "node-a"},
			{"b is refused after a's first expiry, since a renewed", b, 35 * time.Second, false, "node-a"},
			{"b is refused one microsecond before expiry", b, 50*time.Second - time.Microsecond, false, "node-a"},
			{"b takes over at expiry", b, 50 * time.Second, true, "node-b"},
			{"a, back from a pause, is refused", a, 51 * time.Second, false, "node-b"},
			{"b renews", b, 60 * time.Second, true, "node-b"},
		}
		for _, st := range steps {
			if got := acquire(t, st.l, t0.Add(st.at)); got != st.want {
				t.Errorf("%s: got %v; want %v", st.name, got, st.want)
			}
			holder, _, err := lease.Current(ctx, db, "sla")
			if err != nil {
				t.Fatal(err)
			}
			if holder != st.owner {
				t.Errorf("%s: holder %q; want %q", st.name, holder, st.owner)
			}
		}
		_, exp, _ := lease.Current(ctx, db, "sla")
		if want := t0.Add(90 * time.Second); !exp.Equal(want) {
			t.Errorf("expires %s; want %s", exp, want)
		}
		// Leases are independent by name.
		if !acquire(t, other, t0.Add(61*time.Second)) {
			t.Error("another lease name was refused")
		}
		if ok, err := b.Holds(ctx, db, t0.Add(61*time.Second)); err != nil || !ok {
			t.Errorf("b holds: %v %v; want true", ok, err)
		}
		if ok, _ := a.Holds(ctx, db, t0.Add(61*time.Second)); ok {
			t.Error("a holds; want not")
		}
	})
}

func TestReleaseHandsOverAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a := lease.New(db, "sla", "node-a", time.Minute)
		b := lease.New(db, "sla", "node-b", time.Minute)
		if !acquire(t, a, t0) {
			t.Fatal("a refused")
		}
		// Releasing a lease one does not hold changes nothing.
		if err := b.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if acquire(t, b, t0.Add(time.Second)) {
			t.Fatal("b took a held lease after its own release")
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := lease.Current(ctx, db, "sla"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after release: %v; want ErrNotFound", err)
		}
		if !acquire(t, b, t0.Add(2*time.Second)) {
			t.Error("b refused after a released")
		}
	})
}

// Many nodes racing for a free lease at the same instant: exactly one wins, on both
// engines (PostgreSQL decides by the row lock of the upsert).
func TestConcurrentAcquireHasOneWinner(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		const nodes = 12
		for round := range 3 {
			now := t0.Add(time.Duration(round) * time.Hour) // each round the previous lease has expired
			var wg sync.WaitGroup
			wins := make(chan string, nodes)
			errs := make(chan error, nodes)
			for i := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l := lease.New(db, "race", fmt.Sprintf("node-%d-%d", round, i), time.Minute)
					ok, err := l.Acquire(context.Background(), now)
					if err != nil {
						errs <- err
						return
					}
					if ok {
						wins <- l.Holder()
					}
				}()
			}
			wg.Wait()
			close(wins)
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			var winners []string
			for w := range wins {
				winners = append(winners, w)
			}
			if len(winners) != 1 {
				t.Fatalf("round %d: winners %v; want exactly one", round, winners)
			}
			holder, _, err := lease.Current(context.Background(), db, "race")
			if err != nil || holder != winners[0] {
				t.Errorf("round %d: holder %q (%v); want %q", round, holder, err, winners[0])
			}
		}
	})
}

func TestDefaults(t *testing.T) {
	l := lease.New(nil, "sla", "", 0)
	if l.TTL() != lease.DefaultTTL {
		t.Errorf("ttl %s; want %s", l.TTL(), lease.DefaultTTL)
	}
	if l.Holder() == "" || l.Holder() == lease.New(nil, "sla", "", 0).Holder() {
		t.Errorf("holder %q: want a non-empty name unique per handle", l.Holder())
	}
}
