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
func (p *progress) step(step uint64, finished *objstore.HistoryEntry) {
	if p.w == nil {
		return
	}
	epoch := int((step - 1) / uint64(p.spe))
	if p.bar == nil || epoch != p.epoch {
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
	if finished != nil {
		_ = p.bar.Finish()
		fmt.Fprintf(p.w, "\nepoch %d: train loss %.4f acc %.4f | valid loss %.4f acc %.4f | %.0f samples/s%s\n",
			finished.Epoch, finished.TrainLoss, finished.TrainAcc, finished.ValidLoss, finished.ValidAcc, finished.SamplesPerS, bestMark(finished.Best))
		p.bar = nil
	}
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
