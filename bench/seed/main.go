// Command seed writes logged-in express-session sessions into a
// connect-pg-simple table, for the load tool, and the Cookie headers a browser
// would send for them into a credentials file (<sid>\t<Cookie header> a line).
//
// Usage:
//
//	seed -db 'postgres://postgres@127.0.0.1:5432/test?search_path=bench' \
//	    -table session -create -n 10000 -users 1 -secret s3cret -out creds.tsv
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sessiongate/sessiongate/bench/internal/fixture"
	"github.com/sessiongate/sessiongate/bench/internal/load"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		db     = flag.String("db", "", "PostgreSQL URL; search_path=<schema> selects the schema")
		table  = flag.String("table", "session", "session table")
		create = flag.Bool("create", false, "create the table (connect-pg-simple's table.sql) if missing")
		out    = flag.String("out", "", "credentials file to write (required)")
		opts   fixture.Options
	)
	flag.IntVar(&opts.N, "n", 1000, "sessions to insert")
	flag.IntVar(&opts.Users, "users", 0, "distinct passport.user ids (0: one user per session)")
	flag.StringVar(&opts.Secret, "secret", "", "cookie signing secret (required)")
	flag.DurationVar(&opts.MaxAge, "max-age", 24*time.Hour, "cookie maxAge")
	flag.Parse()
	if *db == "" || *out == "" || opts.Secret == "" {
		return errors.New("-db, -secret and -out are required")
	}
	if opts.N < 1 || opts.N > load.MaxConnections*5 {
		return fmt.Errorf("-n must be in 1..%d", load.MaxConnections*5)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if *create {
		if err := fixture.CreateTable(ctx, *db, *table); err != nil {
			return err
		}
	}
	creds, err := fixture.Seed(ctx, *db, *table, opts)
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := load.WriteCredentials(f, creds); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
