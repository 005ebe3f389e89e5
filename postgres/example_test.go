package postgres_test

import (
	"context"
	"log"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/postgres"
)

// Open the Node app's session table, create what is missing, and follow the
// sessions that end.
func Example() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Config{
		URL:   "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		Table: "Session", // connect-pg-simple's tableName
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	watchCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	go db.WatchRevocations(watchCtx, func(r sessiongate.Revocation) {
		if r.Resync {
			log.Print("revocations may have been missed: check every live session")
			return
		}
		log.Printf("session %s ended: %s", r.SessionHash[:16], r.Reason)
	})

	s, err := db.Session(ctx, "Z7rE2wO-vP5nQ9xYk_3LmA1bC8dF4gHj")
	switch {
	case sessiongate.ErrorCode(err) == sessiongate.ECodeNotFound:
		log.Print("no such session")
	case err != nil:
		log.Fatal(err)
	case !s.Valid(time.Now()):
		log.Print("session expired")
	}
}
