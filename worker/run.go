package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

var errStale = errors.New("worker: the weights version is gone from the params stream")

// run is what a worker keeps for one run: the network, the dataset, the
// newest weights version, and reusable batch buffers.
type run struct {
	sig  string
	cfg  config.Config
	net  *model.Network
	data *model.Dataset
	size int // parameters

	step    uint64
	weights []float32
	digest  [32]byte
	haveW   bool
	check   *digestCheck // of weights, running alongside the first gradient on them

	x    []float32
	y    []uint8
	grad []float32
}

// runCache keeps the most recent runs (their datasets are loaded once per
// process by model.LoadDataset).
// It belongs to one worker goroutine.
type runCache struct {
	dataDir string
	fetch   *fetcher // nil: datasets only from local files
	runs    []*run
}

const keptRuns = 2

func newRunCache(dataDir string, fetch *fetcher) *runCache {
	return &runCache{dataDir: dataDir, fetch: fetch}
}

func (c *runCache) get(ctx context.Context, kv jetstream.KeyValue, sig string) (*run, error) {
	for i, r := range c.runs {
		if r.sig == sig {
			if i != 0 {
				c.runs[0], c.runs[i] = c.runs[i], c.runs[0]
			}
			return r, nil
		}
	}
	e, err := kv.Get(ctx, sig)
	if err != nil {
		return nil, fmt.Errorf("worker: run %s config: %w", sig, err)
	}
	cfg, err := config.Parse(e.Value())
	if err != nil {
		return nil, fmt.Errorf("worker: run %s: %w", sig, err)
	}
	if cfg.Signature() != sig {
		return nil, fmt.Errorf("worker: run %s: config has signature %s", sig, cfg.Signature())
	}
	dir := cfg.DataDir
	if c.dataDir != "" {
		dir = c.dataDir
	}
	// model.LoadDataset keeps one copy per process, shared with the
	// coordinator and the other in-process workers.
	ds, err := model.LoadDataset(cfg.Dataset, dir)
	if err != nil && c.fetch != nil {
		// No local copy: fetch the files the coordinator shared.
		ds, err = c.fetch.dataset(ctx, kv, sig, err)
	}
	if err != nil {
		return nil, err
	}
	net, err := model.New(cfg.ModelSpec(), ds.Shape, ds.Classes)
	if err != nil {
		return nil, err
	}
	r := &run{sig: sig, cfg: cfg, net: net, data: ds, size: net.Layout().Size()}
	if len(c.runs) == keptRuns {
		c.runs[keptRuns-1].net.Close()
		c.runs = c.runs[:keptRuns-1]
	}
	c.runs = append([]*run{r}, c.runs...)
	return r, nil
}

func (r *run) checkTask(t *protocol.Task) error {
	if int(t.Shards) != r.cfg.Shards {
		return fmt.Errorf("%d shards, the run has %d", t.Shards, r.cfg.Shards)
	}
	for _, i := range t.Indices {
		if int(i) >= r.data.Train.N {
			return fmt.Errorf("sample %d out of %d", i, r.data.Train.N)
		}
	}
	return nil
}

// params returns weights version step: cached, received by subscription,
// or fetched from the params stream. A version not there yet (its publish is
// in flight) is waited for briefly; one still missing after that belongs to
// a task from an earlier incarnation of the run and is stale.
func (r *run) params(ctx context.Context, s jetstream.Stream, vs *versions, step uint64) ([]float32, [32]byte, error) {
	if r.haveW && r.step == step {
		return r.weights, r.digest, nil
	}
	p := vs.wait(ctx, r.sig, step, 50*time.Millisecond)
	for wait := time.Millisecond; p == nil; wait *= 2 {
		raw, err := s.GetLastMsgForSubject(ctx, protocol.ParamsSubject(r.sig, step))
		if err == nil {
			p = new(protocol.Params)
			if err := p.UnmarshalBinary(raw.Data); err != nil {
				return nil, [32]byte{}, fmt.Errorf("params seq %d: %w", raw.Sequence, err)
			}
			break
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, [32]byte{}, err
		}
		if wait > time.Second {
			return nil, [32]byte{}, fmt.Errorf("%w: run %s step %d", errStale, r.sig, step)
		}
		if !sleep(ctx, wait) {
			return nil, [32]byte{}, ctx.Err()
		}
		if p = vs.get(r.sig, step); p != nil {
			break
		}
	}
	if p.Run != r.sig || p.Step != step || len(p.Weights) != r.size {
		return nil, [32]byte{}, fmt.Errorf("params of run %s step %d: %d weights, the network has %d", p.Run, p.Step, len(p.Weights), r.size)
	}
	r.step, r.weights, r.digest, r.haveW = step, p.Weights, p.Digest, true
	r.check = checkDigest(p)
	return r.weights, r.digest, nil
}

// verified waits for the digest check of the current weights, and forgets
// weights that failed it so the next task fetches them again.
func (r *run) verified(ctx context.Context) error {
	err := r.check.wait(ctx)
	if err != nil && !errors.Is(err, ctx.Err()) {
		r.haveW = false
	}
	return err
}

// digestCheck hashes a weights version in the background: the sha256 of
// 400 KB takes about as long as a quarter of a shard's gradient, and the
// gradient computed meanwhile is published only if the weights match their
// digest.
type digestCheck struct {
	done chan struct{}
	err  error
}

func checkDigest(p *protocol.Params) *digestCheck {
	c := &digestCheck{done: make(chan struct{})}
	go func() {
		if model.Digest(p.Weights) != p.Digest {
			c.err = fmt.Errorf("params of run %s step %d: weights digest mismatch", p.Run, p.Step)
		}
		close(c.done)
	}()
	return c
}

func (c *digestCheck) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gradient computes the shard's gradient at weights.
func (r *run) gradient(t *protocol.Task, weights []float32) (*protocol.Grad, error) {
	n := len(t.Indices)
	dim := r.data.Shape[0] * r.data.Shape[1] * r.data.Shape[2]
	if cap(r.x) < n*dim {
		r.x = make([]float32, n*dim)
		r.y = make([]uint8, n)
	}
	x, y := r.x[:n*dim], r.y[:n]
	r.data.Train.Gather(t.Indices, x, y)
	if len(r.grad) != r.size {
		r.grad = make([]float32, r.size)
	}
	st, err := r.net.Gradient(weights, x, y, r.grad)
	if err != nil {
		return nil, err
	}
	return &protocol.Grad{
		Run: t.Run, Step: t.Step, Shard: t.Shard,
		LossSum: st.LossSum, Correct: uint32(st.Correct), Count: uint32(st.Count), Grad: r.grad,
	}, nil
}
