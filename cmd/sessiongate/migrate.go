package main

import (
	"context"
	"fmt"
)

// migrate creates what the store needs. It may run any number of times.
func (m *Main) migrate(ctx context.Context) error {
	s, err := openStore(ctx, &m.Config) // SQLite is migrated by opening it
	if err != nil {
		return err
	}
	defer s.Close()
	if m.Config.usePostgres() {
		if err := s.Migrate(ctx); err != nil {
			return fmt.Errorf("migrate %s: %w", s.desc, err)
		}
		fmt.Fprintf(m.Stdout, "migrated %s: the session table (created if missing, never altered), the revocation trigger, the sessiongate_audit and sessiongate_users tables are in place\n", s.desc)
		return nil
	}
	fmt.Fprintf(m.Stdout, "migrated %s: sessions, audit and users tables are in place\n", s.desc)
	return nil
}
