package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/internal/pace"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/objstore"
	"github.com/jettrain/jettrain/protocol"
	"github.com/jettrain/jettrain/telemetry"
)

// ErrRunMismatch means --run names a run whose config differs from the one
// given.
var ErrRunMismatch = errors.New("coordinator: config does not match the run")

// Result is how a run ended.
type Result struct {
	Run      string
	Step     uint64
	Epoch    int
	Digest   [32]byte // sha256 of the final weights (model.Digest)
	History  []objstore.HistoryEntry
	Resumed  uint64 // step of the checkpoint the run resumed from (0 = fresh)
	Replayed int    // gradients reused from the stream on start
}

// Train runs the configured training to its last epoch (or until ctx ends),
// resuming the run from its newest checkpoint and the grads stream.
func Train(ctx context.Context, nc *nats.Conn, store *objstore.Store, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	for wait := 250 * time.Millisecond; ; wait = min(max(2*wait, 250*time.Millisecond), 5*time.Second) {
		n, err := newNode(ctx, nc, store, &opts)
		if err == nil {
			var res *Result
			res, err = n.serve(ctx)
			n.close()
			switch {
			case err == nil || nc.IsClosed() || ctx.Err() != nil:
				return res, err
			case errors.Is(err, ErrLeaseLost):
				// Another coordinator took the run over, or may have (this
				// one was cut off longer than the lease): start over from
				// the newest checkpoint, as its standby if it still leads.
				opts.Log.Warn(err.Error()+"; starting over from the newest checkpoint, waiting as a standby while another coordinator leads", "run", opts.Config.Signature())
				wait = 0
				continue
			case !transient(err):
				return res, asNoRoom(err)
			}
			// The broker failed under the run (a cluster electing a new
			// leader): start over from the newest checkpoint and the stream,
			// as a restarted coordinator would.
			opts.Log.Warn("coordinator: the run stopped on a broker error; recovering", "err", err)
			if !pace.Wait(ctx, wait) {
				return nil, ctx.Err()
			}
			continue
		}
		if !transient(err) || ctx.Err() != nil {
			// A refusal for want of room is not transient: nothing of the
			// run frees room before it starts.
			return nil, asNoRoom(err)
		}
		// A broker or store restarting while the run starts: try again.
		opts.Log.Warn("coordinator: start-up failed; retrying", "err", err)
		if !pace.Wait(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

// transient reports whether an error comes from a server that is
// restarting or briefly unreachable rather than from the run's inputs: one
// of the errors below, or a JetStream API error with status 503 (no leader
// yet, "JetStream system temporarily unavailable") other than a refusal
// for want of room, which lasts until someone makes room.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 503 && !protocol.NoRoom(err) {
		return true
	}
	for _, e := range []error{
		nats.ErrTimeout, nats.ErrNoResponders, nats.ErrDisconnected, nats.ErrConnectionReconnecting,
		context.DeadlineExceeded, jetstream.ErrJetStreamNotEnabled, jetstream.ErrNoStreamResponse, jetstream.ErrBucketNotFound,
		jetstream.ErrStreamNotFound, jetstream.ErrConsumerNotFound, objstore.ErrUnreachable, objstore.ErrUnavailable,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

type node struct {
	opts    *Options
	ackWait time.Duration // the workers' consumer's, as this node found it
	cfg     config.Config
	run     string
	js      jetstream.JetStream
	store   *objstore.Store
	m       *Machine
	net     *model.Network
	ds      *model.Dataset
	saver   *saver
	evals   *evaluations // the epochs' evaluations, in the background
	lease   *lease
	grads   jetstream.Stream // read message by message when its consumer delivers headers only (Options.Handoff)
	losses  *natsconn.Losses // ends the fetches in flight when the connection is lost
	params  jetstream.Stream
	snaps   *snapshots
	room    *roomGuard // ends a run its NATS server has no room for
	trace   *tracing
	alive   map[string]time.Time // workers by last heartbeat
	strag   *stragglers
	status  jetstream.KeyValue // live progress for `coordinator status`
	prog    *progress

	resumed  uint64
	catchUp  uint64 // the newest checkpoint's step, when the one resumed from is older (see node.recompute)
	replayed int
	redo     int // re-dispatch rounds of the current step
	lastMove time.Time

	spare chan *protocol.Grad // decoded gradients handed back by the loop for the reader to reuse
	held  []delivery          // later steps' gradients the machine handed back, fed in after each commit
	parts *protocol.Assembler // the reader's gradients sent in parts, being put together
	step  atomic.Uint64       // the machine's step, for the reader: parts of earlier steps are dropped
}

func newNode(ctx context.Context, nc *nats.Conn, store *objstore.Store, opts *Options) (*node, error) {
	cfg := opts.Config
	run := cfg.Signature()
	if err := checkRun(ctx, store, opts.Run, cfg); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(256), jetstream.WithPublishAsyncTimeout(publishTimeout))
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	// The leases bucket is created with the streams: on a cluster each
	// creation waits for an election.
	var before time.Duration // needed only to tell a change
	if opts.AckWait > 0 {
		before = protocol.ConsumerAckWait(ctx, js)
	}
	if err := protocol.Ensure(ctx, js, opts.Replicas, opts.AckWait, leaseBucket(opts.LeaseTTL, opts.Replicas)); err != nil {
		return nil, err
	}
	ackWait := ackWaitSet(ctx, js, opts.AckWait, before, opts.Log)
	lease, err := acquireLease(ctx, js, run, opts.ID, opts.LeaseTTL, opts.Log)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			lease.release()
		}
	}()
	resolved, _ := json.Marshal(cfg)
	if err := storeConfig(ctx, store, run, cfg, resolved); err != nil {
		return nil, err
	}
	status, err := js.KeyValue(ctx, protocol.StatusBucket)
	if err != nil {
		return nil, fmt.Errorf("coordinator: the status bucket %s: %w", protocol.StatusBucket, err)
	}
	kv, err := js.KeyValue(ctx, protocol.RunsBucket)
	if err != nil {
		return nil, fmt.Errorf("coordinator: the runs bucket %s: %w", protocol.RunsBucket, err)
	}
	if _, err := kv.Put(ctx, run, resolved); err != nil {
		return nil, fmt.Errorf("coordinator: publishing the run config: %w", err)
	}

	ds, err := model.LoadDataset(cfg.Dataset, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if err := shareDataset(ctx, store, kv, run, cfg, ds); err != nil {
		opts.Log.Warn("coordinator: could not share the dataset through the object store; workers need their own copy", "err", err)
	}
	net, opt, err := cfg.NewModel(ds)
	if err != nil {
		return nil, err
	}
	if err := checkPayload(js.Conn().MaxPayload(), cfg.Shards, net.Layout().Size(), cfg.BatchSize); err != nil {
		net.Close()
		return nil, err
	}
	tr, metrics, err := instruments(opts.Telemetry)
	if err != nil {
		net.Close()
		return nil, err
	}
	_, load := tr.Start(ctx, telemetry.SpanCheckpointLoad, trace.WithAttributes(attribute.String(telemetry.AttrRun, run)))
	ck, man, err := store.Latest(ctx, run, func(w string) { opts.Log.Warn("coordinator: " + w) })
	if err == nil {
		load.SetAttributes(attribute.String(telemetry.AttrCheckpoint, man.Key), attribute.Int64(telemetry.AttrStep, int64(ck.Step)))
	}
	load.End()
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		ck = nil
	case err != nil:
		net.Close()
		return nil, err
	default:
		opts.Log.Info("resuming from checkpoint", "run", run, "step", ck.Step, "epoch", ck.Epoch, "key", man.Key)
	}
	eval := evaluator{net: net, test: &ds.Test}
	m, err := NewMachine(run, cfg, ds.Train.N, opt, eval, net.Init(cfg.Seed), ck, opts.Now())
	if err != nil {
		net.Close()
		return nil, err
	}
	m.EvaluateLater() // the node evaluates in the background (evaluations)
	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		net.Close()
		return nil, fmt.Errorf("coordinator: the grads stream %s: %w", protocol.GradsStream, err)
	}
	var catchUpTo uint64
	if ck != nil {
		newest, err := newestCheckpoint(ctx, store, run)
		if err != nil {
			net.Close()
			return nil, err
		}
		if newest > ck.Step {
			kept, err := streamKeepsFrom(ctx, grads, run, ck.GradsSeq)
			if err != nil {
				net.Close()
				return nil, err
			}
			if !kept {
				catchUpTo = newest
			}
		}
	}
	params, err := js.Stream(ctx, protocol.ParamsStream)
	if err != nil {
		net.Close()
		return nil, fmt.Errorf("coordinator: the params stream %s: %w", protocol.ParamsStream, err)
	}
	state, err := js.ObjectStore(ctx, protocol.StateBucket)
	if err != nil {
		net.Close()
		return nil, fmt.Errorf("coordinator: the snapshot store %s: %w", protocol.StateBucket, err)
	}
	room := &roomGuard{log: opts.Log}
	trim := newTrimmer(grads, run, opts.Log)
	trim.leads = lease.holds
	n := &node{opts: opts, ackWait: ackWait, cfg: cfg, run: run, grads: grads, evals: newEvaluations(net, &ds.Test, opts.Hooks.Evaluated), js: js, store: store, m: m, net: net, lease: lease, params: params, ds: ds, catchUp: catchUpTo, snaps: newSnapshots(state, js.Conn().MaxPayload(), opts.Log, room, trim, opts.Now), room: room, alive: map[string]time.Time{}, strag: newStragglers(), status: status, lastMove: opts.Now(),
		spare: make(chan *protocol.Grad, spareGrads), parts: protocol.NewAssembler((holdAhead+2)*cfg.Shards, net.Layout().Size())}
	n.step.Store(m.Step())
	if ck != nil {
		n.resumed = ck.Step
	}
	n.trace = newTracing(tr, metrics, run)
	n.saver = newSaver(store, trim, run, cfg.Keep, net.Layout(), opts.Log, opts.Hooks.Saved)
	n.saver.trace = n.trace
	n.prog = newProgress(opts.Progress, m.StepsPerEpoch(), cfg.BatchSize)
	n.losses = natsconn.WatchLosses(js.Conn())
	ok = true
	return n, nil
}

