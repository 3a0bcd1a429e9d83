package httpx

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecodeJSON feeds arbitrary bodies to DecodeJSON: it must either decode or answer a
// client error, never panic or claim success on trailing garbage.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"body":"x"}`, `{}`, `{"body":1}`, `[]`, `{"body":"x"} {}`, "\x00", `{"a":`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var v struct {
			Body string `json:"body"`
			N    *int64 `json:"number"`
		}
		r := httptest.NewRequest("POST", "/", strings.NewReader(in))
		err := DecodeJSON(httptest.NewRecorder(), r, &v)
		if err == nil {
			return
		}
		var he *Error
		if !errors.As(err, &he) || he.Status < 400 || he.Status >= 500 || he.Message == "" {
			t.Fatalf("%q: got %v; want a 4xx *Error", in, err)
		}
	})
}
