package coordinator

import (
	"strings"
	"testing"

	"github.com/jettrain/jettrain/protocol"
)

// A model whose gradient or snapshot does not fit the server's max payload
// is refused at start with a line that says which and by how much.
func TestCheckPayload(t *testing.T) {
	const mlp = 784*256 + 256 + 256*10 + 10 // the default model
	if err := checkPayload(protocol.MaxPayload, 4, mlp, 8*mlp+1); err != nil {
		t.Fatalf("default model refused: %v", err)
	}
	if err := checkPayload(512<<10, 4, mlp, 8*mlp+1); err == nil || !strings.Contains(err.Error(), "a gradient of 203530 parameters") {
		t.Fatalf("gradient over 512 KiB: %v", err)
	}
	const big = 1_000_000 // a gradient fits 8 MiB, its Adam snapshot does not
	if err := checkPayload(protocol.MaxPayload, 4, big, 8*big+1); err == nil || !strings.Contains(err.Error(), "snapshot of 1000000 parameters") {
		t.Fatalf("snapshot over 8 MiB: %v", err)
	}
}
