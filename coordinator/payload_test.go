package coordinator

import (
	"strings"
	"testing"

	"github.com/jettrain/jettrain/protocol"
)

// A model whose gradient does not fit the server's max payload is refused
// at start with a line that says so and by how much; its snapshot may be
// larger (it goes to the object store in chunks).
func TestCheckPayload(t *testing.T) {
	const mlp = 784*256 + 256 + 256*10 + 10 // the default model
	if err := checkPayload(protocol.MaxPayload, 4, mlp); err != nil {
		t.Fatalf("default model refused: %v", err)
	}
	if err := checkPayload(512<<10, 4, mlp); err == nil || !strings.Contains(err.Error(), "a gradient of 203530 parameters") {
		t.Fatalf("gradient over 512 KiB: %v", err)
	}
	const big = 1_000_000 // a gradient fits 8 MiB, its Adam snapshot (12 MB) does not
	if err := checkPayload(protocol.MaxPayload, 4, big); err != nil {
		t.Fatalf("a model whose gradient fits refused: %v", err)
	}
}
