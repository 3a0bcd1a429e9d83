package main

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-hq/switchboard/channels/email"
	"github.com/switchboard-hq/switchboard/channels/sms"
	"github.com/switchboard-hq/switchboard/server"
)

// config is the environment, parsed and checked. Only this package reads the
// environment; everything below gets typed values.
type config struct {
	server.Config
	IMAPURL   *url.URL
	SMTPURL   *url.URL
	EmailFrom *mail.Address
}

// configError names the variable that is wrong, so start-up fails with one clear line.
type configError struct {
	name, msg string
}

func (e *configError) Error() string { return e.name + ": " + e.msg }

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// loadConfig reads the contract's variables through getenv and validates them all.
func loadConfig(getenv func(string) string) (*config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	c := &config{}

	c.Addr = get("SWITCHBOARD_ADDR", ":8080")
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		return nil, &configError{"SWITCHBOARD_ADDR", fmt.Sprintf("%q is not a listen address like :8080 or 127.0.0.1:8080", c.Addr)}
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		return nil, &configError{"SWITCHBOARD_ADDR", fmt.Sprintf("%q: the port must be a number from 0 to 65535 (or a service name this machine knows)", c.Addr)}
	}

	pub := get("SWITCHBOARD_PUBLIC_URL", "http://localhost:8080")
	u, err := url.Parse(pub)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, &configError{"SWITCHBOARD_PUBLIC_URL", fmt.Sprintf("%q must be an absolute http:// or https:// URL without credentials or query", pub)}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	c.PublicURL = u

	c.DatabaseURL = get("DATABASE_URL", "sqlite:./data/switchboard.db")
	switch {
	case strings.HasPrefix(c.DatabaseURL, "sqlite:"):
		if strings.TrimPrefix(strings.TrimPrefix(c.DatabaseURL, "sqlite:"), "//") == "" {
			return nil, &configError{"DATABASE_URL", "sqlite: needs a path, as in sqlite:./data/switchboard.db"}
		}
	case strings.HasPrefix(c.DatabaseURL, "postgres://"), strings.HasPrefix(c.DatabaseURL, "postgresql://"):
		if du, err := url.Parse(c.DatabaseURL); err != nil || du.Host == "" {
			return nil, &configError{"DATABASE_URL", "not a valid postgres:// URL"}
		}
	default:
		return nil, &configError{"DATABASE_URL", "must start with sqlite: or postgres://"}
	}

	c.RedisURL = get("REDIS_URL", "")
	if c.RedisURL != "" {
		ru, err := url.Parse(c.RedisURL)
		if err != nil || (ru.Scheme != "redis" && ru.Scheme != "rediss") || ru.Host == "" {
			return nil, &configError{"REDIS_URL", "must be redis://host:port[/db] or rediss://…"}
		}
		// The bus parses it again with go-redis; its refusals (a database that is not a
		// number, an unknown option) belong here, before anything starts.
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			return nil, &configError{"REDIS_URL", strings.TrimPrefix(err.Error(), "redis: ")}
		}
	}
	c.RedisPrefix = get("SWITCHBOARD_REDIS_PREFIX", "switchboard:")

	sid, token, phone := get("TWILIO_ACCOUNT_SID", ""), get("TWILIO_AUTH_TOKEN", ""), get("TWILIO_PHONE_NUMBER", "")
	if sid != "" || token != "" || phone != "" {
		for _, v := range []struct{ name, val string }{{"TWILIO_ACCOUNT_SID", sid}, {"TWILIO_AUTH_TOKEN", token}, {"TWILIO_PHONE_NUMBER", phone}} {
			if v.val == "" {
				return nil, &configError{v.name, "is required when any TWILIO_ variable is set"}
			}
		}
		if !sms.ValidAccountSID(sid) {
			return nil, &configError{"TWILIO_ACCOUNT_SID", "must be an account SID: AC followed by 32 letters or digits"}
		}
		if !sms.ValidAuthToken(token) {
			return nil, &configError{"TWILIO_AUTH_TOKEN", "must be the account's auth token: 8 to 128 visible characters (Twilio's are 32 hex digits)"}
		}
		if !e164.MatchString(phone) {
			return nil, &configError{"TWILIO_PHONE_NUMBER", fmt.Sprintf("%q must be in E.164 form, like +15551234567", phone)}
		}
		c.Twilio = &server.Twilio{AccountSID: sid, AuthToken: token, PhoneNumber: phone}
	}
	if api := get("TWILIO_API_URL", ""); api != "" {
		au, err := url.Parse(api)
		if err != nil || (au.Scheme != "http" && au.Scheme != "https") || au.Host == "" {
			return nil, &configError{"TWILIO_API_URL", "must be an absolute http(s) URL"}
		}
		if c.Twilio == nil {
			return nil, &configError{"TWILIO_API_URL", "is set but TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_PHONE_NUMBER are not"}
		}
		c.Twilio.APIURL = strings.TrimRight(api, "/")
	}

	if v := get("IMAP_URL", ""); v != "" {
		iu, err := mailURL(v, "imap", "imaps")
		if err != nil {
			return nil, &configError{"IMAP_URL", err.Error()}
		}
		c.IMAPURL = iu
	}
	if v := get("SMTP_URL", ""); v != "" {
		su, err := mailURL(v, "smtp", "smtps")
		if err != nil {
			return nil, &configError{"SMTP_URL", err.Error()}
		}
		c.SMTPURL = su
	}
	from := get("EMAIL_FROM", "Support <support@localhost>")
	if c.EmailFrom, err = mail.ParseAddress(from); err != nil {
		return nil, &configError{"EMAIL_FROM", fmt.Sprintf("%q is not an address like Support <support@example.com>", from)}
	}
	c.SMTP, c.MailFrom = c.SMTPURL, c.EmailFrom // email replies go out over SMTP_URL when set
	if c.IMAPURL != nil {
		// The mailbox's channel is named by the IMAP user when it is an address, else by
		// EMAIL_FROM; mail from EMAIL_FROM is our own and never becomes an issue.
		c.IMAP = &email.Config{URL: c.IMAPURL, Address: c.EmailFrom.Address, OwnAddresses: []string{c.EmailFrom.Address}}
		if v := get("SWITCHBOARD_IMAP_POLL_INTERVAL", ""); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				return nil, &configError{"SWITCHBOARD_IMAP_POLL_INTERVAL", fmt.Sprintf("%q must be a duration of at least 1s, like 30s or 2m", v)}
			}
			c.IMAP.PollInterval = d
		}
		if v := get("SWITCHBOARD_EMAIL_MAX_ATTACHMENT", ""); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return nil, &configError{"SWITCHBOARD_EMAIL_MAX_ATTACHMENT", fmt.Sprintf("%q must be a size in bytes, like 10485760", v)}
			}
			c.IMAP.MaxAttachment = n
		}
	}

	if v := get("SWITCHBOARD_TRUSTED_PROXIES", ""); v != "" {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			p, err := netip.ParsePrefix(part)
			if err != nil {
				a, aerr := netip.ParseAddr(part)
				if aerr != nil {
					return nil, &configError{"SWITCHBOARD_TRUSTED_PROXIES", fmt.Sprintf("%q is not an address or CIDR prefix", part)}
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			c.TrustedProxies = append(c.TrustedProxies, p.Masked())
		}
	}
	durations := []struct {
		name string
		dst  *time.Duration
		min  time.Duration
	}{
		{"SWITCHBOARD_EVENT_RETENTION", &c.EventRetention, time.Hour},
		{"SWITCHBOARD_IDLE_AFTER", &c.IdleAfter, 30 * time.Second},
	}
	for _, d := range durations {
		if v := get(d.name, ""); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil || dur < d.min {
				return nil, &configError{d.name, fmt.Sprintf("%q must be a duration of at least %s, like 168h or 10m", v, d.min)}
			}
			*d.dst = dur
		}
	}
	// How long a user's first pending notification email waits for more, so a burst becomes
	// one digest. DESIGN.md wants a lone notification out within 30 s; longer windows are
	// the operator's choice.
	if v := get("SWITCHBOARD_NOTIFY_EMAIL_WINDOW", ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > time.Hour {
			return nil, &configError{"SWITCHBOARD_NOTIFY_EMAIL_WINDOW", fmt.Sprintf("%q must be a duration from 1s to 1h, like 20s", v)}
		}
		c.Notify.EmailWindow = d
	}
	if v := get("SWITCHBOARD_EVENT_RETENTION_MIN", ""); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, &configError{"SWITCHBOARD_EVENT_RETENTION_MIN", fmt.Sprintf("%q must be a whole number of events", v)}
		}
		c.EventRetentionMin = n
	}
	if v := get("SWITCHBOARD_ALLOWED_ORIGINS", ""); v != "" {
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				c.AllowedOrigins = append(c.AllowedOrigins, part)
			}
		}
	}
	return c, nil
}

// mailURL checks an IMAP or SMTP URL: the plain scheme is allowed (with STARTTLS), the
// TLS one always; credentials are required.
func mailURL(v, plain, tls string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil {
		return nil, errors.New("is not a URL")
	}
	if u.Scheme != plain && u.Scheme != tls {
		return nil, fmt.Errorf("must start with %s:// or %s://", tls, plain)
	}
	if u.Hostname() == "" {
		return nil, errors.New("needs a host")
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, fmt.Errorf("needs credentials, as in %s://user:password@host", tls)
	}
	return u, nil
}
