package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.PublicURL.String() != "http://localhost:8080" || c.DatabaseURL != "sqlite:./data/switchboard.db" ||
		c.RedisURL != "" || c.Twilio != nil || c.IMAPURL != nil || c.SMTPURL != nil || c.EmailFrom.Address != "support@localhost" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigRejectsBadValuesNamingTheVariable(t *testing.T) {
	twilio := map[string]string{"TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("a", 32), "TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef", "TWILIO_PHONE_NUMBER": "+15551234567"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range twilio {
			m[a] = b
		}
		m[k] = v
		return m
	}
	tests := []struct {
		vars map[string]string
		name string
	}{
		{map[string]string{"SWITCHBOARD_ADDR": "8080"}, "SWITCHBOARD_ADDR"},
		{map[string]string{"SWITCHBOARD_ADDR": "127.0.0.1:99999"}, "SWITCHBOARD_ADDR"},
		{map[string]string{"SWITCHBOARD_ADDR": ":no-such-service-name"}, "SWITCHBOARD_ADDR"},
		{map[string]string{"SWITCHBOARD_PUBLIC_URL": "localhost:8080"}, "SWITCHBOARD_PUBLIC_URL"},
		{map[string]string{"SWITCHBOARD_PUBLIC_URL": "ftp://x"}, "SWITCHBOARD_PUBLIC_URL"},
		{map[string]string{"DATABASE_URL": "mysql://x"}, "DATABASE_URL"},
		{map[string]string{"DATABASE_URL": "sqlite:"}, "DATABASE_URL"},
		{map[string]string{"REDIS_URL": "localhost:6379"}, "REDIS_URL"},
		{map[string]string{"TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("a", 32)}, "TWILIO_AUTH_TOKEN"},
		{with("TWILIO_ACCOUNT_SID", "nope"), "TWILIO_ACCOUNT_SID"},
		{with("TWILIO_ACCOUNT_SID", "AC"+strings.Repeat("-", 32)), "TWILIO_ACCOUNT_SID"},
		{with("TWILIO_AUTH_TOKEN", "tok"), "TWILIO_AUTH_TOKEN"},
		{with("TWILIO_AUTH_TOKEN", "has spaces in it"), "TWILIO_AUTH_TOKEN"},
		{map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/abc"}, "REDIS_URL"},
		{with("TWILIO_PHONE_NUMBER", "555-1234"), "TWILIO_PHONE_NUMBER"},
		{with("TWILIO_API_URL", "not a url"), "TWILIO_API_URL"},
		{map[string]string{"TWILIO_API_URL": "http://127.0.0.1:1"}, "TWILIO_API_URL"},
		{map[string]string{"IMAP_URL": "pop3://u:p@host"}, "IMAP_URL"},
		{map[string]string{"IMAP_URL": "imaps://host:993/INBOX"}, "IMAP_URL"},
		{map[string]string{"SMTP_URL": "http://u:p@host"}, "SMTP_URL"},
		{map[string]string{"EMAIL_FROM": "not an address"}, "EMAIL_FROM"},
		{map[string]string{"SWITCHBOARD_TRUSTED_PROXIES": "10.0.0.0/8,nope"}, "SWITCHBOARD_TRUSTED_PROXIES"},
		{map[string]string{"SWITCHBOARD_NOTIFY_EMAIL_WINDOW": "soon"}, "SWITCHBOARD_NOTIFY_EMAIL_WINDOW"},
		{map[string]string{"SWITCHBOARD_NOTIFY_EMAIL_WINDOW": "500ms"}, "SWITCHBOARD_NOTIFY_EMAIL_WINDOW"},
		{map[string]string{"SWITCHBOARD_NOTIFY_EMAIL_WINDOW": "2h"}, "SWITCHBOARD_NOTIFY_EMAIL_WINDOW"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		code := run(context.Background(), []string{"serve"}, env(tt.vars), nil, io.Discard, &stderr)
		line := stderr.String()
		if code != 2 || strings.Count(line, "\n") != 1 || !strings.Contains(line, tt.name+":") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line naming %s", tt.vars, code, line, tt.name)
		}
	}
}

func TestConfigAcceptsGoodValues(t *testing.T) {
	c, err := loadConfig(env(map[string]string{
		"SWITCHBOARD_ADDR": "127.0.0.1:9000", "SWITCHBOARD_PUBLIC_URL": "https://support.example.com/",
		"DATABASE_URL": "postgres://u@db:5432/sb", "REDIS_URL": "redis://127.0.0.1:6379/0",
		"TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("a", 32), "TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef", "TWILIO_PHONE_NUMBER": "+15551234567",
		"TWILIO_API_URL": "http://127.0.0.1:9999/", "IMAP_URL": "imaps://u:p@mail:993/INBOX", "SMTP_URL": "smtp://u:p@mail:587",
		"EMAIL_FROM": "Help <help@example.com>", "SWITCHBOARD_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
		"SWITCHBOARD_NOTIFY_EMAIL_WINDOW": "45s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL.String() != "https://support.example.com" || c.Twilio.APIURL != "http://127.0.0.1:9999" || len(c.TrustedProxies) != 2 ||
		c.Notify.EmailWindow != 45*time.Second {
		t.Errorf("got %+v", c)
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, env(nil), nil, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "switchboard ") {
		t.Errorf("version: %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"frobnicate"}, env(nil), nil, io.Discard, io.Discard); code != 2 {
		t.Errorf("unknown command: exit %d; want 2", code)
	}
}

func TestUserAdd(t *testing.T) {
	vars := env(map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "db")})
	var out, errOut bytes.Buffer
	args := []string{"user", "add", "--email", "Ana@Example.com", "--name", "Ana", "--role", "agent", "--password-stdin"}
	if code := run(context.Background(), args, vars, strings.NewReader("s3cret-password\n"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "handle @ana") {
		t.Errorf("output %q; want the defaulted handle", out.String())
	}
	errOut.Reset()
	if code := run(context.Background(), args, vars, strings.NewReader("s3cret-password\n"), io.Discard, &errOut); code != 1 || !strings.Contains(errOut.String(), "exists") {
		t.Errorf("duplicate: exit %d %q; want 1 saying it exists", code, errOut.String())
	}
	if code := run(context.Background(), args[:len(args)-1], vars, nil, io.Discard, io.Discard); code != 2 {
		t.Errorf("without --password-stdin: exit %d; want 2", code)
	}
	bad := []string{"user", "add", "--email", "b@example.com", "--name", "B", "--role", "root", "--password-stdin"}
	if code := run(context.Background(), bad, vars, strings.NewReader("pw-pw-pw-pw\n"), io.Discard, io.Discard); code != 2 {
		t.Errorf("bad role: exit %d; want 2", code)
	}
}

// TestServePrintsAdminOnceAndShutsDown runs the real serve command: first start prints
// the admin login, /healthz answers, cancelling (as SIGTERM does) returns cleanly, and a
// second start prints no password.
func TestServePrintsAdminOnceAndShutsDown(t *testing.T) {
	vars := env(map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "db"), "SWITCHBOARD_ADDR": "127.0.0.1:0"})
	serveOnce := func() string {
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"serve"}, vars, nil, pw, io.Discard)
			pw.Close()
		}()
		var printed strings.Builder
		sc := bufio.NewScanner(pr)
		addr := ""
		re := regexp.MustCompile(`listening on (\S+)`)
		for addr == "" && sc.Scan() {
			printed.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr = m[1]
			}
		}
		go io.Copy(io.Discard, pr)
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		resp.Body.Close()
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d after shutdown; want 0", code)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("serve did not shut down")
		}
		return printed.String()
	}
	first := serveOnce()
	if !regexp.MustCompile(`email:\s+admin@localhost\s+password:\s+\S{12,}`).MatchString(first) {
		t.Errorf("first start printed %q; want the admin login", first)
	}
	if second := serveOnce(); strings.Contains(second, "password") {
		t.Errorf("second start printed %q; want no password", second)
	}
}

