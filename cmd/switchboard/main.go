// Command switchboard is the one binary of Switchboard, a realtime messaging hub for
// customer-support teams: it serves the app, migrates the database, adds users, seeds a
// demo data set and prints its version.
//
// It is the only package that reads the environment (see the README's configuration
// table); a bad value stops it with one line naming the variable.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `Switchboard — a realtime messaging hub for customer-support teams.

Usage:
  switchboard [serve]                run the server (the default)
  switchboard migrate                apply database migrations and exit
  switchboard user add --email E --name N --role admin|agent [--handle H] --password-stdin
  switchboard demo                   fill the database with a realistic demo data set
  switchboard version                print the version
  switchboard bench fanout [flags]   measure WebSocket fan-out against a bare baseline (docs/benchmarks.md)

Configuration comes from the environment; see README.md.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// run is main with its inputs made explicit, so tests can drive it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "version", "--version":
		fmt.Fprintln(stdout, "switchboard", buildVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "bench":
		return benchCommand(ctx, args, stdin, stdout, stderr)
	case "serve", "migrate", "user", "demo":
	default:
		fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard: configuration: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel(getenv("SWITCHBOARD_LOG_LEVEL"))}))
	cfg.Logger = log
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "serve":
		err = serve(ctx, cfg, stdout)
	case "migrate":
		err = migrate(ctx, cfg, stdout)
	case "user":
		err = user(ctx, cfg, args, stdin, stdout)
	case "demo":
		err = demo(ctx, cfg, stdout)
	}
	if err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "switchboard: %v\n\n%s", err, usage)
			return 2
		}
		fmt.Fprintf(stderr, "switchboard: %v\n", err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

func buildVersion() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}

func serve(ctx context.Context, cfg *config, stdout io.Writer) error {
	ln, err := server.Listen(cfg.Addr)
	if err != nil {
		return err
	}
	cfg.Listener = ln
	s, err := server.New(ctx, cfg.Config)
	if err != nil {
		ln.Close()
		return err
	}
	defer s.Close()
	email, password, created, err := s.Accounts.EnsureAdmin(ctx)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "\n  First start: an admin account was created.\n  Log in at %s as\n    email:    %s\n    password: %s\n  This password is shown only once.\n\n", cfg.PublicURL, email, password)
	}
	return s.Run(ctx, func(addr net.Addr) {
		fmt.Fprintf(stdout, "Switchboard is listening on %s (public URL %s)\n", addr, cfg.PublicURL)
	})
}

func migrate(ctx context.Context, cfg *config, stdout io.Writer) error {
	s, err := server.New(ctx, cfg.Config) // New applies migrations
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintln(stdout, "database is up to date")
	return nil
}

func user(ctx context.Context, cfg *config, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		return &usageError{"user: the only subcommand is add"}
	}
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	email := fs.String("email", "", "email address (the login)")
	name := fs.String("name", "", "display name")
	role := fs.String("role", "agent", "admin or agent")
	handle := fs.String("handle", "", "handle for @mentions (default: the email's local part)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if err := fs.Parse(args[1:]); err != nil {
		return &usageError{"user add: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("user add: unexpected argument %q", fs.Arg(0))}
	}
	if !*fromStdin {
		return &usageError{"user add: --password-stdin is required (passwords never go on the command line)"}
	}
	if *role != string(accounts.RoleAdmin) && *role != string(accounts.RoleAgent) {
		return &usageError{fmt.Sprintf("user add: --role must be admin or agent, not %q", *role)}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("user add: read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	s, err := server.New(ctx, cfg.Config)
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := s.Accounts.CreateUser(ctx, accounts.NewUser{Email: *email, Name: *name, Handle: *handle, Role: accounts.Role(*role), Password: password})
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	fmt.Fprintf(stdout, "created %s %s (id %d, handle @%s)\n", u.Role, u.Email, u.ID, u.Handle)
	return nil
}
