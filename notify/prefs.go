package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Frequency is when an event reaches a medium.
type Frequency string

// The frequencies (contract).
const (
	Always        Frequency = "always"
	WhenLoggedOut Frequency = "when_logged_out"
	Never         Frequency = "never"
)

func (f Frequency) valid() bool { return f == Always || f == WhenLoggedOut || f == Never }

// The event keys (contract), in DESIGN.md's order.
const (
	EventIssueMessage            = "issue_message"
	EventFollowedCustomerMessage = "followed_customer_message"
	EventCustomerMessage         = "customer_message"
	EventIssueCreated            = "issue_created"
	EventAssigned                = "assigned"
	EventUnsnoozed               = "unsnoozed"
	EventNote                    = "note"
	EventMentioned               = "mentioned"
	EventTeamMentioned           = "team_mentioned"
	EventFollowedCustomerIssue   = "followed_customer_issue"
	EventSLABreached             = "sla_breached"
	EventDirectMessage           = "direct_message"
)

// Events lists the twelve event keys, in DESIGN.md's order.
var Events = []string{
	EventIssueMessage, EventFollowedCustomerMessage, EventCustomerMessage, EventIssueCreated,
	EventAssigned, EventUnsnoozed, EventNote, EventMentioned, EventTeamMentioned,
	EventFollowedCustomerIssue, EventSLABreached, EventDirectMessage,
}

// ChannelEvents are the events that may be set per channel.
var ChannelEvents = []string{EventCustomerMessage, EventIssueCreated}

// Sounds is the app's sound set; the frontend synthesises each one by name.
var Sounds = []string{"chime", "ping", "knock", "pop", "bell"}

// noSound is how a stored preference document spells an explicit "no sound" (an absent
// sound inherits). The API takes null (the contract's "no sound") or "none" for it, and
// shows it as null.
const noSound = "none"

// inheritSound is what a PUT sends to drop a sound choice and inherit again: null is
// already "no sound".
const inheritSound = "inherit"

// EventPref is one event's resolved preference.
type EventPref struct {
	InApp Frequency `json:"in_app"`
	Email Frequency `json:"email"`
	Sound *string   `json:"sound"` // null: no sound
}

// factory are the defaults of DESIGN.md; every sound is off.
var factory = map[string]EventPref{
	EventIssueMessage:            {Never, Never, nil},
	EventFollowedCustomerMessage: {Never, Never, nil},
	EventCustomerMessage:         {Never, Never, nil},
	EventIssueCreated:            {Never, Never, nil},
	EventAssigned:                {Always, WhenLoggedOut, nil},
	EventUnsnoozed:               {Always, Always, nil},
	EventNote:                    {Always, WhenLoggedOut, nil},
	EventMentioned:               {Always, Always, nil},
	EventTeamMentioned:           {Always, WhenLoggedOut, nil},
	EventFollowedCustomerIssue:   {Always, WhenLoggedOut, nil},
	EventSLABreached:             {Always, Always, nil},
	EventDirectMessage:           {Always, WhenLoggedOut, nil},
}

// QuietHours is a user's do-not-disturb schedule. Days are the weekdays (0 Sunday … 6
// Saturday) on which a quiet period starts; empty means every day.
type QuietHours struct {
	Enabled       bool   `json:"enabled"`
	Start         string `json:"start"` // "22:00", local time in TimeZone
	End           string `json:"end"`   // "07:00"; before Start means the period runs over midnight
	TimeZone      string `json:"time_zone"`
	Days          []int  `json:"days,omitempty"`
	AllowMentions bool   `json:"allow_mentions"` // mentioned and team_mentioned come through
}

// defaultQuiet is the schedule of a user who never set one: off.
var defaultQuiet = QuietHours{Start: "22:00", End: "07:00", TimeZone: "UTC"}

// Doc is one level's own choices (the user's, or the organisation's): absent fields are
// inherited from the level below. It is what the database stores, after validation.
type Doc struct {
	Events   map[string]*EventDoc   `json:"events,omitempty"`
	Channels map[string]*ChannelDoc `json:"channels,omitempty"` // by channel id
	Quiet    *QuietDoc              `json:"quiet_hours,omitempty"`
}

