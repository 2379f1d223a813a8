package worker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/protocol"
)

var errStale = errors.New("worker: stale task: its step is already committed")

// errRunOutOfReach means a run's config, or whether its coordinator shared
// its dataset, could not be read for a reason that passes (the broker
// restarting, a lost request): its task is handed back for later, not
// dropped as a task of an unknown or broken run.
var errRunOutOfReach = errors.New("worker: the run is out of reach for now")

// errNoDataset means this worker could not load a run's dataset: no local
// copy and none it could fetch, a download that failed, a cache it could
// not write. Another worker may serve the run, so its tasks are handed
// back, not dropped; the worker tries again after datasetRetry, and meets
// the tasks it takes meanwhile with the same error.
var errNoDataset = errors.New("worker: cannot load the run's dataset")

// datasetRetry is how long a worker that failed to load a run's dataset
// waits before it tries again. Tests shorten it.
var datasetRetry = 5 * time.Second

// run is what a worker keeps for one run: the network, the dataset, its
// replica of the training state, and reusable batch buffers.
type run struct {
	sig  string
	cfg  config.Config
	net  *model.Network
	data *model.Dataset
	size int // parameters
	rep  *replica
	der  derived

	shardTime time.Duration // how long the last shard's gradient took

	x     []float32
	y     []uint8
	parts model.Parts // the last gradient, in the network's buffers
}

// runCache keeps the most recent runs (their datasets are loaded once per
// process by model.LoadDataset).
// It belongs to one worker goroutine.
type runCache struct {
	dataDir string
	fetch   *fetcher         // nil: datasets only from local files
	nc      *nats.Conn       // inboxes subscribe on it
	losses  *natsconn.Losses // ends lookups in flight when the connection is lost
	runs    []*run
	noData  map[string]datasetFailure // by run: the last failed load of its dataset
	peers   *Peers                    // the process's workers the inboxes join, if any
	worker  string                    // this worker's id, among those peers
	bufs    *gradBuffers              // the replicas' sums are folded in them; the worker's gradients go out in them
	loaded  atomic.Uint64             // runs set up so far (Worker.RunsLoaded)
}

// datasetFailure is a failed load of a run's dataset, and when it failed.
type datasetFailure struct {
	at  time.Time
	err error
}

// keptRuns is how many runs a worker keeps set up at once: its network,
// its replica and its inbox, which hears every gradient of the run. The
// runs share the workers' one task consumer, so their tasks come
// interleaved, and a run put away to make room for another is set up again
// at its next task, its replica started over from the run's snapshot. Four
// serve a sweep of up to four runs at once without that; each one kept
// costs its replica's memory and the bandwidth of its gradients.
const keptRuns = 4

