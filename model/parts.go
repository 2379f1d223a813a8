package model

// Parts is one vector held in pieces: the values of Parts[0], then those of
// Parts[1], and so on. GradientParts returns a gradient so — one piece per
// parameter tensor, in Layout order, in the network's own buffers — and a
// ShardSum folds it in piece by piece, which spares copying every gradient
// into one flat buffer first (for the default MLP, 800 KB written and read
// again per shard). The element-wise additions are the same, so the sum's
// bytes are too.
type Parts [][]float32

// Len is the number of values in all the pieces.
func (p Parts) Len() int {
	n := 0
	for _, s := range p {
		n += len(s)
	}
	return n
}

// CopyTo copies the values into dst, which must hold Len of them, and
// returns how many it copied.
func (p Parts) CopyTo(dst []float32) int {
	off := 0
	for _, s := range p {
		off += copy(dst[off:off+len(s)], s)
	}
	return off
}