// EventDoc is one event's choices at one level.
type EventDoc struct {
	InApp *Frequency `json:"in_app,omitempty"`
	Email *Frequency `json:"email,omitempty"`
	Sound *string    `json:"sound,omitempty"` // a name from Sounds, or "none"
}

// ChannelDoc is one channel's choices at one level.
type ChannelDoc struct {
	CustomerMessage *EventDoc `json:"customer_message,omitempty"`
	IssueCreated    *EventDoc `json:"issue_created,omitempty"`
	Sound           *string   `json:"sound,omitempty"` // the channel's new-message sound, or "none"
}

func (c *ChannelDoc) event(name string) *EventDoc {
	if c == nil {
		return nil
	}
	switch name {
	case EventCustomerMessage:
		return c.CustomerMessage
	case EventIssueCreated:
		return c.IssueCreated
	}
	return nil
}

// QuietDoc is the stored form of QuietHours: absent fields take defaultQuiet's.
type QuietDoc struct {
	Enabled       *bool   `json:"enabled,omitempty"`
	Start         *string `json:"start,omitempty"`
	End           *string `json:"end,omitempty"`
	TimeZone      *string `json:"time_zone,omitempty"`
	Days          *[]int  `json:"days,omitempty"`
	AllowMentions *bool   `json:"allow_mentions,omitempty"`
}

// Sources of a resolved value, in the "source" map of GET /api/preferences.
const (
	SourceUserChannel = "user_channel" // the user's choice for this channel
	SourceUser        = "user"
	SourceOrgChannel  = "org_channel" // the organisation's default for this channel
	SourceOrg         = "org"
	SourceFactory     = "factory"
)

// FieldSources says where each field of a resolved EventPref came from.
type FieldSources struct {
	InApp string `json:"in_app"`
	Email string `json:"email"`
	Sound string `json:"sound"`
}

// ChannelPrefs are one channel's resolved settings.
type ChannelPrefs struct {
	CustomerMessage EventPref `json:"customer_message"`
	IssueCreated    EventPref `json:"issue_created"`
	Sound           *string   `json:"sound"`
}

// ChannelSources says where each resolved channel setting came from.
type ChannelSources struct {
	CustomerMessage FieldSources `json:"customer_message"`
	IssueCreated    FieldSources `json:"issue_created"`
	Sound           string       `json:"sound"`
}

// Resolved is what GET /api/preferences answers: every value resolved through the levels.
type Resolved struct {
	Events     map[string]EventPref    `json:"events"`
	Channels   map[string]ChannelPrefs `json:"channels"`
	QuietHours *QuietHours             `json:"quiet_hours,omitempty"` // users only
	Source     *Sources                `json:"source"`
	Sounds     []string                `json:"sounds"`
}

// Sources is the "source" map of a Resolved.
type Sources struct {
	Events     map[string]FieldSources   `json:"events"`
	Channels   map[string]ChannelSources `json:"channels"`
	QuietHours string                    `json:"quiet_hours,omitempty"` // "user" or "factory"
}

// layer is one level of the resolution with the source names it reports.
type layer struct {
	ev  *EventDoc
	src string
}

// pick resolves one event's fields through layers, strongest first, then the factory.
func pick(event string, layers []layer) (EventPref, FieldSources) {
	p := factory[event]
	src := FieldSources{SourceFactory, SourceFactory, SourceFactory}
	done := [3]bool{}
	for _, l := range layers {
		if l.ev == nil {
			continue
		}
		if !done[0] && l.ev.InApp != nil {
			p.InApp, src.InApp, done[0] = *l.ev.InApp, l.src, true
		}
		if !done[1] && l.ev.Email != nil {
			p.Email, src.Email, done[1] = *l.ev.Email, l.src, true
		}
		if !done[2] && l.ev.Sound != nil {
			p.Sound, src.Sound, done[2] = soundValue(*l.ev.Sound), l.src, true
		}
	}
	return p, src
}

func soundValue(s string) *string {
	if s == noSound || s == "" {
		return nil
	}
	return &s
}

func (d *Doc) event(name string) *EventDoc {
	if d == nil {
		return nil
	}
	return d.Events[name]
}

