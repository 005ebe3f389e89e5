package gateway_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/postgres"
	"github.com/sessiongate/sessiongate/socketio"
)

// A Socket.IO server that admits only the users logged in to an Express app
// sharing its connect-pg-simple table.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	db, err := postgres.Open(ctx, postgres.Config{URL: os.Getenv("DATABASE_URL"), Table: "Session"})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	g, err := gateway.New(gateway.Config{
		Sessions:    db,
		Revocations: db, // PostgreSQL announces ended sessions
		Audit:       db,
		Secrets:     [][]byte{[]byte(os.Getenv("SESSION_SECRET"))},
	})
	if err != nil {
		log.Fatal(err)
	}

	srv := socketio.NewServer(socketio.Options{
		// Browsers from these origins (and the server's own) connect;
		// others get CONNECT_ERROR ORIGIN_NOT_ALLOWED, audited.
		Engine:          engineio.Options{AllowedOrigins: []string{"https://app.example.com"}, VerifyRequest: g.VerifyRequest},
		OriginRefusal:   gateway.OriginRefusal(),
		OnOriginRefused: g.OriginRefused,
		// What other nodes of a cluster learn of a socket (its user and
		// session hash, never the session).
		SocketData: g.SocketData,
	})
	ns := srv.Of("/")
	g.Attach(ns) // before any handler that needs the identity
	ns.OnConnect(func(s *socketio.Socket) {
		id, _ := gateway.IdentityOf(s)
		s.Emit("welcome", map[string]string{"user": id.UserID})
	})
	// Elsewhere: ns.To("user:42").Emit(ctx, "notification", ...) reaches
	// every socket of user 42.

	go g.Run(ctx)
	hs := &http.Server{Addr: ":3000", Handler: srv}
	go hs.ListenAndServe()

	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.Shutdown(shutdownCtx, 5*time.Second) // clients come back within 5s, spread out
	srv.Shutdown(shutdownCtx)
	hs.Shutdown(shutdownCtx)
}
