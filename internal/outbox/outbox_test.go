package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// clock is a fake time source the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fake is a connector whose answers the test scripts per message.
type fake struct {
	mu      sync.Mutex
	calls   []*Message
	answer  func(m *Message, n int) (*Receipt, error) // n: attempts of this message so far, from 1
	perMsg  map[int64]int
	running int
	maxRun  int
}

func (f *fake) Deliver(ctx context.Context, m *Message) (*Receipt, error) {
	f.mu.Lock()
	if f.perMsg == nil {
		f.perMsg = map[int64]int{}
	}
	f.perMsg[m.ID]++
	n := f.perMsg[m.ID]
	f.calls = append(f.calls, m)
	f.running++
	f.maxRun = max(f.maxRun, f.running)
	answer := f.answer
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	if answer == nil {
		return &Receipt{ExternalID: fmt.Sprintf("X%d-%d", m.ID, n), Status: "queued"}, nil
	}
	return answer(m, n)
}

func (f *fake) attempts(id int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.perMsg[id]
}

type rig struct {
	t       *testing.T
	db      *store.DB
	clock   *clock
	svc     *Service
	conn    *fake
	channel int64
}

func newRig(t *testing.T, db *store.DB) *rig {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	log := hub.NewLog(db, c.Now)
	ch, err := channels.New(db, log, channels.Config{Now: c.Now}).Ensure(context.Background(), channels.SMS, "SMS", "+15550001111")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, db: db, clock: c, conn: &fake{}, channel: ch.ID}
	r.svc = r.service()
	return r
}

// service builds another Service on the rig's database: another node, or the same node
// after a restart.
func (r *rig) service() *Service {
	s := New(r.db, hub.NewLog(r.db, r.clock.Now), Config{Now: r.clock.Now, Poll: time.Hour, RetryBase: time.Second,
		RetryMax: time.Minute, GiveUpAfter: time.Hour, SendTimeout: 5 * time.Second, Jitter: func() float64 { return 0.5 }})
	s.Register("fake", r.conn)
	return s
}

// run starts s's worker until the test ends.
func (r *rig) run(s *Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	r.t.Cleanup(stop)
	return stop
}

func (r *rig) enqueue(to, body string) int64 {
	r.t.Helper()
	var id int64
	err := r.db.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		id, err = r.svc.Enqueue(context.Background(), tx, Outgoing{ChannelID: r.channel, Connector: "fake", To: to, Body: body})
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return id
}

// waitFor polls cond until it holds or a deadline passes.
func (r *rig) waitFor(what string, cond func(d *Delivery) bool, id int64) *Delivery {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := r.svc.Get(context.Background(), id)
		if err != nil {
			r.t.Fatal(err)
		}
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("message %d: timed out waiting for %s; last %+v", id, what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func inState(st State) func(d *Delivery) bool { return func(d *Delivery) bool { return d.State == st } }

func TestDeliverOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		r.run(r.svc)
		id := r.enqueue("+15551234567", "hello")
		d := r.waitFor("sent", inState(Sent), id)
		if d.ExternalID == nil || *d.ExternalID != fmt.Sprintf("X%d-1", id) || d.DeliveryStatus != "queued" || d.Attempts != 1 {
			t.Errorf("got %+v; want sent once with the provider's id and status", d)
		}
	})
}

func TestTransientRetriesWithBackoffAcrossRestart(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		r.conn.answer = func(m *Message, n int) (*Receipt, error) {
			if n < 3 {
				return nil, &Error{Outcome: Transient, Code: "503", Reason: "Twilio answered 503"}
			}
			return &Receipt{ExternalID: "SM1", Status: "queued"}, nil
		}
		stop := r.run(r.svc)
		id := r.enqueue("+15551234567", "hello")
		d := r.waitFor("first retry scheduled", func(d *Delivery) bool { return d.State == Pending && d.Attempts == 1 }, id)
		// RetryBase 1 s with jitter 0.5: 0.75 s after the first failure.
		if want := r.clock.Now().Add(750 * time.Millisecond); d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(want) {
			t.Errorf("next attempt at %v; want %v", d.NextAttemptAt, want)
		}
		if d.DeliveryStatus != "queued" || d.ErrorReason == nil || d.ErrorCode == nil || *d.ErrorCode != "503" {
			t.Errorf("got %+v; want queued with the reason of the retry", d)
		}
		// Not due yet: nothing happens on a kick.
		r.svc.Kick()
		r.clock.Advance(time.Second)
		r.svc.Kick()
		d = r.waitFor("second retry scheduled", func(d *Delivery) bool { return d.State == Pending && d.Attempts == 2 }, id)
		if want := r.clock.Now().Add(1500 * time.Millisecond); !d.NextAttemptAt.Equal(want) {
			t.Errorf("second backoff: next at %v; want %v (doubled)", d.NextAttemptAt, want)
		}
		// A restart in between: the schedule is in the database.
		stop()
		s2 := r.service()
		r.run(s2)
		r.clock.Advance(2 * time.Second)
		s2.Kick()
		d = r.waitFor("sent", inState(Sent), id)
		if r.conn.attempts(id) != 3 || d.ExternalID == nil || *d.ExternalID != "SM1" || d.ErrorReason != nil {
			t.Errorf("got %+v after %d attempts; want sent on the third, error cleared", d, r.conn.attempts(id))
		}
	})
}

