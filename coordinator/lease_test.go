package coordinator

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

func TestHolderIsGone(t *testing.T) {
	host, _ := os.Hostname()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	for _, tc := range []struct {
		holder string
		want   bool
	}{
		{"me", true}, // this process in an earlier life
		{fmt.Sprintf("%s-%d", host, dead), true},
		{fmt.Sprintf("%s-%d", host, os.Getpid()), false}, // alive, another id
		{fmt.Sprintf("elsewhere-%d", dead), false},       // other hosts are never judged
		{host + "-x", false},
	} {
		if got := holderIsGone(tc.holder, "me"); got != tc.want {
			t.Errorf("holderIsGone(%q) = %v, want %v", tc.holder, got, tc.want)
		}
	}
}
