package objstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/jettrain/jettrain/internal/f32le"
)

// Checkpoint is everything needed to resume a run at an exact step.
type Checkpoint struct {
	Run      string // run signature (hex)
	Step     uint64 // number of optimizer steps applied (weights are version Step)
	Epoch    int    // current epoch (0-based) the next step belongs to
	GradsSeq uint64 // grads-stream sequence covered: replay starts at GradsSeq+1
	Weights  []float32
	OptState []byte
	History  []HistoryEntry
	Partial  []byte // opaque coordinator state for the epoch in progress (running sums); may be nil
}

// Checkpoint encoding: the magic "JTCK", a version byte, then the fields in
// declaration order. Integers are little-endian fixed width except lengths
// and Epoch, which are uvarints; floats are IEEE-754 little-endian.
//
//	magic[4] version[1]
//	run:       uvarint len, bytes
//	step:      u64
//	epoch:     uvarint
//	grads_seq: u64
//	weights:   uvarint count, count × f32
//	opt_state: uvarint len, bytes
//	history:   uvarint count, count × (uvarint epoch, u64 step, 6 × f64, u8 best)
//	partial:   u8 present (0 or 1), then uvarint len, bytes when present
//
// Nothing may follow the last field.
const (
	checkpointMagic   = "JTCK"
	checkpointVersion = 1
	historyEntrySize  = 1 + 8 + 6*8 + 1 // minimum encoded size of one entry
	maxEpoch          = math.MaxInt32
)

// MarshalBinary encodes ck after validating it (errors wrap ErrInvalid).
func (ck *Checkpoint) MarshalBinary() ([]byte, error) {
	if err := ck.Validate(); err != nil {
		return nil, err
	}
	size := 5 + 10 + len(ck.Run) + 8 + 10 + 8 + 10 + 4*len(ck.Weights) + 10 + len(ck.OptState) +
		10 + len(ck.History)*(historyEntrySize+9) + 11 + len(ck.Partial)
	b := make([]byte, 0, size)
	b = append(b, checkpointMagic...)
	b = append(b, checkpointVersion)
	b = appendBytes(b, []byte(ck.Run))
	b = binary.LittleEndian.AppendUint64(b, ck.Step)
	b = binary.AppendUvarint(b, uint64(ck.Epoch))
	b = binary.LittleEndian.AppendUint64(b, ck.GradsSeq)
	b = binary.AppendUvarint(b, uint64(len(ck.Weights)))
	b = f32le.Append(b, ck.Weights)
	b = appendBytes(b, ck.OptState)
	b = binary.AppendUvarint(b, uint64(len(ck.History)))
	for _, h := range ck.History {
		b = binary.AppendUvarint(b, uint64(h.Epoch))
		b = binary.LittleEndian.AppendUint64(b, h.Step)
		for _, f := range h.floats() {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
		b = append(b, boolByte(h.Best))
	}
	if ck.Partial == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendBytes(b, ck.Partial)
	}
	return b, nil
}

// UnmarshalBinary decodes and validates data into ck. Every error wraps
// ErrCorrupt, but that of a checkpoint in another format version, which
// wraps ErrVersion; ck keeps no reference to data.
func (ck *Checkpoint) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if string(d.take(4, "magic")) != checkpointMagic {
		return d.errOr("not a jettrain checkpoint (bad magic)")
	}
	if v := d.u8("version"); d.err == nil && v != checkpointVersion {
		return fmt.Errorf("%w: checkpoint version %d, this build reads %d", ErrVersion, v, checkpointVersion)
	}
	var c Checkpoint
	c.Run = string(d.bytes("run"))
	c.Step = d.u64("step")
	c.Epoch = d.int("epoch")
	c.GradsSeq = d.u64("grads_seq")
	n := d.count(4, "weights")
	if n > 0 {
		c.Weights = make([]float32, n)
		if raw := d.take(4*n, "weights"); d.err == nil {
			f32le.Decode(c.Weights, raw)
		}
	}
	if p := d.bytes("opt_state"); len(p) > 0 {
		c.OptState = append([]byte(nil), p...)
	}
	n = d.count(historyEntrySize, "history")
	if n > 0 {
		c.History = make([]HistoryEntry, n)
		for i := range c.History {
			h := &c.History[i]
			h.Epoch = d.int("history epoch")
			h.Step = d.u64("history step")
			fs := make([]float64, 6)
			for j := range fs {
				fs[j] = math.Float64frombits(d.u64("history value"))
			}
			h.setFloats(fs)
			switch d.u8("history best") {
			case 0:
			case 1:
				h.Best = true
			default:
				d.fail("history best is not 0 or 1")
			}
		}
	}
	switch d.u8("partial flag") {
	case 0:
	case 1:
		c.Partial = append([]byte{}, d.bytes("partial")...)
	default:
		d.fail("partial flag is not 0 or 1")
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	if d.err != nil {
		return d.err
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%w: checkpoint: %s", ErrCorrupt, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	}
	*ck = c
	return nil
}

// Validate checks the fields a checkpoint must satisfy (errors wrap
// ErrInvalid): a valid run name, Step ≤ MaxStep, 0 ≤ Epoch, history
// epochs strictly increasing with steps ≤ Step and finite values.
func (ck *Checkpoint) Validate() error {
	if err := ValidRun(ck.Run); err != nil {
		return err
	}
	if ck.Step > MaxStep {
		return fmt.Errorf("%w: checkpoint step %d exceeds %d", ErrInvalid, ck.Step, uint64(MaxStep))
	}
	if ck.Epoch < 0 || ck.Epoch > maxEpoch {
		return fmt.Errorf("%w: checkpoint epoch %d out of range", ErrInvalid, ck.Epoch)
	}
	return validateHistory(ck.History, ck.Step)
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// decoder consumes fields; the first error sticks and later reads return zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: checkpoint: %s", ErrCorrupt, msg)
	}
	d.b = nil
}

func (d *decoder) errOr(msg string) error {
	d.fail(msg)
	return d.err
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail(fmt.Sprintf("truncated in %s (need %d bytes, have %d)", what, n, len(d.b)))
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8(what string) byte {
	p := d.take(1, what)
	if p == nil {
		return 0
	}
	return p[0]
}

func (d *decoder) u64(what string) uint64 {
	p := d.take(8, what)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(p)
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(fmt.Sprintf("bad varint in %s", what))
		return 0
	}
	// One encoding per checkpoint: 0x80 0x00 is not another way to say 0.
	if n != uvarintLen(v) {
		d.fail(fmt.Sprintf("non-canonical varint in %s", what))
		return 0
	}
	d.b = d.b[n:]
	return v
}

// uvarintLen is the length of v's shortest uvarint encoding, the one
// binary.AppendUvarint writes.
func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

func (d *decoder) int(what string) int {
	v := d.uvarint(what)
	if v > maxEpoch {
		d.fail(fmt.Sprintf("%s %d out of range", what, v))
		return 0
	}
	return int(v)
}

// count reads a length whose elements take at least unit bytes each and
// rejects it before anything is allocated if the input cannot hold them.
func (d *decoder) count(unit int, what string) int {
	v := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if v > uint64(len(d.b)/unit) {
		d.fail(fmt.Sprintf("%s count %d exceeds the remaining %d bytes", what, v, len(d.b)))
		return 0
	}
	return int(v)
}

func (d *decoder) bytes(what string) []byte {
	return d.take(d.count(1, what), what)
}
