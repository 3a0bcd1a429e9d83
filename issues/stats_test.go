package issues

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		vals      []float64
		p, want   float64
		whatIsThe string
	}{
		{[]float64{7}, 0.5, 7, "median of one"},
		{[]float64{7}, 0.9, 7, "p90 of one"},
		{[]float64{1, 2}, 0.5, 1.5, "median of two"},
		{[]float64{1, 2}, 0.9, 1.9, "p90 of two"},
		{[]float64{1, 2, 3}, 0.5, 2, "median of three"},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5.5, "median of 1..10"},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9, 9.1, "p90 of 1..10"},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 30}, 0.9, 10, "p90 of 11 values"},
		{[]float64{1, 2, 3}, 1, 3, "max"},
		{[]float64{1, 2, 3}, 0, 1, "min"},
	} {
		if got := Percentile(tc.vals, tc.p); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: got %v; want %v", tc.whatIsThe, got, tc.want)
		}
	}
}

// checkFigure compares a figure with an expected count, median and p90 in minutes.
func checkFigure(t *testing.T, what string, f Figure, count int, medianMin, p90Min float64) {
	t.Helper()
	if f.Count != count {
		t.Errorf("%s: count %d; want %d", what, f.Count, count)
		return
	}
	if count == 0 {
		if f.MedianSeconds != nil || f.P90Seconds != nil {
			t.Errorf("%s: median %v p90 %v; want null", what, f.MedianSeconds, f.P90Seconds)
		}
		return
	}
	if f.MedianSeconds == nil || f.P90Seconds == nil ||
		math.Abs(*f.MedianSeconds-medianMin*60) > 1e-6 || math.Abs(*f.P90Seconds-p90Min*60) > 1e-6 {
		t.Errorf("%s: median %v s, p90 %v s; want %v s, %v s", what, deref(f.MedianSeconds), deref(f.P90Seconds), medianMin*60, p90Min*60)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// A crafted data set whose medians and p90s are known.
func TestStats(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newSLAEnv(t, db)
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.ExecContext(e.ctx, q, args...); err != nil {
				t.Fatal(err)
			}
		}
		// Before the range: excluded from figures, counted as open and unassigned now.
		old := e.text(-60, "+15559990000", "old")
		e.reply(-60+100, old, e.alice, "delivered")

		// SMS: ten issues, first responses after 1..10 minutes; Alice answered 1..5 (and
		// has them), Bob answered 6..10 (unassigned).
		var sms []int64
		for k := 1; k <= 10; k++ {
			id := e.text(float64(k), fmt.Sprintf("+1555123%04d", k), "hello")
			sms = append(sms, id)
			author := e.alice
			if k > 5 {
				author = e.bob
			} else {
				e.assign(float64(k), id, e.alice)
			}
			e.reply(float64(2*k), id, author, "delivered")
		}
		// Email: resolved after 1 h and 2 h by Alice and 4 h by Bob; one of them contacted by
		// phone after 30 min (no reply), assigned to Bob.
		for i, hours := range []float64{1, 2, 4} {
			id := e.mailIn(100, fmt.Sprintf("c%d@example.com", i), "help")
			resolver := e.alice
			if hours == 4 {
				resolver = e.bob
				e.assign(100, id, e.bob)
				exec(`UPDATE issues SET first_response_at = $1 WHERE id = $2`, slaAt(130), id)
			}
			exec(`UPDATE issues SET status = 'resolved', resolved_by = $1, resolved_at = $2 WHERE id = $3`,
				resolver, slaAt(100+hours*60), id)
		}
		exec(`UPDATE issues SET sla_resolution_breached_at = $1 WHERE id IN ($2, $3)`, slaAt(500), sms[0], sms[9])

		st, err := e.svc.Stats(e.ctx, StatsQuery{From: slaT0, To: slaT0.Add(24 * time.Hour), Channels: []int64{e.sms.ID, e.mail.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if st.Issues != 13 {
			t.Errorf("issues %d; want 13", st.Issues)
		}
		// First responses: 1..10 min and 30 min.
		checkFigure(t, "overall first response", st.Overall.FirstResponse, 11, 6, 10)
		checkFigure(t, "overall resolution", st.Overall.Resolution, 3, 120, 216)
		if len(st.Agents) != 2 || st.Agents[0].AgentID != e.alice || st.Agents[1].AgentID != e.bob {
			t.Fatalf("agents %+v; want Alice and Bob", st.Agents)
		}
		if st.Agents[0].Name != "Alice" {
			t.Errorf("name %q; want Alice", st.Agents[0].Name)
		}
		checkFigure(t, "Alice first response", st.Agents[0].FirstResponse, 5, 3, 4.6)
		checkFigure(t, "Alice resolution", st.Agents[0].Resolution, 2, 90, 114)
		checkFigure(t, "Bob first response", st.Agents[1].FirstResponse, 6, 8.5, 20)
		checkFigure(t, "Bob resolution", st.Agents[1].Resolution, 1, 240, 240)
		if len(st.Channels) != 2 || st.Channels[0].ChannelID != e.sms.ID || st.Channels[0].Issues != 10 || st.Channels[1].Issues != 3 {
			t.Fatalf("channels %+v; want sms with 10 issues, mail with 3", st.Channels)
		}
		checkFigure(t, "sms first response", st.Channels[0].FirstResponse, 10, 5.5, 9.1)
		checkFigure(t, "sms resolution", st.Channels[0].Resolution, 0, 0, 0)
		checkFigure(t, "mail first response", st.Channels[1].FirstResponse, 1, 30, 30)
		checkFigure(t, "mail resolution", st.Channels[1].Resolution, 3, 120, 216)
		if want := (Counts{Open: 11, Unassigned: 6, Breached: 2}); st.Counts != want {
			t.Errorf("counts %+v; want %+v", st.Counts, want)
		}

		// One channel.
		st, err = e.svc.Stats(e.ctx, StatsQuery{From: slaT0, To: slaT0.Add(24 * time.Hour), Channels: []int64{e.sms.ID, e.mail.ID},
			ChannelID: e.mail.ID})
		if err != nil {
			t.Fatal(err)
		}
		if st.Issues != 3 || len(st.Channels) != 1 || st.Counts != (Counts{}) {
			t.Errorf("mail only: %d issues, %d channels, counts %+v; want 3, 1, zero", st.Issues, len(st.Channels), st.Counts)
		}
		checkFigure(t, "mail only, overall resolution", st.Overall.Resolution, 3, 120, 216)

		// A channel the reader may not see counts nothing; the range end is exclusive.
		st, err = e.svc.Stats(e.ctx, StatsQuery{From: slaT0, To: slaAt(1), Channels: []int64{e.sms.ID}, ChannelID: e.mail.ID})
		if err != nil || st.Issues != 0 {
			t.Errorf("invisible channel: %+v %v; want nothing", st, err)
		}
		st, err = e.svc.Stats(e.ctx, StatsQuery{From: slaT0, To: slaAt(1), Channels: []int64{e.sms.ID}})
		if err != nil || st.Issues != 0 {
			t.Errorf("[t0, minute 1): %d issues %v; want 0 (the first opened at minute 1)", st.Issues, err)
		}
	})
}
