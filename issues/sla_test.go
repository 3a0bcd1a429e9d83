package issues

// Tests of SLA clocks and the Engine. Everything runs on a fake clock (no sleeps): the
// tests set the time and call Engine.Tick, on SQLite and PostgreSQL. Replies and "first
// response" are written with SQL, as the reply code would, so these tests depend only on
// the columns the engine reads.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/lease"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

var slaT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func slaAt(min float64) time.Time { return slaT0.Add(time.Duration(min * float64(time.Minute))) }

// slaClock is a fake clock the tests move by hand.
type slaClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *slaClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *slaClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// slaRecorder collects the events published after commit.
type slaRecorder struct {
	mu  sync.Mutex
	evs []*hub.Event
}

func (r *slaRecorder) Publish(ev *hub.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

// take returns the events of the given types published since the last take, and forgets
// every event up to now.
func (r *slaRecorder) take(types ...string) []*hub.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*hub.Event
	for _, ev := range r.evs {
		for _, t := range types {
			if ev.Type == t {
				out = append(out, ev)
			}
		}
	}
	r.evs = nil
	return out
}

// slaPeople names users from the users table, as accounts does.
type slaPeople struct{}

func (slaPeople) Names(ctx context.Context, q store.Querier, ids []int64) (map[int64]string, error) {
	out := map[int64]string{}
	for _, id := range ids {
		var name string
		if err := q.QueryRowContext(ctx, `SELECT name FROM users WHERE id = $1`, id).Scan(&name); err != nil {
			return nil, err
		}
		out[id] = name
	}
	return out, nil
}

type slaEnv struct {
	t                 *testing.T
	ctx               context.Context
	db                *store.DB
	clock             *slaClock
	rec               *slaRecorder
	svc               *Service
	ch                *channels.Service
	sms, mail, alerts *channels.Channel
	engine            *Engine // holds the "sla" lease (5 min) as node-a
	admin, alice, bob int64
	n                 int
}

func newSLAEnv(t *testing.T, db *store.DB) *slaEnv {
	t.Helper()
	e := &slaEnv{t: t, ctx: context.Background(), db: db, clock: &slaClock{now: slaT0.Add(-time.Hour)}, rec: &slaRecorder{}}
	log := hub.NewLog(db, e.clock.Now)
	log.SetPublisher(e.rec)
	e.ch = channels.New(db, log, channels.Config{Now: e.clock.Now})
	e.svc = New(db, log, e.ch, Config{Now: e.clock.Now, People: slaPeople{}})
	e.ch.SetDirectory(e.svc)
	var err error
	if e.sms, err = e.ch.Ensure(e.ctx, channels.SMS, "SMS", "+15550001111"); err != nil {
		t.Fatal(err)
	}
	if e.mail, err = e.ch.Ensure(e.ctx, channels.Email, "Mail", "help@example.com"); err != nil {
		t.Fatal(err)
	}
	e.admin = e.user("root", "admin")
	e.alice = e.user("alice", "agent")
	e.bob = e.user("bob", "agent")
	if e.alerts, err = e.ch.CreateTeam(e.ctx, "SLA alerts", []int64{e.admin}); err != nil {
		t.Fatal(err)
	}
	e.engine = e.newEngine("node-a")
	return e
}

func (e *slaEnv) newEngine(holder string) *Engine {
	return NewEngine(e.svc, EngineConfig{Lease: lease.New(e.db, "sla", holder, 5*time.Minute)})
}

