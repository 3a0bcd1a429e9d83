package notify

import (
	"fmt"
	"testing"
	"time"
)

// TestDecideMatrix covers every frequency × logged in/out × quiet on/off × (no mention,
// mention held, mention let through), for in-app and email alike. The expectations are
// written out, row by row, rather than computed.
func TestDecideMatrix(t *testing.T) {
	const (
		plain   = iota // not a mention
		held           // a mention, quiet hours do not let mentions through
		through        // a mention, allow_mentions
	)
	type row struct {
		f        Frequency
		loggedIn bool
		quiet    bool
		mention  int
		deliver  bool // the medium gets it (now or after quiet hours)
		hold     bool
	}
	rows := []row{
		// always: delivered whatever the presence; held in quiet hours unless a mention may pass
		{Always, false, false, plain, true, false},
		{Always, false, false, held, true, false},
		{Always, false, false, through, true, false},
		{Always, false, true, plain, true, true},
		{Always, false, true, held, true, true},
		{Always, false, true, through, true, false},
		{Always, true, false, plain, true, false},
		{Always, true, false, held, true, false},
		{Always, true, false, through, true, false},
		{Always, true, true, plain, true, true},
		{Always, true, true, held, true, true},
		{Always, true, true, through, true, false},
		// when_logged_out: only while logged out
		{WhenLoggedOut, false, false, plain, true, false},
		{WhenLoggedOut, false, false, held, true, false},
		{WhenLoggedOut, false, false, through, true, false},
		{WhenLoggedOut, false, true, plain, true, true},
		{WhenLoggedOut, false, true, held, true, true},
		{WhenLoggedOut, false, true, through, true, false},
		{WhenLoggedOut, true, false, plain, false, false},
		{WhenLoggedOut, true, false, held, false, false},
		{WhenLoggedOut, true, false, through, false, false},
		{WhenLoggedOut, true, true, plain, false, false},
		{WhenLoggedOut, true, true, held, false, false},
		{WhenLoggedOut, true, true, through, false, false},
		// never: nothing, and nothing to hold
		{Never, false, false, plain, false, false},
		{Never, false, false, held, false, false},
		{Never, false, false, through, false, false},
		{Never, false, true, plain, false, false},
		{Never, false, true, held, false, false},
		{Never, false, true, through, false, false},
		{Never, true, false, plain, false, false},
		{Never, true, false, held, false, false},
		{Never, true, false, through, false, false},
		{Never, true, true, plain, false, false},
		{Never, true, true, held, false, false},
		{Never, true, true, through, false, false},
	}
	chime := "chime"
	for _, r := range rows {
		in := Input{LoggedIn: r.loggedIn, Quiet: r.quiet, Mention: r.mention != plain, AllowMentions: r.mention == through}
		name := fmt.Sprintf("%s/loggedIn=%v/quiet=%v/mention=%d", r.f, r.loggedIn, r.quiet, r.mention)
		t.Run(name, func(t *testing.T) {
			// The medium under test alone (the other never), each way round, with a sound.
			for _, medium := range []string{"in_app", "email"} {
				in := in
				in.Pref = EventPref{InApp: Never, Email: Never, Sound: &chime}
				if medium == "in_app" {
					in.Pref.InApp = r.f
				} else {
					in.Pref.Email = r.f
				}
				d := Decide(in)
				got := d.InApp
				other := d.Email
				if medium == "email" {
					got, other = d.Email, d.InApp
				}
				if got != r.deliver || other {
					t.Errorf("%s: got %+v; want delivered=%v on %s only", medium, d, r.deliver, medium)
				}
				if d.Hold != r.hold {
					t.Errorf("%s: hold %v; want %v", medium, d.Hold, r.hold)
				}
				// The sound plays with an in-app notification that is not held, never alone.
				wantSound := medium == "in_app" && r.deliver && !r.hold
				if (d.Sound != nil) != wantSound {
					t.Errorf("%s: sound %v; want playing=%v", medium, d.Sound, wantSound)
				}
			}
			// Both media on the same frequency, without a sound: no sound ever.
			in.Pref = EventPref{InApp: r.f, Email: r.f}
			d := Decide(in)
			if d.InApp != r.deliver || d.Email != r.deliver || d.Hold != r.hold || d.Sound != nil {
				t.Errorf("both: got %+v; want in_app=email=%v hold=%v and no sound", d, r.deliver, r.hold)
			}
		})
	}
}

func TestQuietHoursActive(t *testing.T) {
	berlin := QuietHours{Enabled: true, Start: "22:00", End: "07:00", TimeZone: "Europe/Berlin"}
	weekdays := berlin
	weekdays.Days = []int{1, 2, 3, 4, 5} // nights starting Monday to Friday
	office := QuietHours{Enabled: true, Start: "12:00", End: "13:00", TimeZone: "America/New_York"}
	allDay := QuietHours{Enabled: true, Start: "00:00", End: "00:00", TimeZone: "UTC", Days: []int{0}}
	off := berlin
	off.Enabled = false
	badZone := berlin
	badZone.TimeZone = "Nowhere/Never"
	utc := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	for _, tc := range []struct {
		name string
		q    QuietHours
		at   string
		want bool
	}{
		// 2026-03-04 is a Wednesday; Berlin is UTC+1 in winter, UTC+2 from 29 March.
		{"before start", berlin, "2026-03-04T20:59:00Z", false},
		{"at start", berlin, "2026-03-04T21:00:00Z", true},
		{"after midnight", berlin, "2026-03-05T03:00:00Z", true},
		{"just before end", berlin, "2026-03-05T05:59:00Z", true},
		{"at end", berlin, "2026-03-05T06:00:00Z", false},
		{"summer time moves it", berlin, "2026-07-01T20:30:00Z", true}, // 22:30 CEST
		{"summer end", berlin, "2026-07-02T05:00:00Z", false},          // 07:00 CEST
		{"friday night runs into saturday", weekdays, "2026-03-07T05:00:00Z", true},
		{"saturday night is not quiet", weekdays, "2026-03-07T22:00:00Z", false},
		{"sunday night is not quiet", weekdays, "2026-03-01T22:30:00Z", false}, // Sunday 23:30: starts Sunday, not a listed day
		{"monday morning after sunday", weekdays, "2026-03-02T05:00:00Z", false},
		{"monday night", weekdays, "2026-03-02T22:00:00Z", true},
		{"same-day span inside", office, "2026-03-04T17:30:00Z", true}, // 12:30 EST
		{"same-day span outside", office, "2026-03-04T18:00:00Z", false},
		{"whole day", allDay, "2026-03-01T13:00:00Z", true},
		{"whole day, other day", allDay, "2026-03-02T13:00:00Z", false},
		{"disabled", off, "2026-03-05T03:00:00Z", false},
		{"unknown zone never holds", badZone, "2026-03-05T03:00:00Z", false},
	} {
		if got := tc.q.Active(utc(tc.at)); got != tc.want {
			t.Errorf("%s: Active(%s) = %v; want %v", tc.name, tc.at, got, tc.want)
		}
	}
}