// newestCheckpoint is the step of the run's newest checkpoint, valid or
// not: the newer of the manifest's (unless it is missing or corrupt) and
// the newest checkpoint object's. A resume from an older one recomputes the
// steps to it (node.recompute) when the grads stream no longer holds their
// gradients (streamKeepsFrom). An unreachable store is an error: a resume that
// skipped the recomputing would wait for gradients the stream no longer
// holds.
func newestCheckpoint(ctx context.Context, store *objstore.Store, run string) (uint64, error) {
	var newest uint64
	m, err := store.Manifest(ctx, run)
	switch {
	case err == nil:
		newest = m.Step
	case !errors.Is(err, objstore.ErrNotFound) && !errors.Is(err, objstore.ErrCorrupt):
		return 0, err
	}
	steps, err := store.Checkpoints(ctx, run)
	if err != nil {
		return 0, err
	}
	if len(steps) > 0 {
		newest = max(newest, steps[0])
	}
	return newest, nil
}

// streamKeepsFrom reports whether the grads stream still holds every
// gradient of run after sequence seq (a checkpoint's GradsSeq): the trimmer
// purges a run's gradients below a point, so it does unless the run's
// oldest gradient left is past seq+1. A newer checkpoint object than the
// one resumed from then needs no recomputing: its commit never completed
// (the trimmer purges only after a commit), and replaying the stream
// reaches its step with the workers' own gradients.
func streamKeepsFrom(ctx context.Context, grads jetstream.Stream, run string, seq uint64) (bool, error) {
	first, err := grads.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(protocol.GradsFilter(run)))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil // none left: purged past the checkpoint, or never there
	case err != nil:
		return false, fmt.Errorf("coordinator: the grads stream's oldest gradient of run %s: %w", run, err)
	}
	return first.Sequence <= seq+1, nil
}

