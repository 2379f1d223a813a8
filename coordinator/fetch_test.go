package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/natstest"
	"github.com/jettrain/jettrain/protocol"
)

// TestAFetchLostWithTheBrokerIsAskedAgainSoon: a direct get of a gradient
// that the broker read and never answered (it died meanwhile) is asked
// again after fetchWait, not after the client's 5 s default, once the
// coordinator has reconnected. Under the chaos harness such a fetch held
// the run for 5 s after a broker restart.
func TestAFetchLostWithTheBrokerIsAskedAgainSoon(t *testing.T) {
	srv := natstest.Start(t, server.Options{JetStream: true, StoreDir: t.TempDir(), MaxPayload: protocol.MaxPayload})
	proxy := natstest.NewLossy(t, srv.Addr().String())
	nc, err := nats.Connect(proxy.URL(), nats.ReconnectWait(10*time.Millisecond), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := protocol.Ensure(ctx, js, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	subject := protocol.GradSubject("ab12", 3, 0)
	ack, err := js.Publish(ctx, subject, []byte("a gradient"))
	if err != nil {
		t.Fatal(err)
	}
	n := &node{opts: &Options{Log: quietLog()}, grads: grads}

	proxy.Swallow()
	type result struct {
		raw *jetstream.RawStreamMsg
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		raw, err := n.fetch(ctx, ack.Sequence, subject)
		done <- result{raw, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); proxy.Dropped() == 0; time.Sleep(time.Millisecond) { // polling interval
		if time.Now().After(deadline) {
			t.Fatal("the fetch sent no request")
		}
	}
	proxy.Cut() // the broker "restarts": the request it read is lost

	r := <-done
	took := time.Since(start)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if string(r.raw.Data) != "a gradient" {
		t.Fatalf("fetched %q", r.raw.Data)
	}
	// The client's default wait is 5 s; a try of fetchWait (1 s), the
	// pause and the retry take well under 3 s.
	if took > 3*time.Second {
		t.Fatalf("the fetch took %v after its request was lost", took)
	}
}
