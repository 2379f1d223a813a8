package chaos

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// pollEvery paces every wait in the harness: conditions are polled with a
// deadline, never assumed after a sleep.
const pollEvery = 20 * time.Millisecond

// waitFor polls cond until it returns nil, ctx ends or timeout passes; the
// error then names what was awaited and cond's last complaint. Each poll
// first calls tick (when not nil), which is how the harness supervises its
// processes while it waits.
func waitFor(ctx context.Context, timeout time.Duration, what string, tick func(), cond func() error) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		if tick != nil {
			tick()
		}
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: %s: not within %v: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// httpUp returns nil once url answers any HTTP response with a status below
// want (e.g. 300 for a health endpoint, 600 for "anything").
func httpUp(url string, want int) error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= want {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}
