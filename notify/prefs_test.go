package notify

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func mustDoc(t *testing.T, s string) *Doc {
	t.Helper()
	d, _, err := parseDoc(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestResolutionOrder(t *testing.T) {
	org := mustDoc(t, `{"events":{"assigned":{"email":"always","sound":"ping"},"customer_message":{"in_app":"always"}},
		"channels":{"7":{"customer_message":{"email":"always"},"sound":"knock"}}}`)
	user := mustDoc(t, `{"events":{"assigned":{"email":"never"},"customer_message":{"sound":"none"}},
		"channels":{"7":{"customer_message":{"in_app":"never"}}}}`)

	p, src := eventPref(user, org, EventAssigned, 0)
	if p.InApp != Always || src.InApp != SourceFactory {
		t.Errorf("assigned.in_app = %s from %s; want always from factory", p.InApp, src.InApp)
	}
	if p.Email != Never || src.Email != SourceUser {
		t.Errorf("assigned.email = %s from %s; want the user's never over the org's always", p.Email, src.Email)
	}
	if p.Sound == nil || *p.Sound != "ping" || src.Sound != SourceOrg {
		t.Errorf("assigned.sound = %v from %s; want the org's ping", p.Sound, src.Sound)
	}

	// Channel 7: the user's channel choice, then the user's event choice, then the org's
	// channel default, then the org's event default.
	p, src = eventPref(user, org, EventCustomerMessage, 7)
	if p.InApp != Never || src.InApp != SourceUserChannel {
		t.Errorf("channel in_app = %s from %s; want never from user_channel", p.InApp, src.InApp)
	}
	if p.Email != Always || src.Email != SourceOrgChannel {
		t.Errorf("channel email = %s from %s; want always from org_channel", p.Email, src.Email)
	}
	if p.Sound != nil || src.Sound != SourceUser {
		t.Errorf("channel sound = %v from %s; want the user's explicit silence", p.Sound, src.Sound)
	}
	// Another channel has no overrides: the event-wide values.
	p, src = eventPref(user, org, EventCustomerMessage, 8)
	if p.InApp != Always || src.InApp != SourceOrg || p.Email != Never || src.Email != SourceFactory {
		t.Errorf("channel 8: %+v from %+v; want in_app always (org), email never (factory)", p, src)
	}
	// Events that are not channel events ignore the channel.
	if p, _ := eventPref(user, org, EventAssigned, 7); p.Email != Never {
		t.Errorf("assigned on a channel: %+v", p)
	}
	if s, src := channelSound(user, org, "7"); s == nil || *s != "knock" || src != SourceOrgChannel {
		t.Errorf("channel sound = %v from %s; want knock from org_channel", s, src)
	}

	// No documents at all: DESIGN.md's table.
	r := resolve(nil, &Doc{}, nil, true)
	if len(r.Events) != 12 {
		t.Fatalf("%d events; want the 12 of the contract", len(r.Events))
	}
	want := map[string][2]Frequency{
		"issue_message": {Never, Never}, "followed_customer_message": {Never, Never}, "customer_message": {Never, Never},
		"issue_created": {Never, Never}, "assigned": {Always, WhenLoggedOut}, "unsnoozed": {Always, Always},
		"note": {Always, WhenLoggedOut}, "mentioned": {Always, Always}, "team_mentioned": {Always, WhenLoggedOut},
		"followed_customer_issue": {Always, WhenLoggedOut}, "sla_breached": {Always, Always}, "direct_message": {Always, WhenLoggedOut},
	}
	for ev, w := range want {
		if got := r.Events[ev]; got.InApp != w[0] || got.Email != w[1] || got.Sound != nil {
			t.Errorf("factory %s = %+v; want %v and no sound", ev, got, w)
		}
	}
	if r.QuietHours == nil || r.QuietHours.Enabled || r.Source.QuietHours != SourceFactory {
		t.Errorf("quiet hours %+v from %s; want off by default", r.QuietHours, r.Source.QuietHours)
	}
}

func TestCheckPatchNamesTheBadValue(t *testing.T) {
	refuse := func(_ context.Context, id int64) error {
		if id == 99 {
			return badValue("channel 99: no such channel, or you are not a member of it")
		}
		return nil
	}
	for _, tc := range []struct {
		body    string
		forUser bool
		want    string // "" accepted
	}{
		{`{"events":{"assigned":{"in_app":"never","email":null,"sound":"chime"}}}`, true, ""},
		{`{"events":{"assigned":null},"channels":{"5":null},"quiet_hours":null}`, true, ""},
		{`{"events":{"asigned":{"in_app":"never"}}}`, true, `"asigned"`},
		{`{"events":{"assigned":{"in_app":"sometimes"}}}`, true, `"sometimes"`},
		{`{"events":{"assigned":{"email":3}}}`, true, `3 is not a frequency`},
		{`{"events":{"assigned":{"sound":"gong"}}}`, true, `"gong"`},
		{`{"events":{"assigned":{"volume":3}}}`, true, `"volume"`},
		{`{"channels":{"5":{"customer_message":{"in_app":"always"},"sound":"bell"}}}`, true, ""},
		{`{"channels":{"99":{"sound":"bell"}}}`, true, "channel 99"},
		{`{"channels":{"x":{"sound":"bell"}}}`, true, `"x"`},
		{`{"channels":{"5":{"assigned":{"in_app":"always"}}}}`, true, `"assigned" cannot be set per channel`},
		{`{"channels":{"5":{"sound":"trumpet"}}}`, true, `"trumpet"`},
		{`{"quiet_hours":{"enabled":true,"start":"22:30","end":"06:00","time_zone":"Europe/Berlin","days":[1,5],"allow_mentions":true}}`, true, ""},
		{`{"quiet_hours":{"time_zone":"Mars/Olympus"}}`, true, `"Mars/Olympus"`},
		{`{"quiet_hours":{"time_zone":"./UTC"}}`, true, `"./UTC"`},
		{`{"quiet_hours":{"time_zone":"Europe//Berlin"}}`, true, `"Europe//Berlin"`},
		{`{"quiet_hours":{"time_zone":"America/Argentina/Buenos_Aires"}}`, true, ""},
		{`{"quiet_hours":{"start":"25:00"}}`, true, `"25:00"`},
		{`{"quiet_hours":{"days":[7]}}`, true, `7 is not a weekday`},
		{`{"quiet_hours":{"enabled":true}}`, false, "quiet_hours are set by each user"},
		{`{"colour":"red"}`, true, `"colour"`},
	} {
		var patch map[string]any
		if err := json.Unmarshal([]byte(tc.body), &patch); err != nil {
			t.Fatal(err)
		}
		err := checkPatch(context.Background(), patch, tc.forUser, refuse)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.body, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v; want an error naming %s", tc.body, err, tc.want)
		}
	}
}

func TestMergeResetsWithNull(t *testing.T) {
	base := `{"events":{"assigned":{"in_app":"never","email":"always"},"note":{"sound":"pop"}},"channels":{"5":{"sound":"bell"}}}`
	var patch map[string]any
	// null resets a frequency, an event or a channel; a null sound is the contract's "no
	// sound" (stored "none"), and "inherit" resets a sound.
	_ = json.Unmarshal([]byte(`{"events":{"assigned":{"in_app":null,"sound":null},"note":null,"mentioned":{"sound":"chime"}},"channels":{"5":{"sound":"inherit"}},"source":{}}`), &patch)
	got, err := mergeDoc(base, patch)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"events":{"assigned":{"email":"always","sound":"none"},"mentioned":{"sound":"chime"}}}`
	if got != want {
		t.Errorf("merged %s; want %s", got, want)
	}
}
