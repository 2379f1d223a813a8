package coordinator

import (
	"errors"
	"testing"
	"time"

	"github.com/jettrain/jettrain/config"
)

// Options a node cannot run with are refused with ErrInvalidOption before
// it connects to anything; left unset, they take their defaults.
func TestOptionsRefuseWhatCannotWork(t *testing.T) {
	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]Options{
		"two replicas":          {Replicas: 2},
		"a lease under 1s":      {LeaseTTL: 500 * time.Millisecond},
		"an ack wait of 50ms":   {AckWait: 50 * time.Millisecond},
		"a status every 100µs":  {StatusEvery: 100 * time.Microsecond},
		"a negative status gap": {StatusEvery: -time.Second},
	} {
		o.Config = cfg
		if err := o.defaults(); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: %v, want %v", name, err, ErrInvalidOption)
		}
	}
	o := Options{Config: cfg}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if o.Replicas != 1 || o.AckWait != 0 || o.LeaseTTL != 5*time.Second || o.StatusEvery != 2*time.Second || o.Log == nil || o.Now == nil || o.ID == "" {
		t.Fatalf("defaults: %+v", o)
	}
}
