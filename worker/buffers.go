package worker

import (
	"github.com/jettrain/jettrain/internal/f32le"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

// gradBuffers are the buffers a worker's gradients go out in, reused once
// the broker and whoever else was handed a gradient are done with it.
// A replica also folds its step's sum in one (sumIn), at valuesAt: a
// complete sum that goes out alone — every shard of the step computed
// here — is then encoded around its values, where they already are
// (protocol.Grad.EncodeInPlace), and the replica's next step sums into
// another buffer (model.ShardSum.Lend). With one worker that is every
// step's gradient, 800 KB on the default model, published without a copy.
// A shard's gradient that goes out alone is copied once, from the
// network's buffers straight to where its message holds it
// (encodeParts).
type gradBuffers struct{ spare chan []byte }

// valuesAt is where a buffer holds a sum's values: after room for the
// rest of its encoding (about 130 bytes with four shards' statistics; a
// header that does not fit goes out through a copy). A multiple of the
// cache line.
const valuesAt = 512

func newGradBuffers() *gradBuffers { return &gradBuffers{spare: make(chan []byte, 4)} }

// get returns a spare buffer, empty, for appending an encoding to: one
// with room for a sum of size values (sumIn) at least, so that it can
// carry either when it comes back.
func (p *gradBuffers) get(size int) []byte {
	select {
	case b := <-p.spare:
		if cap(b) >= valuesAt+4*size {
			return b[:0]
		}
	default:
	}
	return make([]byte, 0, valuesAt+4*size)
}

// sumIn returns a buffer for a sum of size values, and the values viewed
// at valuesAt in it; false where this machine cannot view bytes as
// float32s (it is big-endian).
func (p *gradBuffers) sumIn(size int) ([]byte, []float32, bool) {
	b := p.get(size)[:valuesAt+4*size]
	v, ok := f32le.Floats(b[valuesAt:])
	return b, v, ok
}

// newShardSum returns a replica's sum of shards gradients of size values,
// in a buffer of p where it can (sumBuf; nil otherwise).
func (p *gradBuffers) newShardSum(shards, size int) (sum *model.ShardSum, sumBuf []byte) {
	if b, v, ok := p.sumIn(size); ok {
		return model.NewShardSumIn(shards, v), b
	}
	return model.NewShardSum(shards, size), nil
}

// encodeParts encodes g with the values parts holds (a shard's gradient in
// the network's buffers, size values), copying them once, straight to
// where the message holds them in a buffer of p, if they fit in one
// message of maxPayload bytes. Otherwise g.Grad holds the values, for a
// copy that goes out in parts.
func (p *gradBuffers) encodeParts(g *protocol.Grad, parts model.Parts, size, maxPayload int) (*sentBuffer, []protocol.Encoded, bool) {
	b, v, ok := p.sumIn(size)
	if !ok {
		v = make([]float32, size)
	}
	parts.CopyTo(v)
	g.Grad = v
	if !ok {
		return nil, nil, false
	}
	return p.inPlace(g, b, maxPayload, 1)
}

// lend encodes g, the replica's complete sum of its step, around its
// values in the replica's sum buffer, if they are there and fit in one
// message of maxPayload bytes: the sum is lent (model.ShardSum.Lend) to
// the returned buffer, held by its publisher and by the replica until its
// step is applied (rp.lent), and the replica sums on in another buffer.
func (p *gradBuffers) lend(rp *replica, g *protocol.Grad, maxPayload int) (*sentBuffer, []protocol.Encoded, bool) {
	if rp.sumBuf == nil || !rp.sum.Complete() || rp.lent != nil {
		return nil, nil, false
	}
	buf, msgs, ok := p.inPlace(g, rp.sumBuf, maxPayload, 2)
	if !ok {
		return nil, nil, false
	}
	next, v, _ := p.sumIn(rp.size) // views bytes as float32s here, as rp.sumBuf shows
	rp.sum.Lend(v)
	rp.sumBuf, rp.lent = next, buf
	return buf, msgs, true
}

// inPlace encodes g around its values, at valuesAt in b, as one message
// of at most maxPayload bytes, in a buffer of p held holds times; false if
// the values are not there or the message would be larger.
func (p *gradBuffers) inPlace(g *protocol.Grad, b []byte, maxPayload int, holds int32) (*sentBuffer, []protocol.Encoded, bool) {
	data, ok := g.EncodeInPlace(b, valuesAt)
	if !ok || len(data) > maxPayload {
		return nil, nil, false
	}
	buf := &sentBuffer{data: data, whole: b, spare: p.spare}
	buf.holds.Store(holds)
	return buf, []protocol.Encoded{{End: len(data), Values: len(g.Grad)}}, true
}
