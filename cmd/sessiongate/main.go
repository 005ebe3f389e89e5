// Command sessiongate is a Socket.IO v4 server that admits only browsers
// holding a valid express-session session.
//
// Usage:
//
//	sessiongate [serve] [flags]       run the server (the default command)
//	sessiongate migrate [flags]       create or update the database objects
//	sessiongate users add --email E [--password P]   (password from stdin if absent)
//	sessiongate users list
//	sessiongate users delete --email E
//	sessiongate version
//
// Every setting is an environment variable with a matching flag
// (SESSION_TABLE ↔ --session-table); flags win. `sessiongate serve --help`
// lists them all.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, NewMain(), os.Args[1:]))
}

// run runs m with args as the process does, until ctx ends for serve, and
// returns the exit status: 0, 1 for a runtime failure, 2 for a bad setting
// or usage.
func run(ctx context.Context, m *Main, args []string) int {
	if err := m.ParseFlags(ctx, args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return m.fail(err)
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return m.fail(err)
	}
	if !m.Serving() {
		return 0
	}
	var status int
	select {
	case <-ctx.Done():
	case err := <-m.Done():
		status = m.fail(err)
	}
	if err := m.Close(); err != nil && status == 0 {
		status = m.fail(err)
	}
	return status
}

// fail prints err as one line and returns its exit status.
func (m *Main) fail(err error) int {
	fmt.Fprintln(m.Stderr, "sessiongate: "+err.Error())
	return exitCode(err)
}

// exitCode is 2 for a bad setting or usage, 1 otherwise.
func exitCode(err error) int {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return 2
	}
	return 1
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Main is the program: ParseFlags reads the command line and the
// environment, Run executes the command (for serve, starts serving and
// returns), Close stops it gracefully. Tests drive the real program through
// it with their own settings.
type Main struct {
	// Standard streams and the environment; NewMain sets the process's.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string

	// Config is filled by ParseFlags.
	Config Config

	command string // serve, migrate, users, version
	users   usersCommand

	srv *server // while serving
}

// NewMain returns a Main using the process's streams and environment.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// ParseFlags parses args (without the program name) and the environment.
// It returns flag.ErrHelp after printing the help for -h/--help, and a
// *ConfigError naming the setting for a bad one.
func (m *Main) ParseFlags(ctx context.Context, args []string) error {
	m.command = "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		m.command, args = args[0], args[1:]
	}
	switch m.command {
	case "serve":
		return m.parseServe(args)
	case "migrate":
		return m.parseStoreOnly("migrate", args, "create or update the session table, its revocation trigger, the audit and users tables (PostgreSQL), or the SQLite file")
	case "users":
		return m.parseUsers(args)
	case "version":
		return nil
	case "help":
		m.printUsage(m.Stdout)
		return flag.ErrHelp
	}
	m.printUsage(m.Stderr)
	return &ConfigError{Setting: "command", Err: fmt.Errorf("unknown command %q", m.command)}
}

func (m *Main) printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  sessiongate [serve] [flags]                       run the server (default)
  sessiongate migrate [flags]                       create the database objects (idempotent)
  sessiongate users add --email E [--password P]    add a login user (password read from stdin when absent)
  sessiongate users list                            list the users
  sessiongate users delete --email E                delete a user
  sessiongate version                               print the version

Run "sessiongate serve --help" for every setting.
`)
}

func (m *Main) newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("sessiongate "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlagSet runs fs.Parse and turns its errors into one-line
// *ConfigErrors; for -h it prints help and returns flag.ErrHelp.
func (m *Main) parseFlagSet(fs *flag.FlagSet, args []string, help func(io.Writer)) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		help(m.Stdout)
		return flag.ErrHelp
	case err != nil:
		return &ConfigError{Setting: "flags", Err: err}
	case fs.NArg() > 0:
		return &ConfigError{Setting: "flags", Err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func (m *Main) parseServe(args []string) error {
	all := func(setting) bool { return true }
	fs := m.newFlagSet("serve")
	load := settingFlags(fs, m.Getenv, all)
	help := func(w io.Writer) {
		fmt.Fprint(w, "Usage: sessiongate serve [flags]\n\nRuns the server. Every setting is an environment variable or the flag beside it (the flag wins).\n\n")
		printSettings(w, all)
	}
	if err := m.parseFlagSet(fs, args, help); err != nil {
		return err
	}
	if err := load(&m.Config); err != nil {
		return err
	}
	return m.Config.validate()
}

// parseStoreOnly parses the settings that choose the store, for the
// commands that only use it.
func (m *Main) parseStoreOnly(name string, args []string, what string) error {
	keep := func(s setting) bool { return s.storeOK }
	fs := m.newFlagSet(name)
	load := settingFlags(fs, m.Getenv, keep)
	help := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: sessiongate %s [flags]\n\n%s.\n\n", name, what)
		printSettings(w, keep)
	}
	if err := m.parseFlagSet(fs, args, help); err != nil {
		return err
	}
	return load(&m.Config)
}

// Run executes the command. For serve it opens the store, starts listening
// and returns; Addr then gives the bound address, Done reports a failure,
// and Close stops it. Other commands run to completion.
func (m *Main) Run(ctx context.Context) error {
	switch m.command {
	case "serve":
		srv, err := startServer(ctx, m.Config, m.Stdout, m.Stderr)
		if err != nil {
			return err
		}
		m.srv = srv
		return nil
	case "migrate":
		return m.migrate(ctx)
	case "users":
		return m.runUsers(ctx)
	case "version":
		fmt.Fprintln(m.Stdout, "sessiongate", version)
		return nil
	}
	return fmt.Errorf("command %q was not parsed", m.command)
}

// Serving reports whether Run started a server.
func (m *Main) Serving() bool { return m.srv != nil }

// Addr returns the address the server listens on ("127.0.0.1:41234"), or ""
// when not serving.
func (m *Main) Addr() string {
	if m.srv == nil {
		return ""
	}
	return m.srv.addr()
}

// Done receives the error that stopped the server on its own (the listener
// failed); it never receives when not serving.
func (m *Main) Done() <-chan error {
	if m.srv == nil {
		return nil
	}
	return m.srv.done
}

// Close stops a running server gracefully within SHUTDOWN_TIMEOUT: it stops
// accepting, tells every client server_restart, flushes the audit trail and
// closes the store. It is safe to call more than once.
func (m *Main) Close() error {
	if m.srv == nil {
		return nil
	}
	return m.srv.shutdown()
}
