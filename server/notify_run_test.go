package server_test

import (
	"context"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/notify"
	"github.com/switchboard-hq/switchboard/server"
	"github.com/switchboard-hq/switchboard/store"
)

// TestNotifyEmailWorkerRunsWithTheServer checks the wiring the other tests skip by
// ticking by hand: Server.Run starts the leased email worker, which mails on its own.
func TestNotifyEmailWorkerRunsWithTheServer(t *testing.T) {
	m := newMTA(t)
	e := startWith(t, store.SQLite, func(c *server.Config) {
		c.Addr = "127.0.0.1:0"
		c.SMTP = m.url
		c.MailFrom = &mail.Address{Name: "Acme Support", Address: "help@acme.test"}
		c.Notify = notify.Config{EmailWindow: 100 * time.Millisecond, Poll: 20 * time.Millisecond}
	})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- e.s.Run(ctx, func(net.Addr) { close(ready) }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	ne := &notifyEnv{env: e, mta: m}
	alice := e.agent("alice", accounts.RoleAdmin)
	e.agent("bob", accounts.RoleAgent)
	issue := ne.newIssue(alice, "SMw1", "+15551235001", "hello")
	ne.assign(alice, issue, e.userID("bob"))
	deadline := time.Now().Add(10 * time.Second)
	for len(m.received()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the worker sent nothing within 10 s")
		}
		time.Sleep(20 * time.Millisecond) // polling the MTA; the worker runs on its own clock
	}
	if mails := ne.mails(); len(mails) != 1 || mails[0].to[0] != "bob@example.com" || !strings.Contains(mails[0].subject, "assigned you") {
		t.Errorf("mails %+v", mails)
	}
}