func (e *slaEnv) user(handle, role string) int64 {
	e.t.Helper()
	var id int64
	err := e.db.InTx(e.ctx, func(tx *store.Tx) error {
		return tx.QueryRowContext(e.ctx, `INSERT INTO users (email, email_norm, name, handle, role, password_hash, created_at)
			VALUES ($1, $1, $2, $3, $4, 'x', $5) RETURNING id`, handle+"@example.com", strings.ToUpper(handle[:1])+handle[1:],
			handle, role, slaT0).Scan(&id)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// policy sets a channel's SLA at the current time.
func (e *slaEnv) policy(ch *channels.Channel, first, res int, pause bool, warn int) {
	e.t.Helper()
	if _, err := e.svc.SetSLAPolicy(e.ctx, SLAPolicy{ChannelID: ch.ID, FirstResponseMinutes: first, ResolutionMinutes: res,
		PauseWhileWaiting: pause, WarnPercent: warn}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *slaEnv) alertInto(ch *channels.Channel) {
	e.t.Helper()
	id := ch.ID
	if _, err := e.svc.SetSLASettings(e.ctx, SLASettings{AlertChannelID: &id, AutoCloseMinutes: DefaultAutoCloseMinutes}); err != nil {
		e.t.Fatal(err)
	}
}

// text delivers an SMS from phone at minute min.
func (e *slaEnv) text(min float64, phone, body string) int64 {
	e.t.Helper()
	e.clock.set(slaAt(min))
	e.n++
	res, err := e.svc.Intake(e.ctx, Inbound{ChannelID: e.sms.ID, Provider: "twilio", ExternalID: fmt.Sprint("SM-sla-", e.n),
		Phone: phone, Body: body, ReceivedAt: slaAt(min)})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.IssueID
}

// mailIn delivers an email from addr at minute min.
func (e *slaEnv) mailIn(min float64, addr, body string) int64 {
	e.t.Helper()
	e.clock.set(slaAt(min))
	e.n++
	res, err := e.svc.Intake(e.ctx, Inbound{ChannelID: e.mail.ID, Provider: "email", ExternalID: fmt.Sprintf("<sla-%d@example.com>", e.n),
		Email: addr, Subject: "Help", Body: body, ReceivedAt: slaAt(min)})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.IssueID
}

// reply writes an agent's reply at minute min, freezing the first response as the reply
// code does. status is its delivery status.
func (e *slaEnv) reply(min float64, issueID, author int64, status string) {
	e.t.Helper()
	at := slaAt(min)
	e.clock.set(at)
	err := e.db.InTx(e.ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(e.ctx, `INSERT INTO comments (issue_id, kind, body, author_id, delivery_status, created_at)
			VALUES ($1, 'reply', 'Could you send a photo?', $2, $3, $4)`, issueID, author, status, at); err != nil {
			return err
		}
		_, err := tx.ExecContext(e.ctx, `UPDATE issues SET first_response_at = COALESCE(first_response_at, $1), updated_at = $1
			WHERE id = $2`, at, issueID)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *slaEnv) assign(min float64, issueID, to int64) {
	e.t.Helper()
	e.clock.set(slaAt(min))
	if _, err := e.svc.Assign(e.ctx, Actor{UserID: e.admin, Admin: true}, issueID, to); err != nil {
		e.t.Fatal(err)
	}
}

func (e *slaEnv) resolve(min float64, issueID int64) {
	e.t.Helper()
	e.clock.set(slaAt(min))
	if _, err := e.svc.Resolve(e.ctx, Actor{UserID: e.admin, Admin: true}, issueID); err != nil {
		e.t.Fatal(err)
	}
}

// tick runs the engine at minute min.
func (e *slaEnv) tick(min float64) TickReport {
	e.t.Helper()
	return e.tickWith(e.engine, min)
}

func (e *slaEnv) tickWith(en *Engine, min float64) TickReport {
	e.t.Helper()
	e.clock.set(slaAt(min))
	rep, err := en.Tick(e.ctx, slaAt(min))
	if err != nil {
		e.t.Fatalf("tick at %v min: %v", min, err)
	}
	return rep
}

// expect checks warnings and breaches fired by one tick.
func (e *slaEnv) expect(rep TickReport, min float64, warned, breached int) {
	e.t.Helper()
	if !rep.Leader || rep.Warned != warned || rep.Breached != breached {
		e.t.Errorf("tick at %v min: leader %v, warned %d, breached %d; want leader, warned %d, breached %d",
			min, rep.Leader, rep.Warned, rep.Breached, warned, breached)
	}
}

func (e *slaEnv) issueSLA(id int64) *IssueSLA {
	e.t.Helper()
	v, err := e.svc.IssueSLA(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// eventData decodes an event's payload.
func eventData(t *testing.T, ev *hub.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// topicsOf lists "type@topic kind" of events, in order, for comparison.
func topicsOf(evs []*hub.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type+"@"+string(ev.Topic))
	}
	return out
}

func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		seen[w]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestSLAClockMath(t *testing.T) {
	p := func(a, b float64) period { return period{slaAt(a), slaAt(b)} }
	t.Run("merge", func(t *testing.T) {
		got := mergePeriods([]period{p(50, 60), p(-10, 5), p(20, 30), p(25, 40), p(40, 45), p(70, 70), p(90, 200)}, slaAt(0), slaAt(100))
		want := []period{p(0, 5), p(20, 45), p(50, 60), p(90, 100)}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %v; want %v", got, want)
		}
	})
	t.Run("reach", func(t *testing.T) {
		paused := []period{p(10, 20), p(30, 60)}
		for _, tc := range []struct{ d, want float64 }{
			{0, 0}, {5, 5}, {10, 10}, {15, 25}, {20, 30}, {25, 65}, {100, 140},
		} {
			if got := reach(slaT0, time.Duration(tc.d*float64(time.Minute)), paused); !got.Equal(slaAt(tc.want)) {
				t.Errorf("reach %v min: got %s; want minute %v", tc.d, got.Format(time.TimeOnly), tc.want)
			}
		}
		if got := reach(slaT0, 10*time.Minute, []period{p(0, 30)}); !got.Equal(slaAt(40)) {
			t.Errorf("paused from the start: got %s; want minute 40", got.Format(time.TimeOnly))
		}
	})
	t.Run("running", func(t *testing.T) {
		if got := runningBetween(slaT0, slaAt(100), []period{p(10, 20), p(15, 30), p(90, 120)}); got != 70*time.Minute {
			t.Errorf("got %s; want 70m", got)
		}
	})
	t.Run("waiting", func(t *testing.T) {
		c := func(id int64, kind string, min float64, failed bool) commentMark {
			return commentMark{ID: id, Kind: kind, At: slaAt(min), Failed: failed}
		}
		cs := []commentMark{
			c(1, KindCustomer, 0, false),
			c(2, KindReply, 10, true), // never reached the customer: not waiting
			c(3, KindReply, 15, false),
			c(4, KindReply, 20, false), // a second reply does not restart the wait
			c(5, KindCustomer, 40, false),
			c(6, KindCustomer, 41, false),
			c(7, KindReply, 50, false),
		}
		got, now := waitingPeriods(cs, slaAt(80))
		if want := []period{p(15, 40), p(50, 80)}; fmt.Sprint(got) != fmt.Sprint(want) || !now {
			t.Errorf("got %v waiting %v; want %v waiting true", got, now, want)
		}
		if _, now := waitingPeriods(cs[:6], slaAt(80)); now {
			t.Error("waiting after the customer's message; want not")
		}
	})
}

// The scenario of the brief: a warning at 80 % and one breach per clock, alerts in the
// admin's channel, events for the assignee or the channel, and nothing twice.
func TestSLAWarningAndBreach(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newSLAEnv(t, db)
		e.policy(e.sms, 60, 240, false, 0) // warn_percent 0: the default, 80
		e.alertInto(e.alerts)
		standby := e.newEngine("node-b")

		a := e.text(0, "+15551230001", "My order is late")   // stays unassigned
		b := e.text(0, "+15551230002", "Wrong size")         // assigned to Alice
		e.assign(1, b, e.alice)                              //
		c := e.text(0, "+15551230003", "Just saying thanks") // answered quickly
		e.reply(5, c, e.bob, "delivered")
		e.rec.take()

		rep := e.tick(0)
		if rep.Stamped != 3 {
			t.Errorf("stamped %d; want 3", rep.Stamped)
		}
		if rep := e.tickWith(standby, 0.5); rep.Leader {
			t.Error("a second engine worked while the first held the lease")
		}
		e.expect(e.tick(47.9), 47.9, 0, 0)
		e.expect(e.tick(48), 48, 2, 0) // 80 % of 60 min: a and b, not c (answered)
		warnings := e.rec.take(EventSLAWarning)
		want := []string{
			"sla.warning@issue:" + fmt.Sprint(a), "sla.warning@channel:" + fmt.Sprint(e.sms.ID),
			"sla.warning@issue:" + fmt.Sprint(b), "sla.warning@user:" + fmt.Sprint(e.alice),
		}
		if got := topicsOf(warnings); !sameSet(got, want) {
			t.Errorf("warnings %v; want %v", got, want)
		}
		e.expect(e.tick(50), 50, 0, 0) // once only

		e.reply(55, b, e.alice, "sent") // b answered in time
		e.expect(e.tick(59.9), 59.9, 0, 0)
		e.expect(e.tick(60), 60, 0, 1) // a breaches its first response
		breaches := e.rec.take(EventSLABreached)
		want = []string{"sla_breached@issue:" + fmt.Sprint(a), "sla_breached@channel:" + fmt.Sprint(e.sms.ID)}
		if got := topicsOf(breaches); !sameSet(got, want) {
			t.Fatalf("breach events %v; want %v", got, want)
		}
		d := eventData(t, breaches[0])
		if d["issue_id"] != float64(a) || d["kind"] != SLAFirstResponse || d["assignee_id"] != nil || d["channel_id"] != float64(e.sms.ID) {
			t.Errorf("breach data %v; want issue_id %d, kind first_response, assignee_id null, channel_id %d", d, a, e.sms.ID)
		}
		msgs, _, err := e.ch.Messages(e.ctx, e.alerts.ID, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 {
			t.Fatalf("alert channel has %d messages; want 1", len(msgs))
		}
		wantText := fmt.Sprintf("SLA breached: first response on issue #%d (+15551230001, due 2026-03-02 10:00 UTC, target 1 h, unassigned)", a)
		if m := msgs[0]; m.Body != wantText || m.AuthorID != nil || m.IssueID == nil || *m.IssueID != a {
			t.Errorf("alert %q author %v issue %v; want %q by nobody about issue %d", m.Body, m.AuthorID, m.IssueID, wantText, a)
		}
		_, activity, err := e.svc.Detail(e.ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if last := activity[len(activity)-1]; last.Action != "sla_breached" || last.ActorID != nil {
			t.Errorf("last activity %s by %v; want sla_breached by nobody", last.Action, last.ActorID)
		}

		// A restart (a new engine, same lease holder name or not) fires nothing again.
		e.expect(e.tick(61), 61, 0, 0)
		e.engine = e.newEngine("node-a")
		e.expect(e.tick(62), 62, 0, 0)

		// Resolution: 80 % of 4 h is 192 min; all three are still open.
		e.expect(e.tick(191.9), 191.9, 0, 0)
		e.expect(e.tick(192), 192, 3, 0)
		e.rec.take()
		e.resolve(200, c)
		e.expect(e.tick(240), 240, 0, 2) // a and b; c was resolved in time
		breaches = e.rec.take(EventSLABreached)
		want = []string{
			"sla_breached@issue:" + fmt.Sprint(a), "sla_breached@channel:" + fmt.Sprint(e.sms.ID),
			"sla_breached@issue:" + fmt.Sprint(b), "sla_breached@user:" + fmt.Sprint(e.alice),
		}
		if got := topicsOf(breaches); !sameSet(got, want) {
			t.Errorf("breach events %v; want %v", got, want)
		}
		for _, ev := range breaches {
			if d := eventData(t, ev); d["issue_id"] == float64(b) && (d["assignee_id"] != float64(e.alice) || d["kind"] != SLAResolution) {
				t.Errorf("breach data of b %v; want assignee_id %d, kind resolution", d, e.alice)
			}
		}
		msgs, _, _ = e.ch.Messages(e.ctx, e.alerts.ID, 0, 10)
		if len(msgs) != 3 || !strings.Contains(msgs[2].Body, "assigned to Alice") && !strings.Contains(msgs[1].Body, "assigned to Alice") {
			t.Errorf("alerts %d; want 3, one naming Alice", len(msgs))
		}
		e.expect(e.tick(10000), 10000, 0, 0)

		views := map[int64]*IssueSLA{a: e.issueSLA(a), b: e.issueSLA(b), c: e.issueSLA(c)}
		for id, want := range map[int64][2]string{a: {"breached", "breached"}, b: {"met", "breached"}, c: {"met", "met"}} {
			v := views[id]
			if v == nil || v.FirstResponse.State != want[0] || v.Resolution.State != want[1] {
				t.Errorf("issue %d states %+v %+v; want %v", id, v.FirstResponse, v.Resolution, want)
			}
		}
		if bt := views[a].FirstResponse.BreachedAt; bt == nil || !bt.Equal(slaAt(60)) {
			t.Errorf("breached_at %v; want the due time %s", bt, slaAt(60))
		}
	})
}

// Pause while waiting: an agent's reply that asks a question stops the clocks until the
// customer answers; without the policy they run on.
func TestSLAPauseWhileWaiting(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newSLAEnv(t, db)
		e.policy(e.sms, 30, 120, true, 50)
		e.policy(e.mail, 30, 120, false, 50)
		paused := e.text(0, "+15551230001", "Broken screen")
		running := e.mailIn(0, "ann@example.com", "Broken screen")
		for _, id := range []int64{paused, running} {
			e.reply(10, id, e.alice, "delivered") // waits on the customer from minute 10
		}
		e.expect(e.tick(11), 11, 0, 0)
		if v := e.issueSLA(paused); v.Resolution.State != "paused" || !v.WaitingOnCustomer {
			t.Errorf("while waiting: %+v waiting %v; want paused", v.Resolution, v.WaitingOnCustomer)
		}
		if v := e.issueSLA(running); v.Resolution.State != "running" || !v.WaitingOnCustomer {
			t.Errorf("no pause policy: %+v waiting %v; want running", v.Resolution, v.WaitingOnCustomer)
		}
		e.expect(e.tick(60), 60, 1, 0) // the unpaused one reaches 50 % of 2 h
		e.text(70, "+15551230001", "Here is the photo")
		e.mailIn(70, "ann@example.com", "Here is the photo")
		// The paused one ran 10 min, paused 60: warning at 60 min of running, minute 120;
		// breach at minute 180. The other breaches at minute 120.
		e.expect(e.tick(119.9), 119.9, 0, 0)
		e.rec.take()
		e.expect(e.tick(120), 120, 1, 1)
		for _, ev := range e.rec.take(EventSLAWarning, EventSLABreached) {
			id := int64(eventData(t, ev)["issue_id"].(float64))
			if (ev.Type == EventSLAWarning) != (id == paused) {
				t.Errorf("%s on issue %d at minute 120", ev.Type, id)
			}
		}
		v := e.issueSLA(paused)
		if v.PausedSeconds != 3600 || v.Resolution.ElapsedSeconds != 3600 || !v.Resolution.DueAt.Equal(slaAt(180)) {
			t.Errorf("paused %d s, elapsed %d s, due %s; want 3600, 3600, minute 180", v.PausedSeconds, v.Resolution.ElapsedSeconds, v.Resolution.DueAt)
		}
		e.expect(e.tick(179.9), 179.9, 0, 0)
		e.expect(e.tick(180), 180, 0, 1)
	})
}

// Resolved time does not count: a customer who reopens an issue resumes its clocks where
// they stopped, and the engine notes the resolved period whatever the ticks missed.
func TestSLAResolvedPausesAndReopenResumes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newSLAEnv(t, db)
		e.policy(e.sms, 60, 120, false, 90)
		id := e.text(0, "+15551230001", "Hello")
		e.tick(1)
		e.resolve(30, id) // resolved without a reply, at minute 30
		e.expect(e.tick(31), 31, 0, 0)
		e.expect(e.tick(1000), 1000, 0, 0)
		if v := e.issueSLA(id); v.FirstResponse.State != "paused" || v.Resolution.State != "met" {
			t.Errorf("resolved: %s/%s; want paused/met", v.FirstResponse.State, v.Resolution.State)
		}
		if reopened := e.text(1200, "+15551230001", "It broke again"); reopened != id {
			t.Fatalf("the message went to issue %d; want %d reopened", reopened, id)
		}
		// 30 minutes ran before: first response is due 30 min after the reopening (warn at
		// 90 % = 54 min: minute 1224), resolution 90 min after (warn at 108 min: 1278).
		e.expect(e.tick(1201), 1201, 0, 0)
		e.expect(e.tick(1223.9), 1223.9, 0, 0)
		e.expect(e.tick(1224), 1224, 1, 0)
		e.expect(e.tick(1230), 1230, 0, 1)
		e.expect(e.tick(1278), 1278, 1, 0)
		e.expect(e.tick(1290), 1290, 0, 1)
		v := e.issueSLA(id)
		if v.PausedSeconds != 1170*60 {
			t.Errorf("paused %d s; want %d", v.PausedSeconds, 1170*60)
		}

		// Reopened by an agent (no customer message): the period ends at the tick that
		// sees it, here at once.
		id2 := e.text(2000, "+15551230002", "Hi")
		e.tick(2000)
		e.resolve(2010, id2)
		e.tick(2011)
		if _, err := db.ExecContext(e.ctx, `UPDATE issues SET status = 'open', resolved_at = NULL, resolved_by = NULL WHERE id = $1`, id2); err != nil {
			t.Fatal(err)
		}
		e.expect(e.tick(2100), 2100, 0, 0)
		if v := e.issueSLA(id2); v.PausedSeconds != 90*60 || v.FirstResponse.State != "running" {
			t.Errorf("paused %d s, first response %s; want %d, running", v.PausedSeconds, v.FirstResponse.State, 90*60)
		}
		e.expect(e.tick(2143.9), 2143.9, 0, 0)
		e.expect(e.tick(2144), 2144, 1, 0) // 90 % of 60 min: 10 before, 44 after
		e.expect(e.tick(2149.9), 2149.9, 0, 0)
		e.expect(e.tick(2150), 2150, 0, 1) // 10 + 50 minutes of first-response clock

		// Reopened by the customer and resolved again between two ticks: the first period
		// ends at the customer's message, the next starts at the new resolved_at.
		id3 := e.text(3000, "+15551230003", "Hi")
		e.tick(3000)
		e.resolve(3010, id3)
		e.tick(3011)
		e.text(3100, "+15551230003", "Again")
		e.resolve(3105, id3)
		e.expect(e.tick(3106), 3106, 0, 0)
		if v := e.issueSLA(id3); v.FirstResponse.ElapsedSeconds != 15*60 || v.FirstResponse.State != "paused" {
			t.Errorf("elapsed %d s, %s; want %d, paused", v.FirstResponse.ElapsedSeconds, v.FirstResponse.State, 15*60)
		}
	})
}

