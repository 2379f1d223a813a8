package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/jettrain/jettrain/internal/handoff"
	"github.com/jettrain/jettrain/internal/pace"
	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/protocol"
	"github.com/jettrain/jettrain/telemetry"
)

// Options configure a worker.
type Options struct {
	ID      string       // worker id in gradients and logs; default host-pid-n
	DataDir string       // dataset directory override; "" = each run's data_dir
	Log     *slog.Logger // default slog.Default()

	// Datasets, when set, is where the worker fetches a run's dataset files
	// it has no local copy of (the coordinator uploads them), caching them
	// under CacheDir (default the user cache directory).
	Datasets DatasetSource
	CacheDir string

	// Telemetry traces tasks as children of the coordinator's step spans
	// and records task metrics; nil = none.
	Telemetry *telemetry.Provider

	// ReportEvery, when positive, is how often the worker logs how many
	// shards it computed since its last report, of which run and step,
	// and how much of the time it waited for tasks.
	ReportEvery time.Duration

	// Peers, when set, is shared with the other workers of the same
	// process: they hand each other their gradients in memory as well as
	// through the broker.
	Peers *Peers

	// Handoff, when set, is shared with a coordinator in the same process:
	// the worker puts every gradient message it publishes there, and that
	// coordinator takes the bytes from it instead of from the broker.
	Handoff *handoff.Exchange
}

var seq atomic.Int64

func (o *Options) defaults() {
	if o.ID == "" {
		host, _ := os.Hostname()
		o.ID = host + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(seq.Add(1), 10)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.CacheDir == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			o.CacheDir = filepath.Join(dir, "jettrain")
		} else {
			o.CacheDir = filepath.Join(os.TempDir(), "jettrain")
		}
	}
}

// Worker serves tasks until its context ends.
type Worker struct {
	opts     Options
	nc       *nats.Conn
	js       jetstream.JetStream
	runs     *runCache
	done     atomic.Uint64
	again    atomic.Uint64 // tasks received that had been delivered before
	waited   atomic.Int64  // nanoseconds spent waiting for a task
	last     lastTask      // the newest task completed, for reports
	ackWait  atomic.Int64  // the task consumer's ack wait, once found (nanoseconds)
	held     *holdings     // tasks taken and not settled, kept alive
	tr       trace.Tracer
	metrics  *telemetry.Metrics
	idAttr   metric.MeasurementOption
	versions *versions       // commit records received by subscription
	streams  streams         // looked up when the streams are ready
	inflight sync.WaitGroup  // gradient publishes awaiting their ack
	bufs     *gradBuffers    // what gradients are encoded and replicas' sums folded in
	pubFails publishFailures // gradients the broker did not store, for publishFailed's warnings
	out      chan outgoing   // computed gradients for the publisher; open while Run runs

	// Owned by the task loop, while consume runs:
	feed       *taskFeed
	stash      []jetstream.Msg // tasks taken in hand by idle and nextIs, served before the feed's
	kv         jetstream.KeyValue
	pending    []pendingShard // computed shards 0..k of a step, sent together when the run of them ends
	pendingRun *run
	outOfReach time.Time // when a task whose run was out of reach was last warned of
	handLogged time.Time // when a change of the feed's hand was last logged at info level
}

