package coordinator

import (
	"encoding/binary"
	"fmt"
	"math"
)

// partial is the running state of the epoch in progress, carried in
// checkpoints so an epoch interrupted by a restart reports the same totals.
type partial struct {
	LossSum    float64
	Correct    uint64
	Count      uint64
	EpochStart int64 // unix nanoseconds; timing only, never math
}

const partialSize = 1 + 8*4

func (p partial) marshal() []byte {
	b := make([]byte, 1, partialSize)
	b[0] = 1
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.LossSum))
	b = binary.LittleEndian.AppendUint64(b, p.Correct)
	b = binary.LittleEndian.AppendUint64(b, p.Count)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.EpochStart))
	return b
}

func (p *partial) unmarshal(b []byte) error {
	if len(b) == 0 {
		*p = partial{}
		return nil
	}
	if len(b) != partialSize || b[0] != 1 {
		return fmt.Errorf("epoch state of %d bytes, version %d", len(b), b[0])
	}
	p.LossSum = math.Float64frombits(binary.LittleEndian.Uint64(b[1:]))
	p.Correct = binary.LittleEndian.Uint64(b[9:])
	p.Count = binary.LittleEndian.Uint64(b[17:])
	p.EpochStart = int64(binary.LittleEndian.Uint64(b[25:]))
	if p.Correct > p.Count || p.LossSum < 0 || math.IsNaN(p.LossSum) {
		return fmt.Errorf("epoch state out of range")
	}
	return nil
}