// A breach that happened while no engine ran (the reply came late) is recorded without an
// alarm; policies apply to issues opened after them; a policy change does not move the
// due times of open issues; a takeover after the lease expires fires each breach once.
func TestSLALateBreachPolicyTimeAndTakeover(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newSLAEnv(t, db)
		before := e.text(-30, "+15551230009", "Before any policy")
		e.clock.set(slaAt(-1))
		e.policy(e.sms, 30, 60, false, 80)
		e.alertInto(e.alerts)
		late := e.text(0, "+15551230001", "Hello")
		other := e.text(0, "+15551230002", "Hello")
		e.tick(0)
		e.clock.set(slaAt(1))
		e.policy(e.sms, 600, 900, false, 80) // later change: open issues keep 30/60
		// Node a stops ticking (it died). The reply to `late` comes at 40, after its due
		// time; nobody looked in between.
		e.reply(40, late, e.alice, "delivered")
		standby := e.newEngine("node-b")
		if rep := e.tickWith(standby, 2); rep.Leader {
			t.Fatal("node b worked before a's lease expired")
		}
		e.rec.take()
		rep := e.tickWith(standby, 45) // a's lease expired at 5
		if !rep.Leader || rep.Breached != 1 {
			t.Fatalf("takeover tick: %+v; want leader, 1 breach (other's first response)", rep)
		}
		got := e.rec.take(EventSLABreached)
		if len(got) != 2 || eventData(t, got[0])["issue_id"] != float64(other) {
			t.Errorf("breach events %v; want 2, for issue %d only", topicsOf(got), other)
		}
		if v := e.issueSLA(late); v.FirstResponse.State != "breached" || v.FirstResponse.BreachedAt == nil {
			t.Errorf("late reply: %+v; want breached on record", v.FirstResponse)
		}
		if rep := e.tick(46); rep.Leader {
			t.Error("node a came back and worked while b holds the lease")
		}
		if rep := e.tickWith(standby, 60); rep.Breached != 2 {
			t.Errorf("at 60: %+v; want both resolutions breached (targets kept at 60 min)", rep)
		}
		if v := e.issueSLA(before); v != nil {
			t.Errorf("an issue opened before the policy has an SLA: %+v", v)
		}
		fresh := e.text(61, "+15551230003", "New")
		if v := e.issueSLA(fresh); v == nil || v.FirstResponse.TargetMinutes != 600 {
			t.Errorf("a new issue: %+v; want the new policy's 600 min", v)
		}
	})
}

