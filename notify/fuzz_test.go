package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/internal/httpx"
)

// The preferences documents of PUT /api/preferences and /api/org/preferences, and the
// quiet-hours schedule inside them, are outside input. These fuzz targets run the same
// steps the handlers run (httpx.DecodeJSON, checkPatch, mergeDoc, parseDoc, resolve)
// without a database, so each execution takes microseconds and depends on its input only.

// In the fuzzed world the user belongs to channels 1–3 and channels 1–9 exist.
var (
	fuzzMyChannels = []int64{1, 2, 3}
	fuzzUserCheck  = func(_ context.Context, id int64) error {
		if id < 1 || id > 3 {
			return badValue("channel %d: no such channel, or you are not a member of it", id)
		}
		return nil
	}
	fuzzOrgCheck = func(_ context.Context, id int64) error {
		if id < 1 || id > 9 {
			return badValue("channel %d: no such channel", id)
		}
		return nil
	}
)

// hhmm is the only spelling of a time the API documents ("start"/"end": HH:MM).
var hhmm = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// putDoc runs one PUT of body against the stored document raw, as SetPreferences
// (forUser) or SetOrgPreferences does, and returns the new stored document; ok is false
// when the body was refused, which must be a clear 400.
func putDoc(t *testing.T, raw string, body []byte, forUser bool) (string, bool) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPut, "/api/preferences", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	var patch map[string]any
	if err := httpx.DecodeJSON(httptest.NewRecorder(), req, &patch); err != nil {
		clearRefusal(t, body, err)
		return raw, false
	}
	check := fuzzOrgCheck
	if forUser {
		check = fuzzUserCheck
	}
	if err := checkPatch(context.Background(), patch, forUser, check); err != nil {
		clearRefusal(t, body, err)
		return raw, false
	}
	merged, err := mergeDoc(raw, patch)
	if err != nil {
		t.Fatalf("checkPatch accepted %s but the merge failed: %v", body, err)
	}
	again, err := mergeDoc(merged, patch)
	if err != nil || again != merged {
		t.Fatalf("the same PUT twice is not idempotent:\n once %s\ntwice %s (%v)\nbody %s", merged, again, err, body)
	}
	checkStored(t, merged, forUser, body)
	return merged, true
}

// clearRefusal: a refused body is a 400 with a message. (Which bad field a body with
// several names depends on map order, so the message's text is checked by
// FuzzRefusalNamesTheBadValue, one bad field at a time.)
func clearRefusal(t *testing.T, body []byte, err error) *httpx.Error {
	t.Helper()
	var he *httpx.Error
	if !errors.As(err, &he) || he.Status != http.StatusBadRequest || he.Message == "" {
		t.Fatalf("refusal of %s is %T %v; want a 400 *httpx.Error with a message", body, err, err)
	}
	return he
}

// checkStored: a stored document holds only values the API accepts.
func checkStored(t *testing.T, raw string, forUser bool, body []byte) {
	t.Helper()
	d, _, err := parseDoc(raw)
	if err != nil {
		t.Fatalf("stored document %s does not parse: %v (body %s)", raw, err, body)
	}
	ev := func(where string, e *EventDoc) {
		if e == nil {
			t.Fatalf("stored %s is null in %s (body %s)", where, raw, body)
		}
		for _, f := range []*Frequency{e.InApp, e.Email} {
			if f != nil && !f.valid() {
				t.Fatalf("stored %s has frequency %q (body %s)", where, *f, body)
			}
		}
		if e.Sound != nil && *e.Sound != noSound && !slices.Contains(Sounds, *e.Sound) {
			t.Fatalf("stored %s has sound %q (body %s)", where, *e.Sound, body)
		}
	}
	for name, e := range d.Events {
		if !slices.Contains(Events, name) {
			t.Fatalf("stored event %q (body %s)", name, body)
		}
		ev(name, e)
	}
	for key, c := range d.Channels {
		id, err := strconv.ParseInt(key, 10, 64)
		if err != nil || strconv.FormatInt(id, 10) != key || (forUser && fuzzUserCheck(context.Background(), id) != nil) ||
			(!forUser && fuzzOrgCheck(context.Background(), id) != nil) || c == nil {
			t.Fatalf("stored channel %q: %v (body %s)", key, c, body)
		}
		if c.CustomerMessage != nil {
			ev("channels."+key+".customer_message", c.CustomerMessage)
		}
		if c.IssueCreated != nil {
			ev("channels."+key+".issue_created", c.IssueCreated)
		}
		if c.Sound != nil && *c.Sound != noSound && !slices.Contains(Sounds, *c.Sound) {
			t.Fatalf("stored channel %s sound %q (body %s)", key, *c.Sound, body)
		}
	}
	if d.Quiet != nil && !forUser {
		t.Fatalf("organisation document with quiet hours %s (body %s)", raw, body)
	}
	q, _ := d.quiet()
	checkQuietValue(t, q, string(body))
}