func (d *Doc) channel(id string) *ChannelDoc {
	if d == nil {
		return nil
	}
	return d.Channels[id]
}

// eventPref resolves event for a user (user may be nil: the organisation's view) on
// channel (0: no channel). Order: the user's channel choice, the user's choice, the
// organisation's channel default, the organisation's default, the factory default. A
// user's own choice beats any organisation default, as DESIGN.md says.
func eventPref(user, org *Doc, event string, channel int64) (EventPref, FieldSources) {
	var layers []layer
	ch := ""
	if channel != 0 && slices.Contains(ChannelEvents, event) {
		ch = strconv.FormatInt(channel, 10)
	}
	if user != nil {
		if ch != "" {
			layers = append(layers, layer{user.channel(ch).event(event), SourceUserChannel})
		}
		layers = append(layers, layer{user.event(event), SourceUser})
	}
	if ch != "" {
		layers = append(layers, layer{org.channel(ch).event(event), SourceOrgChannel})
	}
	layers = append(layers, layer{org.event(event), SourceOrg})
	return pick(event, layers)
}

// channelSound resolves a channel's new-message sound.
func channelSound(user, org *Doc, channel string) (*string, string) {
	if c := user.channel(channel); c != nil && c.Sound != nil {
		return soundValue(*c.Sound), SourceUserChannel
	}
	if c := org.channel(channel); c != nil && c.Sound != nil {
		return soundValue(*c.Sound), SourceOrgChannel
	}
	return nil, SourceFactory
}

// quiet resolves a user's quiet hours (the organisation sets none).
func (d *Doc) quiet() (QuietHours, string) {
	q := defaultQuiet
	if d == nil || d.Quiet == nil {
		return q, SourceFactory
	}
	if v := d.Quiet.Enabled; v != nil {
		q.Enabled = *v
	}
	if v := d.Quiet.Start; v != nil {
		q.Start = *v
	}
	if v := d.Quiet.End; v != nil {
		q.End = *v
	}
	if v := d.Quiet.TimeZone; v != nil {
		q.TimeZone = *v
	}
	if v := d.Quiet.Days; v != nil {
		q.Days = slices.Clone(*v)
	}
	if v := d.Quiet.AllowMentions; v != nil {
		q.AllowMentions = *v
	}
	return q, SourceUser
}

// resolve builds the GET answer for a user (user non-nil) or for the organisation.
// channels are the channel ids to show.
func resolve(user, org *Doc, channels []int64, forUser bool) *Resolved {
	r := &Resolved{Events: map[string]EventPref{}, Channels: map[string]ChannelPrefs{},
		Source: &Sources{Events: map[string]FieldSources{}, Channels: map[string]ChannelSources{}}, Sounds: Sounds}
	if !forUser {
		user = nil
	}
	for _, ev := range Events {
		r.Events[ev], r.Source.Events[ev] = eventPref(user, org, ev, 0)
	}
	for _, id := range channels {
		key := strconv.FormatInt(id, 10)
		var cp ChannelPrefs
		var cs ChannelSources
		cp.CustomerMessage, cs.CustomerMessage = eventPref(user, org, EventCustomerMessage, id)
		cp.IssueCreated, cs.IssueCreated = eventPref(user, org, EventIssueCreated, id)
		cp.Sound, cs.Sound = channelSound(user, org, key)
		r.Channels[key], r.Source.Channels[key] = cp, cs
	}
	if forUser {
		q, src := user.quiet()
		r.QuietHours, r.Source.QuietHours = &q, src
	}
	return r
}

// badValue is a 400 naming the bad value.
func badValue(format string, args ...any) error {
	return httpx.Errorf(http.StatusBadRequest, format, args...)
}

// ChannelCheck says whether a channel id may carry overrides at a level; an error
// (an *httpx.Error) names the problem.
type ChannelCheck func(ctx context.Context, id int64) error

