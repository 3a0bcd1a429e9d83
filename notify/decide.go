package notify

import (
	"slices"
	"time"
)

// Input is everything the decision for one recipient depends on.
type Input struct {
	Pref     EventPref // the resolved preference of the event (and channel) for this user
	LoggedIn bool      // a live connection somewhere in the cluster, and not idle
	Quiet    bool      // the user's quiet hours are on now
	// Mention: the event is a mention (mentioned, team_mentioned); AllowMentions: the
	// user's quiet hours let mentions through.
	Mention       bool
	AllowMentions bool
}

// Decision is what a recipient gets.
type Decision struct {
	InApp bool    // store it in the inbox and push notification.created
	Email bool    // mail it (now, or when Hold ends)
	Sound *string // the sound to play now; nil: none (or held)
	// Hold: quiet hours. The in-app notification is stored and counted, but its sound is
	// held and its email waits until they end.
	Hold bool
}

// Delivers reports whether the decision sends anything at all.
func (d Decision) Delivers() bool { return d.InApp || d.Email }

// reaches answers one frequency for a user's presence.
func reaches(f Frequency, loggedIn bool) bool {
	switch f {
	case Always:
		return true
	case WhenLoggedOut:
		return !loggedIn
	}
	return false
}

// Decide is the routing rule for one recipient of one event, and the only place it is
// written down:
//
//   - in-app and email each follow their frequency: always; when_logged_out only while the
//     user is logged out (no live connection anywhere, or idle); never.
//   - the sound plays with an in-app notification only (a sound without a notification
//     would be a sound without a reason); nil preference sound: none.
//   - during quiet hours (unless the event is a mention and the user lets mentions
//     through) the decision holds: in-app is still stored and counted, the sound is held,
//     and the email waits for the end of the quiet period.
func Decide(in Input) Decision {
	d := Decision{InApp: reaches(in.Pref.InApp, in.LoggedIn), Email: reaches(in.Pref.Email, in.LoggedIn)}
	if !d.Delivers() {
		return d
	}
	d.Hold = in.Quiet && !(in.Mention && in.AllowMentions)
	if d.InApp && !d.Hold && in.Pref.Sound != nil {
		s := *in.Pref.Sound
		d.Sound = &s
	}
	return d
}

// Active reports whether quiet hours are on at t. Start and End are wall-clock times in
// TimeZone, so the schedule follows daylight saving. End before Start spans midnight: the
// period belongs to the day it starts on (with Days set, a Friday-night period runs into
// Saturday morning). Start equal to End is a whole day. A schedule that cannot be read
// (a time zone this machine does not know any more) is never active: notifications are
// not held by a schedule nobody can see.
func (q QuietHours) Active(t time.Time) bool {
	if !q.Enabled {
		return false
	}
	loc, err := time.LoadLocation(q.TimeZone)
	if err != nil {
		return false
	}
	start, err1 := clockMinutes(q.Start)
	end, err2 := clockMinutes(q.End)
	if err1 != nil || err2 != nil {
		return false
	}
	lt := t.In(loc)
	now := lt.Hour()*60 + lt.Minute()
	today := int(lt.Weekday())
	yesterday := (today + 6) % 7
	on := func(day int) bool { return len(q.Days) == 0 || slices.Contains(q.Days, day) }
	switch {
	case start == end:
		return on(today)
	case start < end:
		return on(today) && now >= start && now < end
	default: // over midnight
		return (on(today) && now >= start) || (on(yesterday) && now < end)
	}
}

// isMention reports whether an event is a mention, for AllowMentions.
func isMention(event string) bool { return event == EventMentioned || event == EventTeamMentioned }
