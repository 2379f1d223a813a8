package coordinator

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/faultproxy"
	"github.com/jettrain/jettrain/objstore"
)

// A broker that is electing a leader answers 503; the coordinator rides
// that out. Errors about the run's inputs end the run.
func TestTransientErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("coordinator: reading the grads stream: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}), true},
		{fmt.Errorf("lease: %w", jetstream.ErrNoStreamResponse), true},
		{fmt.Errorf("coordinator: %w", &objstore.Error{Op: "get", Kind: objstore.ErrUnavailable}), true},
		{fmt.Errorf("coordinator: %w", &objstore.Error{Op: "get", Kind: objstore.ErrCorrupt}), false},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeBadRequest, Description: "bad request"}, false},
		{fmt.Errorf("%w: step 3 was committed with other weights", ErrFenced), false},
		{errors.New("evaluating epoch 2: shape mismatch"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestAStoreAnsweringServerErrorsIsWaitedFor starts a run while its S3
// store answers 503 (an object store restarting): the coordinator retries
// until the store answers, then trains the run to its end.
func TestAStoreAnsweringServerErrorsIsWaitedFor(t *testing.T) {
	cfg := smallConfig(t, "epochs=1")
	srv := runNATS(t, t.TempDir())
	proxy, st := storeBehindProxy(t)
	p := newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()

	proxy.Fail(503, "ServiceUnavailable")
	run := inBackground(t, func(ctx context.Context) (*Result, error) {
		return train(t, ctx, connect(t, srv.ClientURL()), st, cfg, Hooks{})
	})
	// Two rounds of the client's tries at least: the coordinator came back
	// after the first failed.
	run.until(t, "six refused requests to the store", func() bool { return proxy.Refused() >= 6 },
		func() string { return fmt.Sprintf("the store was asked %d times", proxy.Refused()) })
	proxy.Pass()
	r := run.result(t, 2*time.Minute, "of its store answering again")
	if r.err != nil {
		t.Fatalf("the run failed once its store answered again: %v", r.err)
	}
	if r.res.Epoch != cfg.Epochs {
		t.Fatalf("the run ended in epoch %d, want %d", r.res.Epoch, cfg.Epochs)
	}
}

// storeBehindProxy is a fresh bucket of the test S3 server, reached
// through a faultproxy the test can make answer server errors.
func storeBehindProxy(t *testing.T) (*faultproxy.Proxy, *objstore.Store) {
	t.Helper()
	proxy, err := faultproxy.New(s3URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	st, err := objstore.Open(context.Background(), objstore.Config{Endpoint: proxy.URL(), AccessKey: objstore.DefaultAccessKey,
		SecretKey: objstore.DefaultSecretKey, Bucket: freshBucket("")})
	if err != nil {
		t.Fatal(err)
	}
	return proxy, st
}

// trainResult is what a run in the background returned.
type trainResult struct {
	res *Result
	err error
}

// backgroundRun is a run a test started on a goroutine of its own.
type backgroundRun struct{ done chan trainResult }

// inBackground runs train on a goroutine of its own, with a context the
// test's end cancels, and waits for it then: a failed test leaves no run
// retrying behind it.
func inBackground(t *testing.T, train func(context.Context) (*Result, error)) *backgroundRun {
	ctx, cancel := context.WithCancel(context.Background())
	b := &backgroundRun{done: make(chan trainResult, 1)}
	finished := make(chan struct{})
	t.Cleanup(func() { cancel(); <-finished })
	go func() {
		defer close(finished)
		res, err := train(ctx)
		b.done <- trainResult{res, err}
	}()
	return b
}

// until polls cond for up to a minute, and fails the test, saying what did
// not happen and detail, if the run ends first or cond does not come.
func (b *backgroundRun) until(t *testing.T, what string, cond func() bool, detail func() string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) { // polling interval
		select {
		case r := <-b.done:
			t.Fatalf("the run ended before %s: %v\n%s", what, r.err, detail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen in a minute\n%s", what, detail())
		}
	}
}

// result waits up to within for the run to end, and fails the test if it
// does not, saying within what (after) it should have.
func (b *backgroundRun) result(t *testing.T, within time.Duration, after string) trainResult {
	t.Helper()
	select {
	case r := <-b.done:
		return r
	case <-time.After(within):
		t.Fatalf("the run did not end within %v %s", within, after)
		return trainResult{}
	}
}
