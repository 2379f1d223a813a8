package freeport

import (
	"fmt"
	"net"
	"testing"
)

// TestStablePortsAreBelowTheEphemeralRangeAndFree checks every port drawn
// is in [Floor, EphemeralLow()) and can be listened on.
func TestStablePortsAreBelowTheEphemeralRangeAndFree(t *testing.T) {
	lo := EphemeralLow()
	for range 20 {
		p, err := Stable()
		if err != nil {
			t.Fatal(err)
		}
		if p < Floor || p >= lo {
			t.Fatalf("port %d, want one in [%d,%d)", p, Floor, lo)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		l.Close()
	}
}
