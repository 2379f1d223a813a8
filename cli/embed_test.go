package cli

import "testing"

// The embedded server's reports that it cannot write its store, in the
// words of nats-server 2.x; its other reports, its refusal to store past
// its limit among them (publishers hear of that), are not.
func TestWriteFailed(t *testing.T) {
	for msg, want := range map[string]bool{
		"JetStream stream '$G > JT_GRADS' critical write error: write /d/nats/jetstream/$G/streams/JT_GRADS/msgs/1.blk: no space left on device": true,
		"Filestore [JT_GRADS] Critical write error: write /d/nats/jetstream/$G/streams/JT_GRADS/msgs/4.blk: file too large":                      true,
		"Filesystem permission denied while writing msg, disabling JetStream: open /d/1.blk: permission denied":                                  true,
		"JetStream out of file resources, will be DISABLED":                                                                                      true,
		"Error writing snapshot: write /d/snap: no space left on device":                                                                         true,
		"JetStream file resource limits exceeded for server":                                                                                     false,
		"Readiness check failed: client connection closed":                                                                                       false,
		"JetStream failed to store a msg on stream '$G > JT_GRADS': maximum messages exceeded":                                                   false,
	} {
		if got := writeFailed(msg); got != want {
			t.Errorf("writeFailed(%q) = %v, want %v", msg, got, want)
		}
	}
}