func TestTransientGivesUp(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		r.conn.answer = func(m *Message, n int) (*Receipt, error) {
			return nil, &Error{Outcome: Transient, Reason: "connection refused", RetryAfter: 20 * time.Minute}
		}
		r.run(r.svc)
		id := r.enqueue("+15551234567", "hello")
		for i := 1; ; i++ {
			d := r.waitFor("attempt done", func(d *Delivery) bool { return d.State != Sending && d.Attempts == i }, id)
			if d.State == Failed {
				if i != 3 || d.ErrorReason == nil {
					t.Errorf("gave up after %d attempts with %+v; want 3 (Retry-After 20 min, window 1 h)", i, d)
				}
				break
			}
			if i > 5 {
				t.Fatalf("still retrying: %+v", d)
			}
			r.clock.Advance(21 * time.Minute)
			r.svc.Kick()
		}
	})
}

func TestPermanentFailsAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		r.conn.answer = func(m *Message, n int) (*Receipt, error) {
			return nil, &Error{Outcome: Permanent, Code: "21211", Reason: "invalid number"}
		}
		r.run(r.svc)
		id := r.enqueue("+1555", "hello")
		d := r.waitFor("failed", inState(Failed), id)
		if d.DeliveryStatus != "failed" || *d.ErrorCode != "21211" || *d.ErrorReason != "invalid number" || d.Attempts != 1 {
			t.Errorf("got %+v", d)
		}
		// An agent may discard it, or try again.
		if _, err := r.svc.Retry(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		r.waitFor("failed again", func(d *Delivery) bool { return d.State == Failed && d.Attempts == 2 }, id)
		if d, err := r.svc.Discard(context.Background(), id); err != nil || d.State != Discarded || d.DeliveryStatus != "discarded" {
			t.Fatalf("discard: %+v %v", d, err)
		}
		if _, err := r.svc.Retry(context.Background(), id); !errors.Is(err, ErrNotRetryable) {
			t.Errorf("retry of a discarded message: %v; want ErrNotRetryable", err)
		}
	})
}

func TestUnknownIsNeverResentBlindly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		r.conn.answer = func(m *Message, n int) (*Receipt, error) {
			if m.Body == "timeout" && n == 1 {
				return nil, &Error{Outcome: Indeterminate, Reason: "no answer within 30s"}
			}
			if m.Body == "weird" {
				return nil, errors.New("a connector bug")
			}
			return &Receipt{ExternalID: fmt.Sprintf("SM%d", m.ID)}, nil
		}
		r.run(r.svc)
		lost := r.enqueue("+15551234567", "timeout")
		weird := r.enqueue("+15557654321", "weird")
		d := r.waitFor("unknown", inState(Unknown), lost)
		if d.DeliveryStatus != "unknown" || d.ErrorReason == nil {
			t.Errorf("got %+v", d)
		}
		r.waitFor("unknown", inState(Unknown), weird)
		// Time passes, the worker runs: a later message to the same customer goes (an
		// unknown one does not hold its lane), the unknown one does not.
		r.clock.Advance(48 * time.Hour)
		after := r.enqueue("+15551234567", "later")
		r.waitFor("sent", inState(Sent), after)
		if n := r.conn.attempts(lost); n != 1 {
			t.Fatalf("the unknown message was attempted %d times; want 1", n)
		}
		// The agent decides: send it again.
		if _, err := r.svc.Retry(context.Background(), lost); err != nil {
			t.Fatal(err)
		}
		d = r.waitFor("sent", inState(Sent), lost)
		if r.conn.attempts(lost) != 2 || *d.ExternalID != fmt.Sprintf("SM%d", lost) {
			t.Errorf("got %+v", d)
		}
	})
}

func TestLaneOrderAndExclusiveClaims(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		// Two nodes, and each runs several deliveries at once.
		r.run(r.svc)
		other := r.service()
		r.run(other)
		const lanes, per = 6, 8
		var ids []int64
		for i := range per {
			for l := range lanes {
				ids = append(ids, r.enqueue(fmt.Sprintf("+1555000%04d", l), fmt.Sprint(i)))
			}
		}
		other.Kick()
		for _, id := range ids {
			r.waitFor("sent", inState(Sent), id)
		}
		r.conn.mu.Lock()
		defer r.conn.mu.Unlock()
		last := map[string]int64{}
		for _, m := range r.conn.calls {
			if m.ID <= last[m.To] {
				t.Errorf("lane %s: message %d went after %d", m.To, m.ID, last[m.To])
			}
			last[m.To] = m.ID
		}
		for _, id := range ids {
			if n := r.conn.perMsg[id]; n != 1 {
				t.Errorf("message %d delivered %d times; want 1", id, n)
			}
		}
		if r.conn.maxRun < 2 {
			t.Logf("at most %d deliveries ran at once", r.conn.maxRun)
		}
	})
}