// New returns a worker that talks over nc. A connection made with
// nats.NoEcho spares the worker receiving its own gradients back through
// the subscription that collects other workers'; such a connection must
// not be shared by two workers, which would not hear each other, unless
// they are Peers, which hand each other their gradients in memory.
func New(nc *nats.Conn, opts Options) (*Worker, error) {
	opts.defaults()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8), jetstream.WithPublishAsyncTimeout(publishTimeout))
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	var fetch *fetcher
	if opts.Datasets != nil {
		fetch = &fetcher{src: opts.Datasets, cache: opts.CacheDir}
	}
	runs := newRunCache(opts.DataDir, fetch, nc)
	runs.peers, runs.worker = opts.Peers, opts.ID
	w := &Worker{opts: opts, nc: nc, js: js, runs: runs, versions: newVersions(), bufs: runs.bufs, held: newHoldings()}
	w.ackWait.Store(int64(defaultAckWait))
	w.idAttr = metric.WithAttributes(attribute.String(telemetry.AttrWorker, opts.ID))
	if opts.Telemetry != nil {
		w.tr = opts.Telemetry.Tracer()
		w.metrics, err = telemetry.NewMetrics(opts.Telemetry.Meter())
	} else {
		w.tr = tracenoop.NewTracerProvider().Tracer("")
		w.metrics, err = telemetry.NewMetrics(metricnoop.NewMeterProvider().Meter(""))
	}
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.opts.ID }

// Tasks is the number of tasks this worker has completed.
func (w *Worker) Tasks() uint64 { return w.done.Load() }

// Redelivered is how many of the tasks this worker received had been
// delivered before: to a worker that died or gave them back, or to one that
// held them past the consumer's ack wait without a word.
func (w *Worker) Redelivered() uint64 { return w.again.Load() }

// Idle is the time the worker has waited for its next task: with tasks
// handed out ahead, close to zero but at a stall of the coordinator (an
// epoch's evaluation, a recovery).
func (w *Worker) Idle() time.Duration { return time.Duration(w.waited.Load()) }

// RunsLoaded is how many times the worker has set a run up (its network,
// replica and inbox): once for each run it serves, and again for a run it
// had put away to make room for others (more runs at once than it keeps).
func (w *Worker) RunsLoaded() uint64 { return w.runs.loaded.Load() }

// Run pulls and serves tasks until ctx ends. It waits for a coordinator to
// create the streams, rides out broker restarts, and returns nil when ctx is
// canceled.
func (w *Worker) Run(ctx context.Context) error {
	losses := natsconn.WatchLosses(w.nc)
	defer losses.Close()
	w.runs.losses = losses
	// Commit records arrive by subscription as the coordinator publishes
	// them: a replica checks its weights against them.
	sub, err := w.nc.Subscribe(protocol.ParamsWildcard, w.versions.receive)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer sub.Unsubscribe()
	following, stopFollowing := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		for d := range protocol.FollowAckWait(following, w.js, 0) {
			if was := w.setAckWait(d); was != d {
				w.opts.Log.Info("worker: the task consumer's ack wait changed", "worker", w.opts.ID, "was", was, "now", d)
			}
		}
	}()
	defer func() { stopFollowing(); <-followed }()
	defer w.runs.close()
	go w.heartbeat(ctx)
	keeping, stopKeeping := context.WithCancel(context.Background())
	defer stopKeeping() // after the last publish's ack: deferred before inflight.Wait
	go w.held.keep(keeping, func() time.Duration { return time.Duration(w.ackWait.Load()) / 3 })
	if w.opts.ReportEvery > 0 {
		go w.report(ctx, w.opts.ReportEvery)
	}
	defer w.inflight.Wait()
	w.out = make(chan outgoing, outgoingQueue)
	published := make(chan struct{})
	go func() { w.publish(w.out); close(published) }()
	defer func() { close(w.out); <-published }()
	for ready := false; ctx.Err() == nil; ready = true {
		if ready {
			w.opts.Log.Warn("worker: task consumer lost; looking it up again", "worker", w.opts.ID)
			if !pace.Wait(ctx, time.Second) {
				break
			}
		}
		cons, kv, err := w.waitReady(ctx)
		if err != nil || cons == nil {
			return err
		}
		if w.streams, err = w.lookupStreams(ctx); err != nil {
			continue
		}
		if info := cons.CachedInfo(); info != nil {
			w.setAckWait(info.Config.AckWait)
		}
		if !ready {
			w.opts.Log.Info("worker ready", "worker", w.opts.ID)
		}
		w.consume(ctx, cons, kv)
	}
	return nil
}

