package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	proxy, err := faultproxy.New(s3URL)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	st, err := objstore.Open(context.Background(), objstore.Config{Endpoint: proxy.URL(), AccessKey: objstore.DefaultAccessKey,
		SecretKey: objstore.DefaultSecretKey, Bucket: fmt.Sprintf("t%d-%d", os.Getpid(), bucketSeq.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()

	proxy.Fail(503, "ServiceUnavailable")
	type result struct {
		res *Result
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	t.Cleanup(func() { cancel(); <-finished }) // a failed test leaves no run retrying behind it
	go func() {
		defer close(finished)
		res, err := train(t, ctx, connect(t, srv.ClientURL()), st, cfg, Hooks{})
		done <- result{res, err}
	}()
	// Two rounds of the client's tries at least: the coordinator came back
	// after the first failed.
	for deadline := time.Now().Add(time.Minute); proxy.Refused() < 6; time.Sleep(10 * time.Millisecond) {
		select {
		case r := <-done:
			t.Fatalf("the run ended while its store answered 503: %v", r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store was asked %d times in a minute", proxy.Refused())
		}
	}
	proxy.Pass()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("the run failed once its store answered again: %v", r.err)
		}
		if r.res.Epoch != cfg.Epochs {
			t.Fatalf("the run ended in epoch %d, want %d", r.res.Epoch, cfg.Epochs)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the run did not end within 2 minutes of its store answering again")
	}
}
