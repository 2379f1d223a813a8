package natsconn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/internal/natstest"
)

// TestABoundRequestEndsWhenTheConnectionIsLost: a request's context from
// Losses.Bound ends with ErrLost when the server goes away, long before its
// timeout; one bound by a nil Losses does not, and one bound later ends by
// its timeout, not as lost.
func TestABoundRequestEndsWhenTheConnectionIsLost(t *testing.T) {
	srv := natstest.Start(t, server.Options{})
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l := WatchLosses(nc)
	defer l.Close()
	ctx, cancel := l.Bound(context.Background(), time.Hour)
	defer cancel()
	var none *Losses
	plain, cancelPlain := none.Bound(context.Background(), time.Hour)
	defer cancelPlain()

	srv.Shutdown()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the request's context outlived the connection by 10 s")
	}
	if !Lost(ctx) {
		t.Fatalf("the request's context ended with %v, want %v", context.Cause(ctx), ErrLost)
	}
	if plain.Err() != nil {
		t.Fatalf("a request bound by a nil Losses ended with the connection: %v", plain.Err())
	}
	short, cancelShort := l.Bound(context.Background(), time.Millisecond)
	defer cancelShort()
	<-short.Done()
	if !errors.Is(short.Err(), context.DeadlineExceeded) || Lost(short) {
		t.Fatalf("a request past its timeout ended with %v (cause %v)", short.Err(), context.Cause(short))
	}
}