// consume serves tasks from cons until its feed closes or ctx ends. Up to
// two steps' worth of tasks (of the default run) is prefetched while one is
// computed, so the next is in hand when a shard is done. With one task in
// hand, every task waited for a pull's round trip through a busy scheduler
// (1.5-2 ms a step); with one step's worth a lone worker still waited
// 0.45-0.73 ms a step whenever the broker, the coordinator and a checkpoint
// upload kept both cores busy for a few milliseconds, and two steps' worth
// halve that. Two steps' worth once made a run crawl under the chaos harness
// after a broker restart, when the nats.go iterator dropped the surplus of a
// full hand (the feed now drains it; see taskFeed). More would let one
// worker hoard the shards that others could compute, and leave more tasks
// behind when it dies.
func (w *Worker) consume(ctx context.Context, cons jetstream.Consumer, kv jetstream.KeyValue) {
	feed, err := openFeed(w.nc, cons, w.held, &w.ackWait)
	if err != nil {
		return
	}
	defer feed.close()
	stop := context.AfterFunc(ctx, feed.close)
	defer stop()
	w.feed, w.kv = feed, kv
	defer func() {
		if len(w.pending) > 0 {
			w.flush()
		}
		for _, msg := range append(w.stash, feed.shut()...) {
			w.held.nak(msg, 0)
		}
		w.stash, w.feed = nil, nil
	}()
	for ctx.Err() == nil {
		if len(w.stash) > 0 {
			msg := w.stash[0]
			w.stash = w.stash[1:]
			w.serve(ctx, msg)
			continue
		}
		if len(w.pending) > 0 {
			// Shards computed and held for the next shard of their step,
			// whose task went wrong: they go now, rather than wait,
			// without keepalives, for whatever task comes next.
			w.flush()
		}
		msg, err := w.next(0)
		if errors.Is(err, errFeedClosed) {
			return
		}
		if err != nil {
			w.opts.Log.Warn("worker: pulling a task failed; retrying", "err", err)
			continue
		}
		w.serve(ctx, msg)
	}
}

// prefetch is how many tasks a worker's feed keeps in hand.
const prefetch = 8 // see consume

// idle is called by a replica that has waited, for waited, for the
// gradients of r's step. The shards it waits for may be tasks this worker
// holds itself, behind the one it serves (after a redelivery or a
// re-dispatch the stream no longer has them in step order): it serves those
// now, and keeps the other tasks it takes in hand for later, up to a bound.
// Once it has waited r.selfServeAfter(), it computes the shards still missing
// from the tasks it makes itself (serveMissing), whoever holds their tasks.
// Where it does not trust the tasks it makes, once it has waited
// giveBackAfter with its hands full it still looks at the tasks behind:
// each time it gives back the task of the latest step it holds, up to
// giveBackMax of them a call. Before, it stopped looking, and an awaited
// shard re-dispatched behind a full hand waited there while the worker
// handed back one task every gatherWait (a run crawled for 17 s after a
// worker was killed, under the chaos harness). Giving back at once cost
// two workers a third of their speed: their hands are full in the
// ordinary wait for each other's shards.
//
// Shards it computes here go out before it returns: the replica applies
// the step once it has them all, and a run of pending shards must be sent
// from the sum before that.
func (w *Worker) idle(ctx context.Context, r *run, step uint64, waited time.Duration) {
	defer func() {
		if len(w.pending) > 0 {
			w.flush()
		}
	}()
	run, shards := r.sig, r.cfg.Shards
	isStep := func(msg jetstream.Msg) bool {
		var t protocol.Task
		return t.UnmarshalBinary(msg.Data()) == nil && t.Run == run && t.Step == step
	}
	for gaveBack := 0; ; {
		// Tasks already taken out of the consumer first (nextIs keeps one).
		if i := slices.IndexFunc(w.stash, isStep); i >= 0 {
			msg := w.stash[i]
			w.stash = slices.Delete(w.stash, i, i+1)
			w.serve(ctx, msg)
			continue
		}
		if waited >= r.selfServeAfter() && w.serveMissing(ctx, r, step, waited) {
			return
		}
		if len(w.stash) >= 2*shards && (gaveBack == giveBackMax || waited < giveBackAfter) {
			return
		}
		msg, ok := w.inHand()
		if !ok {
			return
		}
		if isStep(msg) {
			w.serve(ctx, msg)
			continue
		}
		w.stash = append(w.stash, msg)
		if len(w.stash) > 2*shards {
			i := latestTask(w.stash, run)
			w.held.nak(w.stash[i], giveBackDelay)
			w.stash = slices.Delete(w.stash, i, i+1)
			gaveBack++
		}
	}
}

