// Package natstest starts real NATS servers, in process, for tests: the
// same server a deployment runs, on a random port, gone when the test ends.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start runs a server with o and waits until it takes connections. An
// empty Host is 127.0.0.1 and a zero Port a random one; signals and logging
// are off. The server is shut down when t ends.
func Start(t testing.TB, o server.Options) *server.Server {
	t.Helper()
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	o.NoSigs, o.NoLog = true, true
	s, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return s
}