// checkPayload refuses a run whose gradients the NATS server's max payload
// cannot carry: a gradient that does not fit one message goes in parts
// (protocol.GradPart), each a header and at least minPartValues values.
// Snapshots go to an object store, which splits them into chunks.
func checkPayload(max int64, shards, params, batch int) error {
	perShard := (batch + shards - 1) / shards // the largest shard's samples
	task := int64(taskOverhead + 4*perShard)
	switch need := int64(protocol.PartOverhead(shards) + 4*min(params, minPartValues)); {
	case params > protocol.MaxParameters:
		return fmt.Errorf("coordinator: a network of %d parameters is over the %d jettrain takes", params, protocol.MaxParameters)
	case need > max:
		return fmt.Errorf("coordinator: the NATS server's max payload of %d bytes is too small: a gradient of %d shards goes in messages of %d bytes at least", max, shards, need)
	case perShard > protocol.MaxIndices:
		return fmt.Errorf("coordinator: a shard of %d samples is over the %d a task takes: raise shards", perShard, protocol.MaxIndices)
	case task > max:
		return fmt.Errorf("coordinator: the NATS server's max payload of %d bytes is too small for a task of %d samples (%d bytes): raise shards, or the server's max_payload", max, perShard, task)
	}
	return nil
}

// taskOverhead bounds a task message's bytes besides its sample indices:
// its header and fields, a run signature of protocol.MaxRunLen at most.
const taskOverhead = 64 + protocol.MaxRunLen

