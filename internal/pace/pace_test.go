package pace

import (
	"context"
	"testing"
	"time"
)

func TestWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Wait(ctx, time.Hour) {
		t.Fatal("Wait on an ended context reported it live")
	}
}

func TestWaitReportsALiveContext(t *testing.T) {
	if !Wait(context.Background(), time.Nanosecond) {
		t.Fatal("Wait on a live context reported it ended")
	}
}

func TestDueOnceAnInterval(t *testing.T) {
	var last time.Time
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {30 * time.Second, false}, {time.Minute - 1, false}, {time.Minute, true}, {time.Minute + time.Second, false}} {
		if got := Due(&last, t0.Add(c.at), time.Minute); got != c.want {
			t.Fatalf("Due at +%v = %v, want %v", c.at, got, c.want)
		}
	}
}
