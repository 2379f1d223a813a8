package worker

import "time"

// AckWait is the task consumer's ack wait as the worker last read it (a
// guess of 3 s until it has found the consumer). Its keeper tells the
// broker that every task it holds is in progress every third of it. The
// worker reads it when it finds the consumer, and again whenever a
// coordinator says it changed it (protocol.FollowAckWait).
func (w *Worker) AckWait() time.Duration { return time.Duration(w.ackWait.Load()) }

// setAckWait records the consumer's ack wait d (ignored unless positive),
// and returns the one before. A shorter one has the keeper go through the
// tasks held at once: they were last kept alive at a third of the longer
// one.
func (w *Worker) setAckWait(d time.Duration) (was time.Duration) {
	if d <= 0 {
		return w.AckWait()
	}
	was = time.Duration(w.ackWait.Swap(int64(d)))
	if d < was {
		w.held.keepNow()
	}
	return was
}