func newRunCache(dataDir string, fetch *fetcher, nc *nats.Conn) *runCache {
	return &runCache{dataDir: dataDir, fetch: fetch, nc: nc, bufs: newGradBuffers()}
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
	// Bounded as a lookup is: a request asked as the broker went down is
	// never answered.
	gctx, cancel := c.losses.Bound(ctx, lookupWait)
	e, err := kv.Get(gctx, sig)
	cancel()
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, fmt.Errorf("worker: run %s config: %w", sig, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: run %s: %w", errRunOutOfReach, sig, err)
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
	if f, ok := c.noData[sig]; ok && time.Since(f.at) < datasetRetry {
		return nil, f.err
	}
	// The copy the coordinator shared: local files must have its digest
	// (other files that parse as well, an older download or another
	// dataset of the same shape, would give other gradients, and the run
	// other weights, with nothing to tell), and it is what a worker without
	// them fetches.
	var shared sharedCopy
	if cfg.Dataset == model.DatasetFashionMNIST {
		if shared, err = sharedDataset(ctx, c.losses, kv, sig); err != nil {
			return nil, err
		}
	}
	ds, err := model.LoadDataset(cfg.Dataset, dir)
	if err == nil && shared.found && ds.Digest != shared.ref.Digest {
		err = fmt.Errorf("worker: the %s files in %s have digest %s, run %s's have %s", ds.Name, dir, ds.Digest, sig, shared.ref.Digest)
	}
	if err != nil && c.fetch != nil {
		// No local copy, or not the run's: fetch the files the
		// coordinator shared.
		ds, err = c.fetch.dataset(ctx, shared, err)
	}
	if err != nil {
		err = fmt.Errorf("%w for run %s: %w", errNoDataset, sig, err)
		if c.noData == nil {
			c.noData = map[string]datasetFailure{}
		}
		c.noData[sig] = datasetFailure{at: time.Now(), err: err}
		return nil, err
	}
	delete(c.noData, sig)
	if model.StepsPerEpoch(ds.Train.N, cfg.BatchSize) == 0 {
		// The coordinator refuses such a run; its tasks are not served.
		return nil, fmt.Errorf("worker: run %s: batch of %d is larger than the %d training samples", sig, cfg.BatchSize, ds.Train.N)
	}
	net, opt, err := cfg.NewModel(ds)
	if err != nil {
		return nil, err
	}
	size := net.Layout().Size()
	in := newInbox(sig, cfg.Shards, size)
	if c.nc != nil {
		if err := in.subscribe(c.nc); err != nil {
			net.Close()
			return nil, fmt.Errorf("%w: subscribing to the gradients of run %s: %w", errRunOutOfReach, sig, err)
		}
	}
	if c.peers != nil {
		in.leave = c.peers.join(sig, c.worker, in)
	}
	rep := &replica{run: sig, size: size, shards: cfg.Shards, count: cfg.BatchSize, opt: opt, losses: c.losses, inbox: in, weights: net.Params()}
	rep.sum, rep.sumBuf = c.bufs.newShardSum(cfg.Shards, size)
	r := &run{sig: sig, cfg: cfg, net: net, data: ds, size: size, rep: rep}
	if len(c.runs) == keptRuns {
		old := c.runs[keptRuns-1]
		old.net.Close()
		old.rep.inbox.close()
		old.rep.letLent()
		c.runs = c.runs[:keptRuns-1]
	}
	c.runs = append([]*run{r}, c.runs...)
	c.loaded.Add(1)
	return r, nil
}

// close releases every run's network and subscription.
func (c *runCache) close() {
	for _, r := range c.runs {
		r.net.Close()
		r.rep.inbox.close()
		r.rep.letLent()
	}
	c.runs = nil
}

func (r *run) checkTask(t *protocol.Task) error {
	if int(t.Shards) != r.cfg.Shards {
		return fmt.Errorf("%d shards, the run has %d", t.Shards, r.cfg.Shards)
	}
	lo, hi := model.ShardRange(r.cfg.BatchSize, r.cfg.Shards, int(t.Shard))
	if len(t.Indices) != hi-lo {
		return fmt.Errorf("%d samples, the shard has %d", len(t.Indices), hi-lo)
	}
	for _, i := range t.Indices {
		if int(i) >= r.data.Train.N {
			return fmt.Errorf("sample %d out of %d", i, r.data.Train.N)
		}
	}
	return nil
}

// prepare brings the replica to weights version step. A task whose step the
// coordinator has committed already is stale (errStale). idle is called
// while the replica waits for gradients, with the step they belong to.
func (r *run) prepare(ctx context.Context, s streams, vs *versions, step uint64, idle idleFunc) error {
	rp := r.rep
	if rp.valid && rp.step == step {
		if p := vs.get(r.sig, step); p != nil {
			if rp.check != p.Check {
				// Never expected: the replica stepped differently from
				// the coordinator. Start over from the snapshot.
				rp.valid = false
				return fmt.Errorf("worker: run %s version %d: weights check %x, the coordinator committed %x", r.sig, step, rp.check, p.Check)
			}
		}
		return nil
	}
	if !rp.valid || step < rp.step {
		committed, err := r.committed(ctx, s.params, vs, step)
		if err != nil {
			return err
		}
		if committed {
			return fmt.Errorf("%w (run %s step %d)", errStale, r.sig, step)
		}
	}
	return rp.reach(ctx, s, step, idle)
}

// committed reports whether the coordinator has committed step: the commit
// record of the version after it exists.
func (r *run) committed(ctx context.Context, params jetstream.Stream, vs *versions, step uint64) (bool, error) {
	if vs.get(r.sig, step+1) != nil {
		return true, nil
	}
	ctx, cancel := r.rep.losses.Bound(ctx, lookupWait)
	defer cancel()
	_, err := params.GetLastMsgForSubject(ctx, protocol.ParamsSubject(r.sig, step+1))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}

// gradient computes the shard's gradient at the replica's weights and adds
// it to the replica's sum of the step. prefix reports that the replica's
// sum now holds exactly shards 0..t.Shard, all computed here. The returned
// gradient's values are not filled in: most go out only in the replica's
// sum, so they stay in the network's buffers until values asks for them.
func (r *run) gradient(t *protocol.Task) (g *protocol.Grad, prefix bool, err error) {
	n := len(t.Indices)
	dim := r.data.Shape[0] * r.data.Shape[1] * r.data.Shape[2]
	if cap(r.x) < n*dim {
		r.x = make([]float32, n*dim)
		r.y = make([]uint8, n)
	}
	x, y := r.x[:n*dim], r.y[:n]
	r.data.Train.Gather(t.Indices, x, y)
	start := time.Now()
	parts, st, err := r.net.GradientParts(r.rep.weights, x, y)
	if err != nil {
		return nil, false, err
	}
	r.shardTime = time.Since(start)
	r.parts = parts
	prefix = r.rep.add(int(t.Shard), parts)
	return &protocol.Grad{
		Run: t.Run, Step: t.Step, Shard: t.Shard,
		Stats: []protocol.ShardStats{{LossSum: st.LossSum, Correct: uint32(st.Correct), Count: uint32(st.Count)}},
	}, prefix, nil
}
