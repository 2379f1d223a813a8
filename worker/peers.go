package worker

import (
	"sync"
	"sync/atomic"

	"github.com/jettrain/jettrain/protocol"
)

// Peers lets the workers of one process hand each other their gradients in
// memory, as they hand them to the coordinator of that process (Handoff).
// A worker waiting for a peer's gradient of the step it is on otherwise
// waits for the broker to pass it on: on busy cores, for the publisher's,
// the server's and the client's goroutines each to get a turn, while the
// peer's gradient could be read at once. Each gradient still goes to the
// grads stream, and its copy arriving by subscription is then not decoded.
//
// A worker offers every gradient it sends to the other workers of its run
// that joined the same Peers. Their inboxes hold a gradient in one message
// as its encoded bytes (the same bytes the stream stores under the
// gradient's message id) until the replica takes them, and decode them
// then; the sender's buffer is held until every peer has let go of it. A
// gradient in parts is decoded at once, as the subscription would.
//
// So workers that are peers may share one connection made with
// nats.NoEcho: the broker then sends none of their gradients back to any
// of them (with two workers, 2.4 MB a step of the default run that each
// client reads and the inboxes then skip), and they still hear each
// other, and every other worker by subscription. (coordinator start's
// workers do not: on two cores that saved CPU but no time.)
type Peers struct {
	mu    sync.Mutex
	runs  map[string][]peer // by run; looked up, never iterated
	taken atomic.Uint64
}

type peer struct {
	worker string
	in     *inbox
}

// NewPeers returns an empty Peers, for the workers of one process to share
// (Options.Peers).
func NewPeers() *Peers { return &Peers{runs: map[string][]peer{}} }

// Taken is how many offered gradients the workers' inboxes have decoded
// (one in parts once its last part is in).
func (p *Peers) Taken() uint64 { return p.taken.Load() }

// join adds in, the inbox of worker's replica of run, until leave is called.
func (p *Peers) join(run, worker string, in *inbox) (leave func()) {
	in.peersTaken = &p.taken
	p.mu.Lock()
	p.runs[run] = append(p.runs[run], peer{worker: worker, in: in})
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			kept := p.runs[run][:0]
			for _, q := range p.runs[run] {
				if q.in != in {
					kept = append(kept, q)
				}
			}
			clear(p.runs[run][len(kept):])
			if len(kept) == 0 {
				delete(p.runs, run)
			} else {
				p.runs[run] = kept
			}
		})
	}
}

// offer hands the encoded gradient of (run, step) from shard that worker
// sends in buf, as msgs, to the run's other workers. A gradient in one
// message is held: each peer that can use it holds buf until it has read
// it. One in parts is decoded by each peer at once.
func (p *Peers) offer(run, worker string, step uint64, shard int, buf *sentBuffer, msgs []protocol.Encoded) {
	p.mu.Lock()
	peers := append([]peer(nil), p.runs[run]...)
	p.mu.Unlock()
	var parts [][]byte
	if len(msgs) > 1 {
		parts = make([][]byte, len(msgs))
		from := 0
		for i, m := range msgs {
			parts[i], from = buf.data[from:m.End], m.End
		}
	}
	for _, q := range peers {
		switch {
		case q.worker == worker:
		case parts != nil:
			q.in.offerParts(step, shard, parts)
		default:
			buf.holds.Add(1)
			q.in.offer(step, shard, buf.data, buf.release)
		}
	}
}
