package email_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// selfSigned returns a server certificate for 127.0.0.1 and a client config trusting it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imap test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

// TestIntakeTLS: imaps:// speaks TLS from the start; imap:// to a server that refuses
// plain-text logins (LOGINDISABLED) upgrades with STARTTLS, even on loopback.
func TestIntakeTLS(t *testing.T) {
	for _, mode := range []string{"imaps", "starttls"} {
		t.Run(mode, func(t *testing.T) {
			db := storetest.Open(t, store.SQLite)
			a := newApp(db)
			serverTLS, clientTLS := selfSigned(t)
			mem := imapmemserver.New()
			user := imapmemserver.NewUser(imapUser, imapPass)
			if err := user.Create("INBOX", nil); err != nil {
				t.Fatal(err)
			}
			mem.AddUser(user)
			opts := &imapserver.Options{
				NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
					return pollingIdle{mem.NewSession()}, nil, nil
				},
				Caps:   imap.CapSet{imap.CapIMAP4rev1: {}},
				Logger: discardLogger{},
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			scheme := "imap"
			if mode == "imaps" {
				scheme = "imaps"
				ln = tls.NewListener(ln, serverTLS)
			} else {
				opts.TLSConfig = serverTLS // STARTTLS offered, and no login before it
			}
			srv := imapserver.New(opts)
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { srv.Close() })

			ms := &mailServer{t: t, user: user}
			ms.deliver(simple("jane@example.com", "<tls@x>", "secure", "over TLS"))
			u := &url.URL{Scheme: scheme, User: url.UserPassword(imapUser, imapPass), Host: ln.Addr().String(), Path: "/INBOX"}
			startURL(t, a, u, clientTLS)
			waitFor(t, "the mail over TLS", func() bool { return customerComments(t, db) == 1 })
		})
	}
}