// Each tick wakes snoozed issues through the configured Unsnooze, on the leader only.
func TestEngineUnsnoozesOnTheLeader(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newSLAEnv(t, db)
		var calls []time.Time
		stub := func(_ context.Context, now time.Time) (int, error) {
			calls = append(calls, now)
			return 2, nil
		}
		leader := NewEngine(e.svc, EngineConfig{Lease: lease.New(db, "sla", "node-a", time.Minute), Unsnooze: stub})
		follower := NewEngine(e.svc, EngineConfig{Lease: lease.New(db, "sla", "node-b", time.Minute), Unsnooze: stub})
		if rep := e.tickWith(leader, 0); rep.Unsnoozed != 2 {
			t.Errorf("leader: unsnoozed %d; want 2", rep.Unsnoozed)
		}
		if rep := e.tickWith(follower, 0.5); rep.Leader || rep.Unsnoozed != 0 {
			t.Errorf("follower: %+v; want no work", rep)
		}
		if len(calls) != 1 || !calls[0].Equal(slaT0) {
			t.Errorf("calls %v; want one, at %s", calls, slaT0)
		}
	})
}

// Run ticks at once, and gives the lease up when it stops so another node need not wait
// for the expiry.
func TestEngineRunReleasesTheLease(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	e := newSLAEnv(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	en := NewEngine(e.svc, EngineConfig{Lease: lease.New(db, "sla", "node-a", time.Minute), Interval: time.Hour})
	done := make(chan struct{})
	go func() {
		defer close(done)
		en.Run(ctx)
	}()
	deadline := time.After(10 * time.Second)
	for {
		holder, _, err := lease.Current(context.Background(), db, "sla")
		if err == nil && holder == "node-a" {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("Run never took the lease: %q %v", holder, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-done
	if _, _, err := lease.Current(context.Background(), db, "sla"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after Run: %v; want the lease released", err)
	}
}
