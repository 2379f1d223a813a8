package coordinator

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/internal/freeport"
	"github.com/jettrain/jettrain/internal/handoff"
	"github.com/jettrain/jettrain/internal/natstest"
	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/objstore"
	"github.com/jettrain/jettrain/protocol"
	"github.com/jettrain/jettrain/worker"
)

// s3URL is a real S3 endpoint (the embedded versitygw) shared by the tests
// of this package; each test uses a bucket of its own. s3Server is its
// process.
var (
	s3URL    string
	s3Server *objstore.Server
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jettrain-s3-")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := objstore.Serve(ctx, dir, freeAddr(), objstore.DefaultAccessKey, objstore.DefaultSecretKey)
	if err != nil {
		fmt.Fprintln(os.Stderr, "embedded S3:", err)
		os.Exit(1)
	}
	s3URL, s3Server = srv.URL(), srv
	code := m.Run()
	_ = srv.Close()
	cancel()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr is a loopback address for a server that may restart on it
// (freeport.Stable).
func freeAddr() string {
	addr, err := freeport.Addr()
	if err != nil {
		panic(err)
	}
	return addr
}

var bucketSeq atomic.Int64

func openStore(t testing.TB, bucket string) *objstore.Store {
	t.Helper()
	if bucket == "" {
		bucket = freshBucket("")
	}
	st, err := objstore.Open(context.Background(), objstore.Config{Endpoint: s3URL, AccessKey: objstore.DefaultAccessKey, SecretKey: objstore.DefaultSecretKey, Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// runNATS starts a real JetStream server on a random port.
func runNATS(t testing.TB, storeDir string) *server.Server {
	t.Helper()
	return runNATSPayload(t, storeDir, protocol.MaxPayload)
}

// runNATSPayload starts a real JetStream server on a random port that
// takes messages of up to maxPayload bytes.
func runNATSPayload(t testing.TB, storeDir string, maxPayload int32) *server.Server {
	t.Helper()
	return runNATSOpts(t, server.Options{StoreDir: storeDir, MaxPayload: maxPayload})
}

// runNATSOpts starts a real JetStream server on a random port with o's
// store and payload settings (payloads up to protocol.MaxPayload if o
// sets none).
func runNATSOpts(t testing.TB, o server.Options) *server.Server {
	t.Helper()
	if o.MaxPayload == 0 {
		o.MaxPayload = protocol.MaxPayload
	}
	o.JetStream = true
	return natstest.Start(t, o)
}

func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// pool runs in-process workers that can be added and removed mid-run.
type pool struct {
	t    testing.TB
	url  string
	opts []nats.Option // connection options of every worker
	// handoff, if set, is where the workers hand their gradients to a
	// coordinator in this process (its Options.Handoff).
	handoff *handoff.Exchange
	// peers, if set, is where the workers hand each other their gradients
	// (worker.Options.Peers).
	peers *worker.Peers
	// shared, if set, has the workers share one connection (they must be
	// peers, or they would not hear each other).
	shared bool
	conn   *nats.Conn
	mu     sync.Mutex
	stop   []context.CancelFunc
	all    []*worker.Worker // every worker started, running or not
	wg     sync.WaitGroup
}

func newPool(t testing.TB, url string) *pool {
	p := &pool{t: t, url: url, opts: []nats.Option{nats.NoEcho()}}
	t.Cleanup(p.close)
	return p
}

func (p *pool) add(n int) {
	for i := 0; i < n; i++ {
		nc := p.conn // set only when shared
		if nc == nil {
			nc = connect(p.t, p.url, p.opts...)
			if p.shared {
				p.conn = nc
			}
		}
		w, err := worker.New(nc, worker.Options{Log: quietLog(), Handoff: p.handoff, Peers: p.peers})
		if err != nil {
			p.t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		p.mu.Lock()
		p.stop = append(p.stop, cancel)
		p.all = append(p.all, w)
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			pprof.Do(ctx, pprof.Labels("worker", "in-process"), func(ctx context.Context) { _ = w.Run(ctx) })
		}()
	}
}

// remove stops the oldest running worker.
func (p *pool) remove() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.stop) > 0 {
		p.stop[0]()
		p.stop = p.stop[1:]
	}
}

// idle is the time the pool's workers, together, have waited for tasks.
func (p *pool) idle() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Duration
	for _, w := range p.all {
		d += w.Idle()
	}
	return d
}

// held is how many tasks the pool's workers hold, taken and not settled.
func (p *pool) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, w := range p.all {
		n += w.Held()
	}
	return n
}

