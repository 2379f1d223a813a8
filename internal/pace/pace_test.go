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