// checkPatch validates a PUT body, given as decoded JSON, before it is merged. null is
// allowed everywhere below the top level: it resets the field to inherit. Channels are
// checked with check only where the patch sets something for them.
func checkPatch(ctx context.Context, patch map[string]any, forUser bool, check ChannelCheck) error {
	for key, v := range patch {
		switch key {
		case "events":
			if v == nil {
				continue
			}
			evs, ok := v.(map[string]any)
			if !ok {
				return badValue("events must be an object of event names")
			}
			for name, ev := range evs {
				if !slices.Contains(Events, name) {
					return badValue("unknown event %q (events are %s)", name, strings.Join(Events, ", "))
				}
				if err := checkEvent(name, ev); err != nil {
					return err
				}
			}
		case "channels":
			if v == nil {
				continue
			}
			chs, ok := v.(map[string]any)
			if !ok {
				return badValue("channels must be an object keyed by channel id")
			}
			for id, c := range chs {
				n, err := strconv.ParseInt(id, 10, 64)
				if err != nil || n <= 0 || strconv.FormatInt(n, 10) != id {
					return badValue("channel %q is not a channel id", id)
				}
				if c == nil {
					continue
				}
				fields, ok := c.(map[string]any)
				if !ok {
					return badValue("channels.%s must be an object", id)
				}
				for f, fv := range fields {
					switch {
					case slices.Contains(ChannelEvents, f):
						if err := checkEvent("channels."+id+"."+f, fv); err != nil {
							return err
						}
					case f == "sound":
						if err := checkSound("channels."+id+".sound", fv); err != nil {
							return err
						}
					case slices.Contains(Events, f):
						return badValue("channels.%s: %q cannot be set per channel (only %s and sound)", id, f, strings.Join(ChannelEvents, ", "))
					default:
						return badValue("channels.%s: unknown field %q (customer_message, issue_created, sound)", id, f)
					}
				}
				if check != nil {
					if err := check(ctx, n); err != nil {
						return err
					}
				}
			}
		case "quiet_hours":
			if !forUser {
				return badValue("quiet_hours are set by each user, not for the organisation")
			}
			if v == nil {
				continue
			}
			if err := checkQuiet(v); err != nil {
				return err
			}
		case "source", "sounds":
			// A GET answer sent back as it is: these are read-only and ignored.
		default:
			return badValue("unknown field %q (events, channels, quiet_hours)", key)
		}
	}
	return nil
}

func checkEvent(name string, v any) error {
	if v == nil {
		return nil
	}
	fields, ok := v.(map[string]any)
	if !ok {
		return badValue("%s must be an object with in_app, email and sound", name)
	}
	for f, fv := range fields {
		switch f {
		case "in_app", "email":
			if fv == nil {
				continue
			}
			s, ok := fv.(string)
			if !ok || !Frequency(s).valid() {
				return badValue("%s.%s: %s is not a frequency (always, when_logged_out, never)", name, f, jsonText(fv))
			}
		case "sound":
			if err := checkSound(name+".sound", fv); err != nil {
				return err
			}
		default:
			return badValue("%s: unknown field %q (in_app, email, sound)", name, f)
		}
	}
	return nil
}

func checkSound(where string, v any) error {
	if v == nil {
		return nil
	}
	s, ok := v.(string)
	if !ok || (s != noSound && s != inheritSound && !slices.Contains(Sounds, s)) {
		return badValue("%s: %s is not a sound (%s; null or %q for none; %q to inherit)", where, jsonText(v), strings.Join(Sounds, ", "), noSound, inheritSound)
	}
	return nil
}

func checkQuiet(v any) error {
	fields, ok := v.(map[string]any)
	if !ok {
		return badValue("quiet_hours must be an object")
	}
	for f, fv := range fields {
		if fv == nil {
			continue
		}
		switch f {
		case "enabled", "allow_mentions":
			if _, ok := fv.(bool); !ok {
				return badValue("quiet_hours.%s: %s is not true or false", f, jsonText(fv))
			}
		case "start", "end":
			s, ok := fv.(string)
			if _, err := clockMinutes(s); !ok || err != nil {
				return badValue("quiet_hours.%s: %s is not a time like 22:00", f, jsonText(fv))
			}
		case "time_zone":
			s, ok := fv.(string)
			// time.LoadLocation reads names as paths under the zoneinfo directory, so
			// "./UTC" or "Europe//Berlin" would load too: only clean IANA-style names pass.
			if !ok || s == "" || s == "Local" || path.Clean(s) != s || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "/") {
				return badValue("quiet_hours.time_zone: %s is not a time zone like Europe/Berlin", jsonText(fv))
			}
			if _, err := time.LoadLocation(s); err != nil {
				return badValue("quiet_hours.time_zone: %s is not a time zone like Europe/Berlin", jsonText(fv))
			}
		case "days":
			list, ok := fv.([]any)
			if !ok {
				return badValue("quiet_hours.days must be a list of weekdays, 0 (Sunday) to 6 (Saturday)")
			}
			for _, d := range list {
				n, ok := d.(float64)
				if !ok || n != float64(int(n)) || n < 0 || n > 6 {
					return badValue("quiet_hours.days: %s is not a weekday, 0 (Sunday) to 6 (Saturday)", jsonText(d))
				}
			}
		default:
			return badValue("quiet_hours: unknown field %q (enabled, start, end, time_zone, days, allow_mentions)", f)
		}
	}
	return nil
}

