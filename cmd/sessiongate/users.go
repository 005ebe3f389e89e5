package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sessiongate/sessiongate"
)

// minPasswordLen is the shortest password `users add` accepts.
const minPasswordLen = 8

// usersCommand is a parsed `users` subcommand.
type usersCommand struct {
	action   string // add, list, delete
	email    string
	password string
	hasPass  bool
}

func (m *Main) parseUsers(args []string) error {
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			m.printUsage(m.Stdout)
			return flag.ErrHelp
		}
		return &ConfigError{Setting: "users", Err: errors.New("missing action: add, list or delete")}
	}
	m.users.action, args = args[0], args[1:]
	keep := func(s setting) bool { return s.storeOK }
	fs := m.newFlagSet("users " + m.users.action)
	load := settingFlags(fs, m.Getenv, keep)
	var usage string
	switch m.users.action {
	case "add":
		fs.StringVar(&m.users.email, "email", "", "email of the user")
		fs.Func("password", "password (read from stdin when absent)", func(s string) error {
			m.users.password, m.users.hasPass = s, true
			return nil
		})
		usage = "users add --email E [--password P]\n\nAdds a user of the embedded login. Without --password, the password is the first line of stdin."
	case "list":
		usage = "users list\n\nLists the users of the embedded login."
	case "delete":
		fs.StringVar(&m.users.email, "email", "", "email of the user")
		usage = "users delete --email E\n\nDeletes a user of the embedded login and its sessions, which ends its sockets."
	default:
		return &ConfigError{Setting: "users", Err: fmt.Errorf("unknown action %q: add, list or delete", m.users.action)}
	}
	help := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: sessiongate %s\n\n", usage)
		printSettings(w, keep)
	}
	if err := m.parseFlagSet(fs, args, help); err != nil {
		return err
	}
	if m.users.action != "list" {
		if m.users.email == "" {
			return &ConfigError{Setting: "--email", Err: errors.New("required")}
		}
		if _, err := mail.ParseAddress(m.users.email); err != nil || strings.ContainsAny(m.users.email, "<> ") {
			return &ConfigError{Setting: "--email", Err: fmt.Errorf("invalid email %q", m.users.email)}
		}
	}
	if m.users.hasPass && len(m.users.password) < minPasswordLen {
		return &ConfigError{Setting: "--password", Err: fmt.Errorf("must be at least %d characters", minPasswordLen)}
	}
	return load(&m.Config)
}

func (m *Main) runUsers(ctx context.Context) error {
	s, err := openStore(ctx, &m.Config)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := checkSchema(ctx, &m.Config, s); err != nil {
		return err
	}
	switch m.users.action {
	case "add":
		return m.addUser(ctx, s)
	case "list":
		return m.listUsers(ctx, s)
	default:
		return m.deleteUser(ctx, s)
	}
}

func (m *Main) addUser(ctx context.Context, users sessiongate.UserStore) error {
	pw := m.users.password
	if !m.users.hasPass {
		line, err := bufio.NewReader(m.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
		if len(pw) < minPasswordLen {
			return &ConfigError{Setting: "password (stdin)", Err: fmt.Errorf("must be at least %d characters", minPasswordLen)}
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	u, err := users.CreateUser(ctx, m.users.email, string(hash))
	if sessiongate.ErrorCode(err) == sessiongate.ECodeConflict {
		return fmt.Errorf("user %s already exists", m.users.email)
	} else if err != nil {
		return fmt.Errorf("add user: %w", err)
	}
	fmt.Fprintf(m.Stdout, "added user %d %s\n", u.ID, u.Email)
	return nil
}

func (m *Main) listUsers(ctx context.Context, users sessiongate.UserStore) error {
	list, err := users.Users(ctx)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tCREATED")
	for _, u := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", u.ID, u.Email, u.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func (m *Main) deleteUser(ctx context.Context, users sessiongate.UserStore) error {
	u, err := users.UserByEmail(ctx, m.users.email)
	if sessiongate.ErrorCode(err) == sessiongate.ECodeNotFound {
		return fmt.Errorf("no user %s", m.users.email)
	} else if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	n, err := users.DeleteUser(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	fmt.Fprintf(m.Stdout, "deleted user %d %s and its %d sessions\n", u.ID, u.Email, n)
	return nil
}