// tasks is how many tasks the pool's workers have completed.
func (p *pool) tasks() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n uint64
	for _, w := range p.all {
		n += w.Tasks()
	}
	return n
}

func (p *pool) close() {
	p.mu.Lock()
	for _, c := range p.stop {
		c()
	}
	p.stop = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func quietLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// smallConfig trains a small MLP on the synthetic dataset in seconds.
func smallConfig(t testing.TB, sets ...string) config.Config {
	t.Helper()
	c, err := config.Load("", append([]string{"dataset=synthetic", "hidden=[32]", "batch_size=64", "shards=4", "epochs=2", "checkpoint_every=10"}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// trainLocal runs cfg to the end in the in-process loop, on its dataset.
func trainLocal(t *testing.T, cfg config.Config) (*Result, *model.Dataset) {
	t.Helper()
	ds, err := model.LoadDataset(cfg.Dataset, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	local, err := TrainLocal(context.Background(), cfg, ds, 0)
	if err != nil {
		t.Fatal(err)
	}
	return local, ds
}

func train(t *testing.T, ctx context.Context, nc *nats.Conn, st *objstore.Store, cfg config.Config, hooks Hooks) (*Result, error) {
	t.Helper()
	return trainHandingOff(t, ctx, nc, st, cfg, hooks, nil)
}

// trainHandingOff is train with the gradients of the workers x is given to
// taken from it (none: nil).
func trainHandingOff(t *testing.T, ctx context.Context, nc *nats.Conn, st *objstore.Store, cfg config.Config, hooks Hooks, x *handoff.Exchange) (*Result, error) {
	t.Helper()
	return Train(ctx, nc, st, Options{Config: cfg, Log: quietLog(), Hooks: hooks, AckWait: 2 * time.Second, Handoff: x})
}

func TestSameWeightsWithAnyNumberOfWorkers(t *testing.T) {
	cfg := smallConfig(t)
	var digests []string
	for _, workers := range []int{1, 2, 4} {
		srv := runNATS(t, t.TempDir())
		nc := connect(t, srv.ClientURL())
		p := newPool(t, srv.ClientURL())
		p.add(workers)
		res, err := train(t, context.Background(), nc, openStore(t, ""), cfg, Hooks{})
		p.close()
		if err != nil {
			t.Fatalf("%d workers: %v", workers, err)
		}
		if n := p.held(); n != 0 {
			t.Fatalf("%d workers: %d tasks still held once they stopped: each task taken must be acknowledged or handed back", workers, n)
		}
		if len(res.History) != cfg.Epochs {
			t.Fatalf("%d workers: %d history entries", workers, len(res.History))
		}
		digests = append(digests, fmt.Sprintf("%x", res.Digest))
	}
	if digests[0] != digests[1] || digests[0] != digests[2] {
		t.Fatalf("weights differ with 1, 2 and 4 workers: %v", digests)
	}
	local, _ := trainLocal(t, cfg)
	if got := fmt.Sprintf("%x", local.Digest); got != digests[0] {
		t.Fatalf("distributed weights %s differ from the in-process loop's %s", digests[0], got)
	}
}

// TestWorkersJoinAndLeaveMidRun changes the worker pool during a run (and
// slips a malformed gradient into the stream): the weights do not change.
func TestWorkersJoinAndLeaveMidRun(t *testing.T) {
	cfg := smallConfig(t)
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	p := newPool(t, srv.ClientURL())
	p.add(1)
	ref := referenceDigest(t, cfg)
	js, _ := jetstream.New(nc)
	res, err := train(t, context.Background(), nc, openStore(t, ""), cfg, Hooks{Committed: func(step uint64, _ [8]byte) {
		switch step {
		case 3:
			// A malformed gradient in the stream is logged and skipped
			// (by the coordinator, and by workers that fetch the shard).
			if _, err := js.Publish(context.Background(), protocol.GradSubject(cfg.Signature(), 4, 0), []byte("garbage")); err != nil {
				t.Error(err)
			}
		case 5:
			p.add(2) // two join
		case 20:
			p.remove() // the first leaves
		case 40:
			p.add(1)
			p.remove()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%x", res.Digest) != ref {
		t.Fatalf("weights with workers joining and leaving differ from a fixed pool's")
	}
}

// referenceDigest is the weights digest of runToTheEnd, in hex.
func referenceDigest(t *testing.T, cfg config.Config) string {
	t.Helper()
	return fmt.Sprintf("%x", runToTheEnd(t, cfg).Digest)
}

// runToTheEnd trains cfg with two steady workers on a server of its own.
func runToTheEnd(t *testing.T, cfg config.Config) *Result {
	t.Helper()
	srv := runNATS(t, t.TempDir())
	p := newPool(t, srv.ClientURL())
	p.add(2)
	defer p.close()
	res, err := train(t, context.Background(), connect(t, srv.ClientURL()), openStore(t, ""), cfg, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// trainResumed trains cfg, stopping the coordinator right after the
// checkpoint at step at is saved (while workers keep computing the tasks
// it already published), then again to the end; the second run must
// resume from that checkpoint or a later one.
func trainResumed(t *testing.T, nc *nats.Conn, st *objstore.Store, cfg config.Config, at uint64, x *handoff.Exchange) *Result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := trainHandingOff(t, ctx, nc, st, cfg, Hooks{Saved: func(step uint64) {
		if step == at {
			cancel()
		}
	}}, x)
	if err == nil {
		t.Fatal("the interrupted run reported success")
	}
	res, err := trainHandingOff(t, context.Background(), nc, st, cfg, Hooks{}, x)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed < at {
		t.Fatalf("resumed from step %d, want at least the checkpoint at %d", res.Resumed, at)
	}
	return res
}

func TestResumeAtTheExactStep(t *testing.T) {
	cfg := smallConfig(t)
	ref := referenceDigest(t, cfg)

	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	st := openStore(t, "")
	p := newPool(t, srv.ClientURL())
	p.add(2)

	res := trainResumed(t, nc, st, cfg, 30, nil)
	if got := fmt.Sprintf("%x", res.Digest); got != ref {
		t.Fatal("a resumed run ended with other weights than an uninterrupted one")
	}
	h, err := st.History(context.Background(), res.Run)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != cfg.Epochs || h[0].Epoch != 0 || h[1].Epoch != 1 {
		t.Fatalf("history.json %+v, want one entry per epoch", h)
	}

	// Starting a finished run again changes nothing and succeeds.
	again, err := train(t, context.Background(), nc, st, cfg, Hooks{})
	if err != nil || again.Digest != res.Digest || again.Step != res.Step {
		t.Fatalf("restarting a finished run: %v", err)
	}

	// --run with another config names the keys that differ.
	other := smallConfig(t, "seed=9")
	_, err = Train(context.Background(), nc, st, Options{Config: other, Run: res.Run, Log: quietLog()})
	if err == nil || !strings.Contains(err.Error(), "seed") {
		t.Fatalf("--run with a different config: %v", err)
	}
}

// TestBrokerRestart restarts the NATS server (same port, same file store)
// mid-run: every client reconnects and the run ends with the weights of an
// uninterrupted one.
func TestBrokerRestart(t *testing.T) {
	cfg := smallConfig(t)
	ref := referenceDigest(t, cfg)

	dir := t.TempDir()
	host := "127.0.0.1"
	port, err := freeport.Stable()
	if err != nil {
		t.Fatal(err)
	}
	start := func() *server.Server {
		s, err := server.NewServer(&server.Options{Host: host, Port: port, JetStream: true, StoreDir: dir,
			MaxPayload: protocol.MaxPayload, NoSigs: true, NoLog: true})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server did not start")
		}
		return s
	}
	var mu sync.Mutex
	srv := start()
	t.Cleanup(func() { mu.Lock(); srv.Shutdown(); mu.Unlock() })
	url := srv.ClientURL()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := newPool(t, url)
	p.add(2)

	restarted := make(chan struct{})
	res, err := train(t, context.Background(), nc, openStore(t, ""), cfg, Hooks{Committed: func(step uint64, _ [8]byte) {
		if step == 20 {
			go func() {
				mu.Lock()
				srv.Shutdown()
				srv.WaitForShutdown()
				srv = start()
				mu.Unlock()
				close(restarted)
			}()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-restarted:
	default:
		t.Fatal("the broker was not restarted during the run")
	}
	if fmt.Sprintf("%x", res.Digest) != ref {
		t.Fatal("a run across a broker restart ended with other weights")
	}
}

// TestStragglersAreRedispatched runs with a worker that takes tasks and
// never answers. Its shards are handed out again once they are late beyond
// the recent median, long before the ack wait, and the weights are those of
// a run without it.
func TestStragglersAreRedispatched(t *testing.T) {
	cfg := smallConfig(t)
	ref := referenceDigest(t, cfg)
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	p := newPool(t, srv.ClientURL())
	p.add(2)

	// The thief takes one task at steps 12, 25 and 40 and never answers.
	type shardOf struct {
		step  uint64
		shard int
	}
	thief := connect(t, srv.ClientURL())
	steal := make(chan struct{}, 3)
	var stolen []shardOf
	thiefDone := make(chan struct{})
	go func() {
		defer close(thiefDone)
		js, _ := jetstream.New(thief)
		for range steal {
			cons, err := js.Consumer(context.Background(), protocol.TasksStream, protocol.WorkersConsumer)
			if err != nil {
				return
			}
			msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
			var task protocol.Task
			if err == nil && task.UnmarshalBinary(msg.Data()) == nil {
				stolen = append(stolen, shardOf{task.Step, int(task.Shard)})
			}
		}
	}()
	var mu sync.Mutex
	redispatched := map[shardOf]bool{}
	res, err := Train(context.Background(), nc, openStore(t, ""), Options{Config: cfg, Log: quietLog(), AckWait: time.Minute,
		Hooks: Hooks{
			Committed: func(step uint64, _ [8]byte) {
				if step == 12 || step == 25 || step == 40 {
					steal <- struct{}{}
				}
			},
			Redispatched: func(step uint64, shards []int) {
				mu.Lock()
				defer mu.Unlock()
				for _, s := range shards {
					redispatched[shardOf{step, s}] = true
				}
			},
		}})
	close(steal)
	<-thiefDone
	if err != nil {
		t.Fatal(err)
	}
	if len(stolen) == 0 {
		t.Fatal("the thief never got a task: the scenario did not happen")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range stolen {
		if !redispatched[s] {
			t.Errorf("stolen step %d shard %d was never re-dispatched (the ack wait is a minute)", s.step, s.shard)
		}
	}
	if fmt.Sprintf("%x", res.Digest) != ref {
		t.Fatal("re-dispatching stragglers changed the weights")
	}
}

// TestStandbyTakesOver starts a second coordinator on a running run: it
// waits on the lease, and when the leader's connection dies without
// releasing it, takes over from the checkpoint and the stream.
func TestStandbyTakesOver(t *testing.T) {
	cfg := smallConfig(t)
	ref := referenceDigest(t, cfg)
	srv := runNATS(t, t.TempDir())
	st := openStore(t, "")
	p := newPool(t, srv.ClientURL())
	p.add(2)

	leaderConn := connect(t, srv.ClientURL())
	standbyStarted := make(chan struct{})
	type outcome struct {
		res *Result
		err error
	}
	standby := make(chan outcome, 1)
	var leaderSteps, standbyFirst atomic.Uint64
	go func() {
		<-standbyStarted
		res, err := Train(context.Background(), connect(t, srv.ClientURL()), st, Options{Config: cfg, Log: quietLog(), ID: "standby",
			LeaseTTL: 2 * time.Second, Hooks: Hooks{Committed: func(step uint64, _ [8]byte) { standbyFirst.CompareAndSwap(0, step) }}})
		standby <- outcome{res, err}
	}()
	_, err := Train(context.Background(), leaderConn, st, Options{Config: cfg, Log: quietLog(), ID: "leader", LeaseTTL: 2 * time.Second,
		Hooks: Hooks{Committed: func(step uint64, _ [8]byte) {
			leaderSteps.Store(step)
			switch step {
			case 5:
				close(standbyStarted)
			case 25:
				leaderConn.Close() // the leader dies: no release, no more refreshes
			}
		}}})
	if err == nil {
		t.Fatal("the leader finished although its connection died")
	}
	out := <-standby
	if out.err != nil {
		t.Fatal(out.err)
	}
	if first := standbyFirst.Load(); first <= 5 {
		t.Fatalf("the standby committed step %d while the leader was alive", first)
	}
	if fmt.Sprintf("%x", out.res.Digest) != ref {
		t.Fatal("the standby finished with other weights than an uninterrupted run")
	}
	t.Logf("leader died after step %d; standby resumed from checkpoint step %d and reused %d gradients", leaderSteps.Load(), out.res.Resumed, out.res.Replayed)
}

// TestARunKeepsAsManyCheckpointsAsItsConfigSays: the run's keep, not the
// store's default (3), decides how many checkpoints stay in the bucket.
func TestARunKeepsAsManyCheckpointsAsItsConfigSays(t *testing.T) {
	cfg := smallConfig(t, "keep=5", "checkpoint_every=5")
	srv := runNATS(t, t.TempDir())
	st := openStore(t, "")
	p := newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()
	ds, err := model.LoadDataset(cfg.Dataset, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	spe := uint64(model.StepsPerEpoch(ds.Train.N, cfg.BatchSize))
	// The saver commits the newest checkpoint waiting, skipping older
	// ones: the step after each checkpoint waits for it to be committed,
	// unless it waits for an epoch's evaluation that this loop (blocked
	// in the hook) has yet to take in.
	var saved, newest, evaluated atomic.Uint64
	hooks := Hooks{
		Saved:     func(step uint64) { saved.Add(1); newest.Store(max(newest.Load(), step)) },
		EpochDone: func(int, float64, float64) { evaluated.Add(1) },
		Committed: func(step uint64, _ [8]byte) {
			if ck := step - 1; ck > 0 && ck%5 == 0 && ck/spe <= evaluated.Load() {
				for deadline := time.Now().Add(time.Minute); newest.Load() < ck && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
			}
		},
	}
	if _, err := train(t, context.Background(), connect(t, srv.ClientURL()), st, cfg, hooks); err != nil {
		t.Fatal(err)
	}
	if saved.Load() <= 5 {
		t.Fatalf("only %d checkpoints were committed: too few to tell 5 kept from more", saved.Load())
	}
	steps, err := st.Checkpoints(context.Background(), cfg.Signature())
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 5 {
		t.Fatalf("the bucket holds checkpoints %v, want the newest 5", steps)
	}
}

// damageNewestCheckpoint overwrites the newest of the run's checkpoints
// (there must be two at least) in bucket with junk. It returns the run's
// checkpoint steps, newest first, and the damaged object's key.
func damageNewestCheckpoint(t *testing.T, st *objstore.Store, bucket string, cfg config.Config) ([]uint64, string) {
	t.Helper()
	steps, err := st.Checkpoints(context.Background(), cfg.Signature())
	if err != nil || len(steps) < 2 {
		t.Fatalf("checkpoints %v: %v", steps, err)
	}
	key := objstore.CheckpointKey(cfg.Signature(), steps[0])
	putRaw(t, bucket, key, "not a checkpoint")
	return steps, key
}

// putRaw writes data under key in bucket of the test S3 server directly,
// past objstore and its checks.
func putRaw(t *testing.T, bucket, key, data string) {
	t.Helper()
	mc, err := minio.New(strings.TrimPrefix(s3URL, "http://"), &minio.Options{Creds: credentials.NewStaticV4(objstore.DefaultAccessKey, objstore.DefaultSecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(context.Background(), bucket, key, strings.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// freshBucket names a bucket no other test, or earlier run of a test
// (-count), has used.
func freshBucket(what string) string {
	return fmt.Sprintf("t%d-%s%d", os.Getpid(), what, bucketSeq.Add(1))
}

// restartScene sets up a run of smallConfig to interrupt and restart: the
// digest an uninterrupted run ends with, a server of its own, a fresh
// bucket (named what plus a number) and two workers that serve both the
// interrupted coordinator and the restarted one.
func restartScene(t *testing.T, what string) (cfg config.Config, ref string, nc *nats.Conn, bucket string, st *objstore.Store) {
	t.Helper()
	cfg = smallConfig(t)
	ref = referenceDigest(t, cfg)
	srv := runNATS(t, t.TempDir())
	nc = connect(t, srv.ClientURL())
	bucket = freshBucket(what)
	st = openStore(t, bucket)
	newPool(t, srv.ClientURL()).add(2) // closed at the test's end
	return cfg, ref, nc, bucket, st
}

// TestAnUncommittedNewerCheckpointIsReplayedNotRecomputed: a checkpoint
// object newer than the manifest (a commit that stopped between its two
// puts) while the grads stream still holds the gradients since the
// manifest's checkpoint: the restart replays them rather than recompute
// those steps in the coordinator, and ends with the weights of a run that
// never stopped.
func TestAnUncommittedNewerCheckpointIsReplayedNotRecomputed(t *testing.T) {
	cfg, ref, nc, bucket, st := restartScene(t, "uncommitted-")
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := train(t, ctx, nc, st, cfg, Hooks{Saved: func(step uint64) {
		if step >= 20 {
			cancel()
		}
	}}); err == nil {
		t.Fatal("the interrupted run reported success")
	}
	man, err := st.Manifest(context.Background(), cfg.Signature())
	if err != nil {
		t.Fatal(err)
	}
	putRaw(t, bucket, objstore.CheckpointKey(cfg.Signature(), man.Step+uint64(cfg.CheckpointEvery)), "the bytes of a commit that never wrote its manifest")

	res, logs := restart(t, nc, st, cfg)
	if strings.Contains(logs, "recomputing") {
		t.Fatalf("the restart recomputed steps the stream still holds:\n%s", logs)
	}
	if got := fmt.Sprintf("%x", res.Digest); got != ref {
		t.Fatalf("weights %s, want %s", got, ref)
	}
	if res.Resumed != man.Step || res.Replayed == 0 {
		t.Fatalf("resumed from step %d replaying %d gradients, want step %d and the stream's gradients", res.Resumed, res.Replayed, man.Step)
	}
}

// restart trains cfg to its end (within two minutes: a restart that
// waits for gradients the stream no longer holds fails) and returns the
// result and what it warned of.
func restart(t *testing.T, nc *nats.Conn, st *objstore.Store, cfg config.Config, set ...func(*Options)) (*Result, string) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := Options{Config: cfg, Log: log, AckWait: 2 * time.Second}
	for _, f := range set {
		f(&opts)
	}
	res, err := Train(ctx, nc, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res, logs.String()
}

// watchStatus collects every live status written for run from now on;
// the returned function reports those so far. It subscribes to the status
// bucket's subject itself, with no limit on what it may queue: a watcher
// of the bucket, which keeps only the latest value, could miss statuses
// written in quick succession.
func watchStatus(t *testing.T, js jetstream.JetStream, run string) func() []protocol.Status {
	t.Helper()
	var mu sync.Mutex
	var seen []protocol.Status
	sub, err := js.Conn().Subscribe("$KV."+protocol.StatusBucket+"."+run, func(msg *nats.Msg) {
		var s protocol.Status
		if json.Unmarshal(msg.Data, &s) == nil {
			mu.Lock()
			seen = append(seen, s)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() []protocol.Status {
		mu.Lock()
		defer mu.Unlock()
		return append([]protocol.Status(nil), seen...)
	}
}

// TestCorruptNewestCheckpoint damages the newest checkpoint of an
// interrupted run: the restart warns, resumes from the previous one,
// recomputes the steps to the damaged one itself (the grads stream no
// longer holds their gradients), replays the stream from there, and ends
// with the weights of an uninterrupted run.
func TestCorruptNewestCheckpoint(t *testing.T) {
	cfg, ref, nc, bucket, st := restartScene(t, "corrupt-")

	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	if _, err := train(t, ctx, nc, st, cfg, Hooks{Saved: func(step uint64) {
		if step < 50 {
			return
		}
		// The run stops once the stream is trimmed to this checkpoint,
		// which waits for the workers' snapshot of its step too.
		once.Do(func() {
			defer cancel()
			ck, _, err := st.Latest(context.Background(), cfg.Signature(), nil)
			if err != nil {
				return
			}
			grads, err := js.Stream(context.Background(), protocol.GradsStream)
			if err != nil {
				return
			}
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if info, err := grads.Info(context.Background()); err == nil && info.State.FirstSeq > ck.GradsSeq {
					return
				}
			}
		})
	}}); err == nil {
		t.Fatal("the interrupted run reported success")
	}
	steps, key := damageNewestCheckpoint(t, st, bucket, cfg)

	// The stream holds none of the gradients the previous checkpoint would
	// replay: the restart cannot wait for them.
	prev, _, err := st.Latest(context.Background(), cfg.Signature(), nil)
	if err != nil || prev.Step != steps[1] {
		t.Fatalf("the previous checkpoint: %v", err)
	}
	grads, err := js.Stream(context.Background(), protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := grads.Info(context.Background()); err != nil || info.State.FirstSeq <= prev.GradsSeq+1 {
		t.Fatalf("the grads stream still holds the gradients after the previous checkpoint's sequence %d (%v)", prev.GradsSeq, err)
	}

	// A status every millisecond: the recompute of these steps takes about
	// a millisecond a step here, so it writes one at nearly every step
	// (and at least one between its first and its last unless the whole
	// recompute took under a millisecond).
	statuses := watchStatus(t, js, cfg.Signature())
	res, logs := restart(t, nc, st, cfg, func(o *Options) { o.StatusEvery = time.Millisecond })
	if !strings.Contains(logs, key) {
		t.Fatalf("no warning names the corrupt checkpoint %s:\n%s", key, logs)
	}
	// Its start, and steps as it went.
	started, during := false, false
	var recomputing []uint64
	for _, s := range statuses() {
		if s.Recomputing {
			recomputing = append(recomputing, s.Step)
		}
		started = started || s.Recomputing && s.Step == prev.Step
		during = during || s.Recomputing && s.Step > prev.Step && s.Step < steps[0]
	}
	if !started {
		t.Fatalf("no live status said the steps from %d to %d were being recomputed (recomputing at steps %v)", prev.Step, steps[0], recomputing)
	}
	if !during {
		t.Fatalf("no live status showed the recompute between steps %d and %d as it went (recomputing at steps %v)", prev.Step, steps[0], recomputing)
	}
	if !strings.Contains(logs, "recomputing the steps to the newest checkpoint's") {
		t.Fatalf("no warning tells of the steps recomputed:\n%s", logs)
	}
	if res.Resumed != steps[1] {
		t.Fatalf("resumed from step %d, want the previous checkpoint at %d", res.Resumed, steps[1])
	}
	if fmt.Sprintf("%x", res.Digest) != ref {
		t.Fatal("resuming past a corrupt checkpoint changed the weights")
	}
}

// TestCorruptFinalCheckpoint damages the last checkpoint of a finished run:
// started again, the coordinator falls back to the previous one,
// recomputes the steps to the end itself and saves the final checkpoint
// again, so a third start finds the run finished with nothing to repair.
func TestCorruptFinalCheckpoint(t *testing.T) {
	cfg := smallConfig(t, "epochs=1")
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	bucket := freshBucket("final-")
	st := openStore(t, bucket)
	p := newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()
	first, err := train(t, context.Background(), nc, st, cfg, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	_, key := damageNewestCheckpoint(t, st, bucket, cfg)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	statuses := watchStatus(t, js, cfg.Signature())
	res, logs := restart(t, nc, st, cfg)
	if !strings.Contains(logs, key) || !strings.Contains(logs, "recomputing the steps to the newest checkpoint's") {
		t.Fatalf("the restart did not fall back past %s and recompute:\n%s", key, logs)
	}
	// The live status ends with the run's last step, recomputed.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		seen := statuses()
		if n := len(seen); n > 0 && !seen[n-1].Recomputing && seen[n-1].Step == first.Step {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live status does not end at step %d, recomputed: %+v", first.Step, seen)
		}
	}
	if !bytes.Equal(res.Digest[:], first.Digest[:]) {
		t.Fatal("the recomputed run ended with other weights")
	}
	res, logs = restart(t, nc, st, cfg)
	if logs != "" {
		t.Fatalf("the final checkpoint was not saved again; a third start warned:\n%s", logs)
	}
	if !bytes.Equal(res.Digest[:], first.Digest[:]) || res.Step != first.Step {
		t.Fatalf("the third start reports step %d, want the finished run's %d with its weights", res.Step, first.Step)
	}
}

// TestWorkerFetchesTheDataset runs a worker on a "machine" without the
// Fashion-MNIST files: it fetches the copy the coordinator shared in the
// bucket, caches it by digest, and trains.
func TestWorkerFetchesTheDataset(t *testing.T) {
	if files := trainWithFetchingWorker(t, t.TempDir()); len(files) != 4 {
		t.Fatalf("cached dataset files %v, want 4", files)
	}
}

// TestAWorkersOtherDatasetFilesAreNotUsed runs a worker whose machine has
// Fashion-MNIST files that parse but differ from the coordinator's (one
// training label changed): it does not train on them but fetches the
// run's copy, as a worker without files does.
func TestAWorkersOtherDatasetFilesAreNotUsed(t *testing.T) {
	other := t.TempDir()
	for _, f := range model.FashionMNISTFiles {
		b, err := os.ReadFile(filepath.Join(model.DefaultFashionMNISTDir, f))
		if err != nil {
			t.Fatal(err) // the README's setup installs Fashion-MNIST, as .ci/run does
		}
		if f == "train-labels-idx1-ubyte.gz" {
			b = relabelFirst(t, b)
		}
		if err := os.WriteFile(filepath.Join(other, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if files := trainWithFetchingWorker(t, other); len(files) != 4 {
		t.Fatalf("cached dataset files %v, want the run's 4: the worker trained on its own, other files", files)
	}
}

// relabelFirst returns the gzipped IDX labels file gz with its first label
// changed.
func relabelFirst(t *testing.T, gz []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	raw[8] = (raw[8] + 1) % 10 // after the magic number and the count
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(raw)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// trainWithFetchingWorker trains three steps of the default model on
// Fashion-MNIST with one worker whose own dataset directory is dataDir and
// which may fetch the copy the coordinator shares, and returns the dataset
// files the worker's cache holds then.
func trainWithFetchingWorker(t *testing.T, dataDir string) []string {
	t.Helper()
	cfg, err := config.Load("", []string{"batch_size=512", "shards=2", "epochs=1", "checkpoint_every=1000"})
	if err != nil {
		t.Fatal(err)
	}
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	st := openStore(t, "")
	cache := t.TempDir()
	w, err := worker.New(connect(t, srv.ClientURL()), worker.Options{Log: quietLog(), DataDir: dataDir, Datasets: st, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = w.Run(wctx) }()

	ctx, cancel := context.WithCancel(context.Background())
	// The coordinator's machine has the files (without them it says so).
	if _, err := train(t, ctx, nc, st, cfg, Hooks{Committed: func(step uint64, _ [8]byte) {
		if step == 3 {
			cancel()
		}
	}}); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	// Acks are counted when the server confirms the gradient: poll.
	for deadline := time.Now().Add(10 * time.Second); w.Tasks() < 6; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker finished %d tasks, want the 6 of three steps", w.Tasks())
		}
	}
	files, _ := filepath.Glob(filepath.Join(cache, "datasets", "fashion-mnist", "*", "*-ubyte*"))
	return files
}

// TestCommitRecordsOfAnotherCodecVersionDoNotBlockARun: a run resumed
// after an upgrade finds the commit records the earlier version wrote, on
// that version's subjects (version 2 wrote jt.params.<run>.<step>), in a
// codec this one cannot read. They neither fence the coordinator nor count
// as commits for workers: the run ends with the weights it would have had,
// and its own records are readable beside the old ones.
func TestCommitRecordsOfAnotherCodecVersionDoNotBlockARun(t *testing.T) {
	cfg := smallConfig(t)
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := protocol.Ensure(ctx, js, 1, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	run := cfg.Signature()
	old := []uint64{1, 2, 7}
	oldSubject := func(step uint64) string { return fmt.Sprintf("jt.params.%s.%d", run, step) }
	for _, step := range old {
		earlier := []byte{protocol.Version - 1, byte(protocol.KindParams), 0} // as far as this version reads
		if _, err := js.Publish(ctx, oldSubject(step), earlier, jetstream.WithMsgID(fmt.Sprintf("%s/params/%d", run, step))); err != nil {
			t.Fatal(err)
		}
	}
	local, _ := trainLocal(t, cfg)

	p := newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()
	var logs syncbuf.Buffer
	tctx, cancel := context.WithTimeout(ctx, time.Minute) // a run the old records stall fails, with its log
	defer cancel()
	res, err := Train(tctx, nc, openStore(t, ""), Options{Config: cfg, Log: slog.New(slog.NewTextHandler(&logs, nil)), AckWait: 2 * time.Second})
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if res.Digest != local.Digest {
		t.Fatalf("weights %x, the in-process loop's %x", res.Digest[:8], local.Digest[:8])
	}
	params, _ := js.Stream(ctx, protocol.ParamsStream)
	for _, step := range old {
		raw, err := params.GetLastMsgForSubject(ctx, protocol.ParamsSubject(run, step))
		if err != nil {
			t.Fatal(err)
		}
		var p protocol.Params
		if err := p.UnmarshalBinary(raw.Data); err != nil || p.Step != step {
			t.Fatalf("step %d: commit record %+v: %v", step, p, err)
		}
		if _, err := params.GetLastMsgForSubject(ctx, oldSubject(step)); err != nil {
			t.Fatalf("step %d: the earlier version's record is gone: %v", step, err)
		}
	}
}
