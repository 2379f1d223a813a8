package coordinator

import (
	"encoding/hex"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// The weights a config trains to are a contract: resuming a run, or
// comparing one with an earlier run, needs the same bytes from the same
// config in every version of this code. These digests are what the
// element-wise shard sum and Adam give, and the AVX2 loops must give them
// too: the test runs itself again with GODEBUG=cpu.avx2=off, which takes
// the element-wise code. A change to the math that moves a single bit
// fails here. They hold for amd64: elsewhere gonum's Go kernels may fuse
// multiply-adds, and the bytes are their own.
func TestTrainingGivesTheRecordedWeights(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the digests were recorded on amd64, not %s", runtime.GOARCH)
	}
	if os.Getenv(goldenChild) == "" {
		t.Run("element-wise", func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestTrainingGivesTheRecordedWeights$", "-test.count=1")
			cmd.Env = append(os.Environ(), goldenChild+"=1", "GODEBUG=cpu.avx2=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("with GODEBUG=cpu.avx2=off: %v\n%s", err, out)
			}
		})
	}
	for _, c := range []struct {
		name string
		sets []string
		want string
	}{
		{"adam", []string{"optimizer.name=adam"}, "035330fff2cdef8427e287d3b257295c949bb9ecf14d0b1b3a552433666e8f29"},
		{"sgd", []string{"optimizer.name=sgd"}, "35386b33624420193a2ac5f8af7b41d36cb5471c987c01cb9ec339c843750301"},
		{"cnn", []string{"model=cnn", "hidden=[16]", "epochs=1"}, "f3b4f4942fc863ccb0397b4a6ab43181e2eafc1d6b8b41efb8de6de47e6cc75a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := smallConfig(t, append([]string{"hidden=[64]", "shards=3", "batch_size=48"}, c.sets...)...)
			res, _ := trainLocal(t, cfg)
			if got := hex.EncodeToString(res.Digest[:]); got != c.want {
				t.Errorf("%s: %d steps give weights %s, recorded %s", c.name, res.Step, got, c.want)
			}
		})
	}
}

// goldenChild marks the run of TestTrainingGivesTheRecordedWeights that its
// parent starts with the vector loops turned off.
const goldenChild = "JETTRAIN_GOLDEN_ELEMENTWISE"