// giveBackAfter is how long a replica waits for a step's gradients before
// it gives back tasks of later steps to look for the step's own.
const giveBackAfter = 500 * time.Millisecond

// giveBackMax bounds the tasks one idle call gives back, and giveBackDelay
// is how long they wait before they are delivered again. A shard
// re-dispatched near an epoch's end lands behind the tasks of 32 steps
// (EvalLookahead, about 130 tasks): a look at a hand's worth a call (with
// the 100 ms delay of other hand-backs, which then came back first) took
// 11-14 s to reach it under the chaos harness (seed 13), while the killed
// worker's tasks came back after the 10 s ack wait anyway. The calls are
// at most half a second apart (the replica's poll), and a call ends within
// about a millisecond once the feed has no task in hand.
const (
	giveBackMax   = 64
	giveBackDelay = time.Second
)

// latestTask is the index of the task in msgs that run needs last: one of
// another run, or else the one of the latest step (and shard).
func latestTask(msgs []jetstream.Msg, run string) int {
	latest, at := -1, protocol.Task{}
	for i, msg := range msgs {
		var t protocol.Task
		if t.UnmarshalBinary(msg.Data()) != nil {
			continue // served first, and refused there
		}
		if t.Run != run {
			return i
		}
		if latest < 0 || t.Step > at.Step || t.Step == at.Step && t.Shard > at.Shard {
			latest, at = i, t
		}
	}
	return max(latest, 0)
}

func (w *Worker) lookupStreams(ctx context.Context) (streams, error) {
	var s streams
	var err error
	if s.grads, err = w.js.Stream(ctx, protocol.GradsStream); err != nil {
		return s, err
	}
	if s.state, err = w.js.ObjectStore(ctx, protocol.StateBucket); err != nil {
		return s, err
	}
	s.params, err = w.js.Stream(ctx, protocol.ParamsStream)
	return s, err
}

func (w *Worker) waitReady(ctx context.Context) (jetstream.Consumer, jetstream.KeyValue, error) {
	logged := false
	for {
		cons, kv, err := protocol.Lookup(ctx, w.js)
		if err == nil {
			return cons, kv, nil
		}
		if !logged {
			w.opts.Log.Info("worker waiting", "reason", err)
			logged = true
		}
		if !pace.Wait(ctx, 250*time.Millisecond) {
			return nil, nil, nil
		}
	}
}

func (w *Worker) heartbeat(ctx context.Context) {
	t := time.NewTicker(protocol.HeartbeatEvery)
	defer t.Stop()
	for {
		hb := protocol.Heartbeat{Worker: w.opts.ID, Tasks: w.done.Load()}
		b, _ := hb.MarshalBinary()
		_ = w.nc.Publish(protocol.HeartbeatSubject, b)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// defaultAckWait is the consumer's ack wait assumed until its own is known.
const defaultAckWait = 3 * time.Second

// Held is how many tasks the worker has taken and not settled: computing
// them, holding them for later, or waiting for their gradients to be
// stored. They are kept alive with the broker however long they stay.
func (w *Worker) Held() int { return w.held.len() }

// publishTimeout bounds the wait for a gradient's ack; after it the task is
// handed back for redelivery (a stored duplicate is dropped by message id).
const publishTimeout = 3 * time.Second