func TestExpiredLeaseBecomesUnknown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		id := r.enqueue("+15551234567", "hello")
		// A node claims it and dies.
		m, token, err := r.svc.claim(context.Background())
		if err != nil || m.ID != id {
			t.Fatalf("claim: %+v %v", m, err)
		}
		// Before the lease ends nothing happens; after, it is unknown, not resent.
		if err := r.svc.reap(context.Background()); err != nil {
			t.Fatal(err)
		}
		if d, _ := r.svc.Get(context.Background(), id); d.State != Sending {
			t.Fatalf("reaped early: %+v", d)
		}
		r.clock.Advance(r.svc.cfg.Lease + time.Second)
		r.run(r.svc)
		d := r.waitFor("unknown", inState(Unknown), id)
		if d.ErrorReason == nil || r.conn.attempts(id) != 0 {
			t.Errorf("got %+v, %d attempts", d, r.conn.attempts(id))
		}
		// The dead node's late failure changes nothing; a late success resolves it.
		if err := r.svc.finish(context.Background(), m, token, nil, &Error{Outcome: Transient, Reason: "x"}); err != nil {
			t.Fatal(err)
		}
		if d, _ := r.svc.Get(context.Background(), id); d.State != Unknown {
			t.Fatalf("late failure changed it: %+v", d)
		}
		if err := r.svc.finish(context.Background(), m, token, &Receipt{ExternalID: "SM9", Status: "queued"}, nil); err != nil {
			t.Fatal(err)
		}
		if d, _ := r.svc.Get(context.Background(), id); d.State != Sent || *d.ExternalID != "SM9" {
			t.Fatalf("late success: %+v; want sent", d)
		}
	})
}

func TestReports(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db)
		ctx := context.Background()
		release := make(chan struct{})
		var releaseOnce sync.Once
		free := func() { releaseOnce.Do(func() { close(release) }) }
		r.conn.answer = func(m *Message, n int) (*Receipt, error) {
			switch m.Body {
			case "early":
				<-release // the provider's report arrives before its answer to the send
				return &Receipt{ExternalID: "SMearly", Status: "queued"}, nil
			case "lost":
				return nil, &Error{Outcome: Indeterminate, Reason: "timeout"}
			}
			return &Receipt{ExternalID: "SM" + m.Body, Status: "queued"}, nil
		}
		r.run(r.svc)
		t.Cleanup(free) // before the worker stops: cleanups run last first

		a := r.enqueue("+15550000001", "a")
		r.waitFor("sent", inState(Sent), a)
		for _, st := range []string{"delivered", "sent"} { // out of order
			if ok, err := r.svc.Report(ctx, "fake", 0, "SMa", st, "", ""); !ok || err != nil {
				t.Fatalf("report %s: %v %v", st, ok, err)
			}
		}
		if d, _ := r.svc.Get(ctx, a); d.DeliveryStatus != "delivered" || d.State != Sent {
			t.Errorf("got %+v; want delivered to stay", d)
		}
		if ok, _ := r.svc.Report(ctx, "fake", 0, "SMnobody", "sent", "", ""); ok {
			t.Error("a report for an unknown message was matched")
		}

		early := r.enqueue("+15550000002", "early")
		r.waitFor("sending", inState(Sending), early)
		if ok, err := r.svc.Report(ctx, "fake", early, "SMearly", "sent", "", ""); !ok || err != nil {
			t.Fatalf("early report: %v %v", ok, err)
		}
		free()
		d := r.waitFor("sent", inState(Sent), early)
		if d.DeliveryStatus != "sent" || *d.ExternalID != "SMearly" {
			t.Errorf("got %+v; want the early report's sent to stand over the answer's queued", d)
		}

		lost := r.enqueue("+15550000003", "lost")
		r.waitFor("unknown", inState(Unknown), lost)
		if ok, _ := r.svc.Report(ctx, "fake", lost, "SMlost", "undelivered", "30003", "unreachable"); !ok {
			t.Fatal("report for the unknown message not matched by its outbox id")
		}
		d, _ = r.svc.Get(ctx, lost)
		if d.State != Failed || d.DeliveryStatus != "undelivered" || *d.ErrorCode != "30003" || *d.ExternalID != "SMlost" {
			t.Errorf("got %+v; want the provider's word to resolve the unknown outcome", d)
		}
	})
}
