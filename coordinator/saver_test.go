package coordinator

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jettrain/jettrain/model"
)

// A failing save warns once, shows every further attempt at debug level
// (what an operator, or the chaos harness, watches during an outage) and
// says when the store is back.
func TestSaverRetryReportsEveryAttempt(t *testing.T) {
	var logs bytes.Buffer
	s := &saver{run: "r", log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	attempts := 0
	ok := s.retry(context.Background(), "checkpoint", func() error {
		if attempts++; attempts < 4 {
			return errors.New("endpoint unreachable")
		}
		return nil
	})
	if !ok || attempts != 4 {
		t.Fatalf("retry: ok %v after %d attempts", ok, attempts)
	}
	out := logs.String()
	for want, n := range map[string]int{
		"level=WARN msg=\"coordinator: saving checkpoint failed; training goes on":  1,
		"level=DEBUG msg=\"coordinator: saving checkpoint failed again; retrying\"": 2,
		"object store is back; checkpoint saved":                                    1,
		"saving checkpoint failed":                                                  3, // the chaos harness counts these
	} {
		if got := strings.Count(out, want); got != n {
			t.Errorf("%d lines with %q, want %d:\n%s", got, want, n, out)
		}
	}
}

// TestAStoreDenyingDeletesStillCommits runs a run whose S3 store refuses
// every delete (a policy without s3:DeleteObject): each checkpoint is
// committed all the same, its older ones stay, the run finishes, and the
// grads stream is trimmed as the commits go. The commit point is the
// manifest; a refused prune after it is a warning, not a commit to retry.
func TestAStoreDenyingDeletesStillCommits(t *testing.T) {
	cfg := smallConfig(t, "epochs=1", "keep=2")
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	proxy, st := storeBehindProxy(t)
	proxy.FailMethod(http.MethodDelete, http.StatusForbidden, "AccessDenied")
	want, ds := trainLocal(t, cfg)
	last := uint64(model.StepsPerEpoch(ds.Train.N, cfg.BatchSize) * cfg.Epochs)

	p := newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()
	run := inBackground(t, func(ctx context.Context) (*Result, error) {
		return train(t, ctx, nc, st, cfg, Hooks{})
	})
	r := run.result(t, 2*time.Minute, "of its store refusing deletes")
	if r.err != nil {
		t.Fatalf("the run failed: %v", r.err)
	}
	if r.res.Digest != want.Digest {
		t.Fatalf("weights %x, want %x", r.res.Digest, want.Digest)
	}
	ctx := context.Background()
	man, err := st.Manifest(ctx, cfg.Signature())
	if err != nil {
		t.Fatal(err)
	}
	if man.Step != last {
		t.Fatalf("the manifest names step %d, want the last, %d", man.Step, last)
	}
	steps, err := st.Checkpoints(ctx, cfg.Signature())
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) <= cfg.Keep || proxy.Refused() == 0 {
		t.Fatalf("%d checkpoints kept (keep %d), %d requests refused: the store did not refuse the prunes", len(steps), cfg.Keep, proxy.Refused())
	}
	if n := runGradients(t, ctx, nc, cfg.Signature()); n != 0 {
		t.Fatalf("the finished run left gradients of %d shards in the stream, want none", n)
	}
}

// TestTheBestWeightsAreStoredBeforeTheirCheckpoint stops a run as soon as
// the checkpoint of its first epoch's end, the best epoch so far, is
// committed: best.safetensors already holds that epoch's weights. Written
// after the commit, a stop there left it behind history.json for good.
func TestTheBestWeightsAreStoredBeforeTheirCheckpoint(t *testing.T) {
	cfg := smallConfig(t, "epochs=2", "checkpoint_every=1000")
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	st := openStore(t, "")
	ds, err := model.LoadDataset(cfg.Dataset, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	epochEnd := uint64(model.StepsPerEpoch(ds.Train.N, cfg.BatchSize))
	want, err := TrainLocal(context.Background(), cfg, ds, epochEnd)
	if err != nil {
		t.Fatal(err)
	}

	p := newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var saved atomic.Bool // set on the saver's goroutine
	_, err = train(t, ctx, nc, st, cfg, Hooks{Saved: func(step uint64) {
		if step == epochEnd {
			saved.Store(true)
			cancel()
		}
	}})
	if !saved.Load() {
		t.Fatalf("the run ended (%v) without committing the checkpoint of step %d", err, epochEnd)
	}
	best, err := st.GetBest(context.Background(), cfg.Signature())
	if err != nil {
		t.Fatalf("best weights after the best epoch's checkpoint was committed: %v", err)
	}
	net, _, err := cfg.NewModel(ds)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	at := map[string]model.Param{}
	for _, p := range net.Layout() {
		at[p.Name] = p
	}
	flat := make([]float32, net.Layout().Size())
	for _, tn := range best {
		copy(flat[at[tn.Name].Offset:], tn.Data)
	}
	if got := model.Digest(flat); got != want.Digest {
		t.Fatalf("best.safetensors holds weights %x, want the first epoch's %x", got, want.Digest)
	}
}
