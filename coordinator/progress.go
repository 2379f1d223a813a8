package coordinator

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/jettrain/jettrain/objstore"
)

// progress draws one bar per epoch: steps done, samples/s, and the last
// epoch's figures once it ends. A nil writer draws nothing.
type progress struct {
	w     io.Writer
	spe   int
	batch int
	bar   *progressbar.ProgressBar
	epoch int
}

func newProgress(w io.Writer, stepsPerEpoch, batch int) *progress {
	return &progress{w: w, spe: stepsPerEpoch, batch: batch, epoch: -1}
}

// step records that the weights reached version step.
func (p *progress) step(step uint64) {
	if p.w == nil {
		return
	}
	epoch := int((step - 1) / uint64(p.spe))
	if p.bar == nil || epoch != p.epoch {
		if p.bar != nil {
			_ = p.bar.Finish()
			fmt.Fprintln(p.w) // the ended epoch's bar keeps its line
		}
		p.epoch = epoch
		p.bar = progressbar.NewOptions(p.spe,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(fmt.Sprintf("epoch %d", epoch)),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("samples"),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetWidth(30),
		)
		_ = p.bar.Set(int((step - 1) % uint64(p.spe)))
	}
	_ = p.bar.Add(1)
}

// epochDone prints an epoch's results, which come once its evaluation is
// in, while the next epoch's bar may be under way: they get a line of their
// own, and the bar goes on below them.
func (p *progress) epochDone(e *objstore.HistoryEntry) {
	if p.w == nil {
		return
	}
	if p.bar != nil && p.epoch == e.Epoch { // no next epoch's bar (the last epoch): this one is done
		_ = p.bar.Finish()
		p.bar = nil
	}
	fmt.Fprintf(p.w, "\nepoch %d: train loss %.4f acc %.4f | valid loss %.4f acc %.4f | %.0f samples/s%s\n",
		e.Epoch, e.TrainLoss, e.TrainAcc, e.ValidLoss, e.ValidAcc, e.SamplesPerS, bestMark(e.Best))
}

func (p *progress) finish() {
	if p.w != nil && p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

func bestMark(b bool) string {
	if b {
		return " (best)"
	}
	return ""
}
