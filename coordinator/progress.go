package coordinator

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/jettrain/jettrain/objstore"
)

// progress draws one bar per epoch: the epoch's steps done, its training
// loss so far and the samples a second since the bar started; and each
// epoch's figures once its evaluation is in. A nil writer draws nothing.
type progress struct {
	w     io.Writer
	spe   int
	batch int
	bar   *progressbar.ProgressBar
	epoch int

	start     time.Time // when the bar started (display only)
	steps     int       // steps committed since
	described time.Time // when the description was last set
}

func newProgress(w io.Writer, stepsPerEpoch, batch int) *progress {
	return &progress{w: w, spe: stepsPerEpoch, batch: batch, epoch: -1}
}

// describeEvery bounds how often the description is formatted: the bar
// itself draws at most as often.
const describeEvery = 200 * time.Millisecond

// step records that the weights reached version step, with loss the
// training loss of the epoch's steps so far.
func (p *progress) step(step uint64, loss float64) {
	if p.w == nil {
		return
	}
	epoch := int((step - 1) / uint64(p.spe))
	done := int((step-1)%uint64(p.spe)) + 1 // the epoch's steps with this one
	now := time.Now()
	if p.bar == nil || epoch != p.epoch {
		if p.bar != nil {
			_ = p.bar.Finish()
			fmt.Fprintln(p.w) // the ended epoch's bar keeps its line
		}
		p.epoch, p.start, p.steps, p.described = epoch, now, 1, now
		p.bar = progressbar.NewOptions(p.spe,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(p.describe(loss, now)),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(describeEvery),
			progressbar.OptionSetWidth(15),
		)
		_ = p.bar.Set(done)
		return
	}
	p.steps++
	if done == p.spe || now.Sub(p.described) >= describeEvery {
		p.described = now
		p.bar.Describe(p.describe(loss, now))
	}
	_ = p.bar.Add(1)
}

// describe is the bar's description: the epoch, its loss so far and the
// samples a second since the bar started.
func (p *progress) describe(loss float64, now time.Time) string {
	d := fmt.Sprintf("epoch %d loss %.4f", p.epoch, loss)
	if secs := now.Sub(p.start).Seconds(); secs > 0 && p.steps > 1 {
		d += fmt.Sprintf(" %.0f samples/s", float64((p.steps-1)*p.batch)/secs)
	}
	return d
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