func TestDemoSeedsOnceAndRefusesTwice(t *testing.T) {
	vars := env(map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "db")})
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"demo"}, vars, nil, &out, &errOut); code != 0 {
		t.Fatalf("demo: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"admin@localhost", "alice@example.com", "demo data ready", "7 customer messages"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"demo"}, vars, nil, io.Discard, &errOut); code != 1 || !strings.Contains(errOut.String(), "empty database") {
		t.Errorf("second demo: exit %d %q; want 1 explaining it wants an empty database", code, errOut.String())
	}
}

// FuzzConfig gives each variable arbitrary values: loadConfig either accepts or names
// the variable it refuses, and never panics.
func FuzzConfig(f *testing.F) {
	f.Add("SWITCHBOARD_PUBLIC_URL", "http://x")
	f.Add("DATABASE_URL", "postgres://%zz")
	f.Add("TWILIO_PHONE_NUMBER", "+1")
	f.Add("IMAP_URL", "imaps://u:p@[::1]:993/INBOX")
	f.Add("SWITCHBOARD_TRUSTED_PROXIES", "::1/200")
	f.Fuzz(func(t *testing.T, name, value string) {
		_, err := loadConfig(env(map[string]string{name: value}))
		if err == nil {
			return
		}
		var ce *configError
		if !errors.As(err, &ce) || ce.name == "" || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s=%q: got %v; want one line naming the variable", name, value, err)
		}
	})
}

// A start that cannot serve stops with one line naming the setting at fault, before
// anything is written: a port in use must not swallow the first-start admin password,
// and a database that cannot be opened names DATABASE_URL.
func TestServeFailsEarlyNamingTheSetting(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		vars map[string]string
		name string
	}{
		{map[string]string{"SWITCHBOARD_ADDR": busy.Addr().String(), "DATABASE_URL": "sqlite:" + filepath.Join(dir, "a.db")}, "SWITCHBOARD_ADDR"},
		{map[string]string{"SWITCHBOARD_ADDR": "127.0.0.1:0", "DATABASE_URL": "sqlite:/proc/no/such/dir/x.db"}, "DATABASE_URL"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"serve"}, env(tc.vars), strings.NewReader(""), &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code == 0 || len(lines) != 1 || !strings.Contains(lines[0], tc.name) {
			t.Errorf("%v: exit %d, stderr %q; want a failure in one line naming %s", tc.vars, code, stderr.String(), tc.name)
		}
		if strings.Contains(stdout.String(), "password") {
			t.Errorf("%v: printed an admin password although it could not serve:\n%s", tc.vars, stdout.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the database was created although the port was taken (stat: %v)", err)
	}
}