// checkQuietValue: a resolved schedule is one the API documents.
func checkQuietValue(t *testing.T, q QuietHours, input string) {
	t.Helper()
	if !hhmm.MatchString(q.Start) || !hhmm.MatchString(q.End) {
		t.Fatalf("quiet hours %q–%q are not HH:MM times (input %q)", q.Start, q.End, input)
	}
	if q.TimeZone == "" || q.TimeZone == "Local" {
		t.Fatalf("quiet hours time zone %q (input %q)", q.TimeZone, input)
	}
	if _, err := time.LoadLocation(q.TimeZone); err != nil {
		t.Fatalf("quiet hours time zone %q does not load: %v (input %q)", q.TimeZone, err, input)
	}
	for _, d := range q.Days {
		if d < 0 || d > 6 {
			t.Fatalf("quiet hours day %d (input %q)", d, input)
		}
	}
}

// checkResolved: every resolved value is one the contract allows.
func checkResolved(t *testing.T, r *Resolved, forUser bool, input string) {
	t.Helper()
	pref := func(where string, p EventPref) {
		if !p.InApp.valid() || !p.Email.valid() || (p.Sound != nil && !slices.Contains(Sounds, *p.Sound)) {
			t.Fatalf("resolved %s = %+v (input %s)", where, p, input)
		}
	}
	if len(r.Events) != len(Events) {
		t.Fatalf("resolved %d events; want %d (input %s)", len(r.Events), len(Events), input)
	}
	for _, e := range Events {
		pref(e, r.Events[e])
	}
	for key, c := range r.Channels {
		pref("channels."+key+".customer_message", c.CustomerMessage)
		pref("channels."+key+".issue_created", c.IssueCreated)
		if c.Sound != nil && !slices.Contains(Sounds, *c.Sound) {
			t.Fatalf("resolved channel %s sound %q (input %s)", key, *c.Sound, input)
		}
	}
	if forUser != (r.QuietHours != nil) {
		t.Fatalf("resolved quiet hours %v for a user: %v (input %s)", r.QuietHours, forUser, input)
	}
	if r.QuietHours != nil {
		checkQuietValue(t, *r.QuietHours, input)
	}
}

// orgChannels are the rows of GET /api/org/preferences, as OrgPreferences lists them.
func orgChannels(org *Doc) []int64 {
	ids := slices.Clone(fuzzMyChannels)
	for key := range org.Channels {
		if id, err := strconv.ParseInt(key, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(ids)))
}

