package freeport

import (
	"fmt"
	"net"
	"testing"
)

// TestStablePortsAreOutsideTheEphemeralRangeAndFree checks every port drawn
// is in Range and can be listened on.
func TestStablePortsAreOutsideTheEphemeralRangeAndFree(t *testing.T) {
	lo, hi, err := Range()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		p, err := Stable()
		if err != nil {
			t.Fatal(err)
		}
		if p < lo || p >= hi {
			t.Fatalf("port %d, want one in [%d,%d)", p, lo, hi)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		l.Close()
	}
}

// TestRangeAvoidsEveryEphemeralRange checks the ranges drawn from for the
// kernel's default, for ranges starting low or ending high, and that one
// leaving no room is an error.
func TestRangeAvoidsEveryEphemeralRange(t *testing.T) {
	for _, tc := range []struct {
		text   string
		lo, hi int
		ok     bool
	}{
		{"32768\t60999\n", Floor, 32768, true},
		{"10000 60999", 61000, 65536, true},
		{"49152 65535", Floor, 49152, true},
		{"1024 65000", 0, 0, false},
		{"60999 32768", 0, 0, false},
		{"", 0, 0, false},
	} {
		lo, hi, err := outside(tc.text)
		if (err == nil) != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("%q: [%d,%d) %v, want [%d,%d) ok=%v", tc.text, lo, hi, err, tc.lo, tc.hi, tc.ok)
		}
	}
}
