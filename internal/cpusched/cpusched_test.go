package cpusched

import (
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	for _, s := range []string{"batch", "normal"} {
		if p, err := ParsePolicy(s); err != nil || string(p) != s {
			t.Errorf("ParsePolicy(%q) = %q, %v", s, p, err)
		}
	}
	for _, s := range []string{"", "fast", "BATCH", "idle"} {
		_, err := ParsePolicy(s)
		if err == nil || !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("ParsePolicy(%q) = %v, want an error naming it", s, err)
		}
	}
}