// valueDiff lists the values that differ between two resolved answers. Sources are left
// out: sending a GET answer back pins its values at the sender's level, so where they come
// from may change, but not what they are.
func valueDiff(a, b *Resolved) []string {
	var diff []string
	show := func(v any) string { j, _ := json.Marshal(v); return string(j) }
	for _, e := range Events {
		if x, y := show(a.Events[e]), show(b.Events[e]); x != y {
			diff = append(diff, "events."+e+": "+x+" → "+y)
		}
	}
	keys := slices.Sorted(maps.Keys(a.Channels))
	for k := range b.Channels {
		if _, ok := a.Channels[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		x, okx := a.Channels[k]
		y, oky := b.Channels[k]
		if sx, sy := show(x), show(y); okx != oky || sx != sy {
			diff = append(diff, "channels."+k+": "+sx+" → "+sy)
		}
	}
	if x, y := show(a.QuietHours), show(b.QuietHours); x != y {
		diff = append(diff, "quiet_hours: "+x+" → "+y)
	}
	return diff
}

func mustParse(t *testing.T, raw string) *Doc {
	t.Helper()
	d, _, err := parseDoc(raw)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// FuzzPreferencesDocument: an admin PUTs orgBody to /api/org/preferences and an agent
// PUTs userBody to /api/preferences. Each is refused with a clear 400 or stored as a
// document that validates; the resolved GET answers hold only contract values; and a GET
// answer PUT back as it is changes no value (the documented "a GET answer may be sent back
// as it is"), for the user and for the organisation.
func FuzzPreferencesDocument(f *testing.F) {
	for _, seed := range [][2]string{
		{`{}`, `{}`},
		{`null`, `[]`},
		{`{"events":{"assigned":{"email":"always","sound":"ping"}}}`, `{"events":{"assigned":{"in_app":"never","email":null,"sound":"chime"}}}`},
		{`{"channels":{"7":{"customer_message":{"in_app":"always"},"sound":"knock"}}}`, `{"channels":{"2":{"issue_created":{"email":"when_logged_out"},"sound":"none"},"3":null}}`},
		{`{"events":{"note":null},"channels":{"4":null}}`, `{"events":{"assigned":null},"channels":{"5":null},"quiet_hours":null}`},
		{`{"quiet_hours":{"enabled":true}}`, `{"quiet_hours":{"enabled":true,"start":"22:30","end":"06:00","time_zone":"Europe/Berlin","days":[1,5],"allow_mentions":true}}`},
		{`{"events":{"asigned":{}}}`, `{"events":{"assigned":{"in_app":"sometimes"}}}`},
		{`{"source":{"events":1},"sounds":7}`, `{"quiet_hours":{"days":[7,-1,1.5],"start":"25:00","time_zone":"Mars/Olympus"}}`},
		{`{"channels":{"01":{}}}`, `{"channels":{"99":{"sound":"bell"}},"colour":"red"}`},
		{`{"events":{"assigned":{"email":3}}}`, `{"quiet_hours":{"start":"22:00","end":"22:00","days":[]}}`},
		// An explicit silence under an organisation's sound: GET shows null (source user),
		// and that answer PUT back must keep the silence.
		{`{"events":{"assigned":{"sound":"chime"}},"channels":{"2":{"sound":"bell"}}}`,
			`{"events":{"assigned":{"sound":"none"}},"channels":{"2":{"sound":"none"}}}`},
	} {
		f.Add([]byte(seed[0]), []byte(seed[1]))
	}
	f.Fuzz(func(t *testing.T, orgBody, userBody []byte) {
		org, _ := putDoc(t, "{}", orgBody, false)
		user, _ := putDoc(t, "{}", userBody, true)
		input := "org " + strconv.Quote(string(orgBody)) + ", user " + strconv.Quote(string(userBody))
		orgDoc, userDoc := mustParse(t, org), mustParse(t, user)

		// The agent's GET, sent back as it is.
		got := resolve(userDoc, orgDoc, fuzzMyChannels, true)
		checkResolved(t, got, true, input)
		answer, _ := json.Marshal(got)
		user2, ok := putDoc(t, user, answer, true)
		if !ok {
			t.Fatalf("PUT /api/preferences refused its own GET answer %s (%s)", answer, input)
		}
		again := resolve(mustParse(t, user2), orgDoc, fuzzMyChannels, true)
		if d := valueDiff(got, again); len(d) > 0 {
			t.Fatalf("GET → PUT of the same → GET changed the user's preferences:\n%s\n(%s)", strings.Join(d, "\n"), input)
		}

		// The admin's GET of the organisation's defaults, sent back as it is.
		gotOrg := resolve(nil, orgDoc, orgChannels(orgDoc), false)
		checkResolved(t, gotOrg, false, input)
		answer, _ = json.Marshal(gotOrg)
		org2, ok := putDoc(t, org, answer, false)
		if !ok {
			t.Fatalf("PUT /api/org/preferences refused its own GET answer %s (%s)", answer, input)
		}
		orgDoc2 := mustParse(t, org2)
		againOrg := resolve(nil, orgDoc2, orgChannels(orgDoc2), false)
		if d := valueDiff(gotOrg, againOrg); len(d) > 0 {
			t.Fatalf("GET → PUT of the same → GET changed the organisation's defaults:\n%s\n(%s)", strings.Join(d, "\n"), input)
		}
	})
}

// FuzzQuietHours: the quiet_hours object of PUT /api/preferences (times, time zone, days)
// is refused with a clear 400 or accepted only in the documented form, reads back as sent,
// and its schedule behaves: start = end is the whole day, a period and its swap split
// the day between them, and days only narrow a schedule.
func FuzzQuietHours(f *testing.F) {
	for _, s := range []struct {
		start, end, tz string
		days           []byte
		unix           int64
	}{
		{"22:00", "07:00", "UTC", nil, 1772618400},                       // Wed 2026-03-04 10:00 UTC
		{"22:30", "06:00", "Europe/Berlin", []byte{2, 6}, 1774746000},    // around the March DST change
		{"09:00", "17:00", "America/New_York", []byte{1, 2, 3, 4, 5}, 0}, // weekdays
		{"00:00", "00:00", "Asia/Kathmandu", []byte{0}, 1700000000},
		{"23:59", "00:00", "Pacific/Chatham", []byte{7, 8, 255}, -1},
		{"7am", "25:00", "Mars/Olympus", nil, 1},
		{"+1:00", "-0:00", "Local", nil, 2},
		{"+1:00", "00:+5", "UTC", nil, 5}, // Atoi's signs are not HH:MM
		{"", "1:00", "", nil, 3},
		{"12:00", "13:00", "../../etc/passwd", nil, 4},
	} {
		f.Add(s.start, s.end, s.tz, s.days, true, s.unix)
	}
	f.Fuzz(func(t *testing.T, start, end, tz string, dayBytes []byte, allowMentions bool, unix int64) {
		if len(dayBytes) > 16 {
			dayBytes = dayBytes[:16]
		}
		days := make([]any, 0, len(dayBytes))
		for _, b := range dayBytes {
			days = append(days, float64(int(b)%10-1)) // -1 … 8: valid weekdays and neighbours
		}
		q := map[string]any{"enabled": true, "start": start, "end": end, "time_zone": tz, "allow_mentions": allowMentions}
		if dayBytes != nil {
			q["days"] = days
		}
		input := strconv.Quote(start) + "–" + strconv.Quote(end) + " in " + strconv.Quote(tz)
		body, err := json.Marshal(map[string]any{"quiet_hours": q})
		if err != nil {
			t.Fatal(err)
		}
		// Whatever was sent, reading a schedule never panics (a stored one may predate a
		// tzdata update).
		at := time.Unix(unix%(200*365*86400), 0) // within two centuries of 1970
		raw := QuietHours{Enabled: true, Start: start, End: end, TimeZone: tz}
		_ = raw.Active(at)

		stored, ok := putDoc(t, "{}", body, true)
		if !ok {
			return
		}
		got, src := mustParse(t, stored).quiet()
		// json.Marshal made invalid UTF-8 into U+FFFD, so compare with what was decoded.
		var sent struct {
			Q struct {
				Start, End string
				TimeZone   string `json:"time_zone"`
			} `json:"quiet_hours"`
		}
		_ = json.Unmarshal(body, &sent)
		if src != SourceUser || !got.Enabled || got.Start != sent.Q.Start || got.End != sent.Q.End ||
			got.TimeZone != sent.Q.TimeZone || got.AllowMentions != allowMentions || len(got.Days) != len(days) {
			t.Fatalf("quiet hours %s read back as %+v from %s", input, got, src)
		}

		s, _ := clockMinutes(got.Start)
		e, _ := clockMinutes(got.End)
		loc, _ := time.LoadLocation(got.TimeZone)
		lt := at.In(loc)
		now := lt.Hour()*60 + lt.Minute()
		every := got
		every.Days = nil
		swapped := every
		swapped.Start, swapped.End = got.End, got.Start
		allWeek := every
		allWeek.Days = []int{6, 5, 4, 3, 2, 1, 0}

		switch {
		case s == e && !every.Active(at):
			t.Fatalf("%s: start = end is the whole day, but not active at %s", input, lt)
		case s != e && every.Active(at) == swapped.Active(at):
			t.Fatalf("%s and its swap are both %v at %s; they split the day", input, every.Active(at), lt)
		case s < e && every.Active(at) != (now >= s && now < e):
			t.Fatalf("%s: active %v at %s", input, every.Active(at), lt)
		case allWeek.Active(at) != every.Active(at):
			t.Fatalf("%s: every weekday listed (%v) differs from none listed (%v) at %s", input, allWeek.Active(at), every.Active(at), lt)
		case got.Active(at) && !every.Active(at):
			t.Fatalf("%s on days %v is active at %s, but not on every day", input, got.Days, lt)
		case got.Active(at) && s < e && !slices.Contains(got.Days, int(lt.Weekday())) && len(got.Days) > 0:
			t.Fatalf("%s on days %v is active on %s", input, got.Days, lt.Weekday())
		}
		disabled := got
		disabled.Enabled = false
		if disabled.Active(at) {
			t.Fatalf("%s: disabled quiet hours are active", input)
		}
	})
}

// FuzzRefusalNamesTheBadValue: a document with one bad value is refused with a 400 that
// names the value in readable text (valid UTF-8, however long or foreign the value), and a
// value that is accepted is one the API documents.
func FuzzRefusalNamesTheBadValue(f *testing.F) {
	for i, v := range []string{
		"sometimes", "gong", "none", "always", "25:00", "22:00", "Mars/Olympus", "Europe/Berlin",
		strings.Repeat("x", 58) + "é…", // a cut after 60 bytes falls inside "é"
		strings.Repeat("ü", 40), "", "\x00\u2028",
	} {
		f.Add(byte(i), v)
	}
	f.Fuzz(func(t *testing.T, where byte, value string) {
		if !utf8.ValidString(value) {
			return // the JSON decoder makes every string valid UTF-8 before these checks
		}
		type place struct {
			path  string
			patch map[string]any
			valid func(string) bool
		}
		freq := func(v string) bool { return Frequency(v).valid() }
		sound := func(v string) bool { return v == noSound || slices.Contains(Sounds, v) }
		zone := func(v string) bool { _, err := time.LoadLocation(v); return err == nil && v != "" && v != "Local" }
		places := []place{
			{"assigned.in_app", map[string]any{"events": map[string]any{"assigned": map[string]any{"in_app": value}}}, freq},
			{"note.email", map[string]any{"events": map[string]any{"note": map[string]any{"email": value}}}, freq},
			{"mentioned.sound", map[string]any{"events": map[string]any{"mentioned": map[string]any{"sound": value}}}, sound},
			{"channels.1.sound", map[string]any{"channels": map[string]any{"1": map[string]any{"sound": value}}}, sound},
			{"channels.2.issue_created.in_app", map[string]any{"channels": map[string]any{"2": map[string]any{"issue_created": map[string]any{"in_app": value}}}}, freq},
			{"quiet_hours.start", map[string]any{"quiet_hours": map[string]any{"start": value}}, hhmm.MatchString},
			{"quiet_hours.end", map[string]any{"quiet_hours": map[string]any{"end": value}}, hhmm.MatchString},
			{"quiet_hours.time_zone", map[string]any{"quiet_hours": map[string]any{"time_zone": value}}, zone},
		}
		p := places[int(where)%len(places)]
		body, _ := json.Marshal(p.patch)
		_, ok := putDoc(t, "{}", body, true)
		if ok != p.valid(value) {
			t.Fatalf("%s = %q: accepted %v; want accepted only for a documented value", p.path, value, ok)
		}
		if ok {
			return
		}
		var patch map[string]any
		_ = json.Unmarshal(body, &patch)
		he := clearRefusal(t, body, checkPatch(context.Background(), patch, true, fuzzUserCheck))
		if !utf8.ValidString(he.Message) || !strings.HasPrefix(he.Message, p.path+": ") {
			t.Fatalf("%s = %q: refused with %q; want readable text starting with %q", p.path, value, he.Message, p.path+": ")
		}
		// The value is named: its JSON spelling, or the start of it when it is long.
		named, _ := json.Marshal(value)
		if n := min(len(named), 40); !strings.Contains(he.Message, strings.ToValidUTF8(string(named[:n]), "")) {
			t.Fatalf("%s = %q: refusal %q does not name the value", p.path, value, he.Message)
		}
	})
}
