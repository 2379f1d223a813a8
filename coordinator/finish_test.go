package coordinator

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/objstore"
)

// A run whose object store is down when training ends says, after
// finishQuiet, that it waits for the store to take the final checkpoint,
// and why the saves fail; once the store is back it completes, with the
// weights of the in-process loop.
func TestFinishSaysItWaitsForTheStore(t *testing.T) {
	cfg := smallConfig(t)
	ds, err := model.LoadDataset(cfg.Dataset, "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := TrainLocal(context.Background(), cfg, ds, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := uint64(model.StepsPerEpoch(ds.Train.N, cfg.BatchSize) * cfg.Epochs)

	dir, addr := t.TempDir(), freeAddr()
	s3, err := objstore.Serve(context.Background(), dir, addr, objstore.DefaultAccessKey, objstore.DefaultSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := objstore.Open(context.Background(), objstore.Config{Endpoint: s3.URL(), AccessKey: objstore.DefaultAccessKey, SecretKey: objstore.DefaultSecretKey, Bucket: "finish"})
	if err != nil {
		t.Fatal(err)
	}
	srv := runNATS(t, t.TempDir())
	p := newPool(t, srv.ClientURL())
	p.add(1)

	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The store goes down two steps before the end, and comes back once
	// the coordinator says it waits for it.
	hooks := Hooks{Committed: func(step uint64, _ [8]byte) {
		if step == last-2 {
			_ = s3.Close()
		}
	}}
	back := make(chan error, 1)
	go func() {
		// Past the deadline it comes back anyway, for the run to end and
		// the test to fail below.
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(logs.String(), "waiting for the object store to take the final checkpoint") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		s3, err := objstore.Serve(context.Background(), dir, addr, objstore.DefaultAccessKey, objstore.DefaultSecretKey)
		if err == nil {
			t.Cleanup(func() { _ = s3.Close() })
		}
		back <- err
	}()
	res, err := Train(context.Background(), connect(t, srv.ClientURL()), st, Options{Config: cfg, Log: log, Hooks: hooks, AckWait: 2 * time.Second})
	serveErr := <-back // the server is back (or failed to come back) before any verdict
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if serveErr != nil {
		t.Fatal(serveErr)
	}
	line := logs.String()
	if i := strings.Index(line, "waiting for the object store"); i < 0 {
		t.Fatalf("no word of the wait in the log:\n%s", line)
	} else {
		line = line[i:]
		line = line[:strings.IndexByte(line+"\n", '\n')]
	}
	if !strings.Contains(line, "failing=") {
		t.Fatalf("the wait's line does not say why the saves fail: %s", line)
	}
	if res.Digest != want.Digest || res.Step != last {
		t.Fatalf("the run ended at step %d with weights %x, want step %d and %x", res.Step, res.Digest, last, want.Digest)
	}
}
