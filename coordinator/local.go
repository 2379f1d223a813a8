package coordinator

import (
	"context"
	"time"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

// TrainLocal runs cfg in this process with no broker and no store: the same
// machine, the same shards and the same combine order as a distributed run,
// so it ends with the same weights bytes. maxSteps > 0 stops early. It is
// the reference that tests and benchmarks compare distributed runs with.
func TrainLocal(ctx context.Context, cfg config.Config, ds *model.Dataset, maxSteps uint64) (*Result, error) {
	net, err := model.New(cfg.ModelSpec(), ds.Shape, ds.Classes)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	opt, err := cfg.NewOptimizer(ds.Train.N, net.Layout().Size())
	if err != nil {
		return nil, err
	}
	run := cfg.Signature()
	m, err := NewMachine(run, cfg, ds.Train.N, opt, evaluator{net: net, test: &ds.Test}, net.Init(cfg.Seed), nil, time.Now())
	if err != nil {
		return nil, err
	}
	dim := ds.SampleSize()
	x := make([]float32, (cfg.BatchSize/cfg.Shards+1)*dim)
	y := make([]uint8, cfg.BatchSize/cfg.Shards+1)
	grads := make([][]float32, cfg.Shards)
	for i := range grads {
		grads[i] = make([]float32, net.Layout().Size())
	}
	shards := m.allShards()
	var seq uint64
	for !m.Done() && (maxSteps == 0 || m.Step() < maxSteps) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		short := protocol.ShortDigest(m.Digest())
		for _, t := range m.Tasks(shards) {
			n := len(t.Indices)
			ds.Train.Gather(t.Indices, x[:n*dim], y[:n])
			st, err := net.Gradient(m.Weights(), x[:n*dim], y[:n], grads[t.Shard])
			if err != nil {
				return nil, err
			}
			seq++
			g := &protocol.Grad{Run: run, Step: t.Step, Shard: t.Shard, Worker: "local", Weights: short,
				Stats: []protocol.ShardStats{{LossSum: st.LossSum, Correct: uint32(st.Correct), Count: uint32(st.Count)}}, Grad: grads[t.Shard]}
			if _, err := m.Grad(g, seq, time.Now()); err != nil {
				return nil, err
			}
		}
	}
	return &Result{Run: run, Step: m.Step(), Epoch: m.Epoch(), Digest: m.Digest(), History: m.History()}, nil
}