// minPartValues is the fewest values a part of a gradient must carry: a
// max payload that holds fewer is a misconfigured server.
const minPartValues = 1024

func (n *node) close() {
	n.losses.Close()
	n.lease.release()
	n.net.Close()
}

// checkRun refuses --run when the config resolves to another run, naming
// the keys that differ.
func checkRun(ctx context.Context, store *objstore.Store, want string, cfg config.Config) error {
	if want == "" || want == cfg.Signature() {
		return nil
	}
	b, err := store.GetConfig(ctx, want)
	if err != nil {
		return fmt.Errorf("%w: run %s: %v", ErrRunMismatch, want, err)
	}
	old, err := config.Parse(b)
	if err != nil {
		return fmt.Errorf("%w: run %s: stored config: %v", ErrRunMismatch, want, err)
	}
	return fmt.Errorf("%w: run %s differs in %s (this config is run %s)", ErrRunMismatch, want, strings.Join(config.Diff(old, cfg), ", "), cfg.Signature())
}

// storeConfig writes runs/<sig>/config.json the first time a run starts.
func storeConfig(ctx context.Context, store *objstore.Store, run string, cfg config.Config, resolved []byte) error {
	b, err := store.GetConfig(ctx, run)
	if errors.Is(err, objstore.ErrNotFound) {
		return store.PutConfig(ctx, run, resolved)
	}
	if err != nil {
		return err
	}
	old, err := config.Parse(b)
	if err != nil {
		return fmt.Errorf("coordinator: run %s: stored config: %w", run, err)
	}
	if old.Signature() != run {
		return fmt.Errorf("%w: run %s: stored config has signature %s", ErrRunMismatch, run, old.Signature())
	}
	return nil
}

type evaluator struct {
	net  *model.Network
	test *model.Split
}

func (e evaluator) Evaluate(w []float32) (model.Stats, error) {
	return e.net.Evaluate(w, e.test.X, e.test.Y)
}

// instruments returns the tracer and metrics of p, or no-op ones.
func instruments(p *telemetry.Provider) (trace.Tracer, *telemetry.Metrics, error) {
	if p == nil {
		m, err := telemetry.NewMetrics(metricnoop.NewMeterProvider().Meter(""))
		return tracenoop.NewTracerProvider().Tracer(""), m, err
	}
	m, err := telemetry.NewMetrics(p.Meter())
	return p.Tracer(), m, err
}

// publishTimeout bounds the wait for a publish ack; a publish in flight to a
// cluster node that died is retried after it (idempotently, by message id).
const publishTimeout = 3 * time.Second
