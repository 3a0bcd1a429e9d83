package issues

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

func TestAutoClose(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newSLAEnv(t, db)
		const day = 24 * 60.0
		resolved := e.text(0, "+15551230001", "Thanks!")
		reopened := e.text(0, "+15551230002", "Thanks!")
		open := e.text(0, "+15551230003", "Help")
		e.resolve(10, resolved)
		e.resolve(10, reopened)
		e.text(3*day, "+15551230002", "Actually, one more thing") // reopens it
		e.resolve(3*day+10, reopened)                             // resolved again: its four days start over
		e.rec.take()

		if rep := e.tick(4*day + 9.9); rep.Closed != 0 {
			t.Fatalf("closed %d just before four days; want 0", rep.Closed)
		}
		if rep := e.tick(4*day + 10); rep.Closed != 1 {
			t.Fatalf("closed %d at four days (the default); want 1", rep.Closed)
		}
		got, err := e.svc.Get(e.ctx, resolved)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != Closed || got.ClosedAt == nil || !got.ClosedAt.Equal(slaAt(4*day+10)) {
			t.Errorf("status %s closed_at %v; want closed at %s", got.Status, got.ClosedAt, slaAt(4*day+10))
		}
		_, activity, err := e.svc.Detail(e.ctx, resolved)
		if err != nil {
			t.Fatal(err)
		}
		last := activity[len(activity)-1]
		if last.Action != "closed" || last.ActorID != nil || string(last.Details) != `{"reason":"auto_close"}` {
			t.Errorf("activity %s by %v %s; want closed by nobody {\"reason\":\"auto_close\"}", last.Action, last.ActorID, last.Details)
		}
		evs := e.rec.take("issue.updated")
		want := []string{"issue.updated@channel:" + fmt.Sprint(e.sms.ID), "issue.updated@issue:" + fmt.Sprint(resolved)}
		if got := topicsOf(evs); !sameSet(got, want) {
			t.Fatalf("events %v; want %v", got, want)
		}
		var data struct {
			Issue   Issue  `json:"issue"`
			Action  string `json:"action"`
			ActorID *int64 `json:"actor_id"`
		}
		if err := json.Unmarshal(evs[0].Data, &data); err != nil {
			t.Fatal(err)
		}
		if data.Issue.ID != resolved || data.Issue.Status != Closed || data.Action != "closed" || data.ActorID != nil {
			t.Errorf("event data %+v; want the closed issue, action closed, no actor", data)
		}

		if rep := e.tick(5 * day); rep.Closed != 0 {
			t.Errorf("closed %d again; want 0", rep.Closed)
		}
		if rep := e.tick(7*day + 10); rep.Closed != 1 {
			t.Errorf("closed %d four days after the second resolve; want 1", rep.Closed)
		}
		if got, _ := e.svc.Get(e.ctx, open); got.Status != Open {
			t.Errorf("an open issue is %s; want open", got.Status)
		}

		// The setting: off, then one hour.
		later := e.text(8*day, "+15551230004", "OK")
		e.resolve(8*day, later)
		if _, err := e.svc.SetSLASettings(e.ctx, SLASettings{AutoCloseMinutes: 0}); err != nil {
			t.Fatal(err)
		}
		if rep := e.tick(30 * day); rep.Closed != 0 {
			t.Errorf("auto-close off: closed %d; want 0", rep.Closed)
		}
		if _, err := e.svc.SetSLASettings(e.ctx, SLASettings{AutoCloseMinutes: 60}); err != nil {
			t.Fatal(err)
		}
		if rep := e.tick(30*day + 1); rep.Closed != 1 {
			t.Errorf("one hour: closed %d; want 1", rep.Closed)
		}
		for _, bad := range []int{-1, 59, MaxAutoCloseMinutes + 1} {
			if _, err := e.svc.SetSLASettings(e.ctx, SLASettings{AutoCloseMinutes: bad}); err == nil {
				t.Errorf("auto_close_minutes %d accepted", bad)
			}
		}
	})
}

// Only the lease holder closes, and a closed issue is closed once even when two engines
// run the same step (the update is conditional).
func TestAutoCloseOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newSLAEnv(t, db)
		id := e.text(0, "+15551230001", "Thanks!")
		e.resolve(1, id)
		standby := e.newEngine("node-b")
		e.tick(4*24*60 - 1)
		if rep := e.tickWith(standby, 4*24*60); rep.Leader {
			t.Fatal("node b worked while a held the lease")
		}
		// a stops; its lease expires and b takes over.
		if rep := e.tickWith(standby, 4*24*60+6); !rep.Leader || rep.Closed != 1 {
			t.Fatalf("takeover: %+v; want leader and one closed", rep)
		}
		settings, err := e.svc.SLASettings(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The same step run again (a stalled former holder) closes nothing.
		n, err := e.engine.autoClose(e.ctx, slaAt(4*24*60+7), settings)
		if err != nil || n != 0 {
			t.Errorf("second close: %d, %v; want 0", n, err)
		}
		_, activity, _ := e.svc.Detail(e.ctx, id)
		closes := 0
		for _, a := range activity {
			if a.Action == "closed" {
				closes++
			}
		}
		if closes != 1 {
			t.Errorf("%d closed entries; want 1", closes)
		}
	})
}
