package sms

import (
	"mime"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseMedia feeds arbitrary forms to the MMS reader: whatever comes in, what comes
// out are at most 10 absolute http(s) links without credentials, in position order, with
// a valid media type, so an agent's link can never be a script.
func FuzzParseMedia(f *testing.F) {
	f.Add("NumMedia=1&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm&MediaContentType0=image%2Fjpeg")
	f.Add("NumMedia=3&MediaUrl0=javascript%3Aalert(1)&MediaUrl1=JAVASCRIPT%3Ax&MediaUrl2=%2F%2Fhost%2Fp&MediaContentType2=text%2Fhtml")
	f.Add("NumMedia=-1&MediaUrl0=https%3A%2F%2Fa")
	f.Add("NumMedia=10&MediaUrl9=http%3A%2F%2Fu%3Ap%40h%2F&MediaContentType9=%3B%3B")
	f.Add("NumMedia=2&MediaUrl0=https%3A%2F%2Fa%2F%0Ax&MediaUrl1=https%3A%2F%2F%5B%3A%3A1%5D%2F")
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		last := -1
		media := parseMedia(form)
		if len(media) > maxMedia {
			t.Fatalf("%d items", len(media))
		}
		for _, m := range media {
			u, err := url.Parse(m.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
				!strings.HasPrefix(strings.ToLower(m.URL), u.Scheme+"://") {
				t.Fatalf("unsafe link %q from %q", m.URL, body)
			}
			if m.Position <= last || m.Position >= maxMedia {
				t.Fatalf("position %d after %d", m.Position, last)
			}
			last = m.Position
			if _, _, err := mime.ParseMediaType(m.ContentType); err != nil {
				t.Fatalf("content type %q", m.ContentType)
			}
		}
	})
}