// jsonText renders a decoded JSON value for an error message.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 60 {
		n := 60
		for n > 0 && !utf8.RuneStart(b[n]) {
			n-- // never cut a character in two
		}
		return string(b[:n]) + "…"
	}
	return string(b)
}

// clockMinutes parses "HH:MM" (24 h) into minutes after midnight.
func clockMinutes(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[3]) || !isDigit(s[4]) {
		return 0, errors.New("not HH:MM")
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, errors.New("not HH:MM")
	}
	return h*60 + m, nil
}

// merge applies patch to base (both decoded JSON objects): null deletes, objects merge,
// anything else replaces. The read-only fields of a GET answer are dropped. Neither input
// is modified.
func merge(base, patch map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			bv, _ := out[k].(map[string]any)
			m := merge(bv, pv)
			if len(m) == 0 {
				delete(out, k)
			} else {
				out[k] = m
			}
		default:
			out[k] = v
		}
	}
	delete(out, "source")
	delete(out, "sounds")
	return out
}

// parseDoc turns a stored document into a Doc.
func parseDoc(raw string) (*Doc, map[string]any, error) {
	var generic map[string]any
	if raw == "" {
		raw = "{}"
	}
	if err := json.Unmarshal([]byte(raw), &generic); err != nil {
		return nil, nil, fmt.Errorf("notify: stored preferences: %w", err)
	}
	var d Doc
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		return nil, nil, fmt.Errorf("notify: stored preferences: %w", err)
	}
	return &d, generic, nil
}

// loadOrg reads the organisation's document through q.
func loadOrg(ctx context.Context, q store.Querier) (*Doc, error) {
	var raw string
	err := q.QueryRowContext(ctx, `SELECT doc FROM notification_org_prefs WHERE id = 1`).Scan(&raw)
	switch {
	case err == nil:
		org, _, err := parseDoc(raw)
		return org, err
	case errors.Is(store.Err(err), store.ErrNotFound):
		return &Doc{}, nil
	default:
		return nil, fmt.Errorf("notify: org preferences: %w", err)
	}
}

// loadDocs reads the organisation's document and the documents of users, through q.
// Users without one are absent from the map.
func loadDocs(ctx context.Context, q store.Querier, users []int64) (*Doc, map[int64]*Doc, error) {
	org, err := loadOrg(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	var raw string
	out := map[int64]*Doc{}
	users = slices.Compact(slices.Sorted(slices.Values(users)))
	for chunk := range slices.Chunk(users, 500) {
		marks := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, id := range chunk {
			marks[i], args[i] = "$"+strconv.Itoa(i+1), id
		}
		rows, err := q.QueryContext(ctx, `SELECT user_id, doc FROM notification_prefs WHERE user_id IN (`+strings.Join(marks, ",")+`)`, args...)
		if err != nil {
			return nil, nil, fmt.Errorf("notify: preferences: %w", err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id, &raw); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("notify: preferences: %w", err)
			}
			d, _, err := parseDoc(raw)
			if err != nil {
				rows.Close()
				return nil, nil, err
			}
			out[id] = d
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("notify: preferences: %w", err)
		}
		if err := rows.Close(); err != nil {
			return nil, nil, fmt.Errorf("notify: preferences: %w", err)
		}
	}
	return org, out, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
