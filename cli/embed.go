package cli

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jettrain/jettrain/protocol"
)

// Default listen addresses of the embedded servers, which are also the
// worker's default endpoints.
const (
	DefaultNATSListen = "127.0.0.1:4222"
	DefaultS3Listen   = "127.0.0.1:9000"
)

// startNATS runs an embedded JetStream server whose store is the directory
// store. Its report that it cannot write there goes to failed (see
// storeWatch).
func startNATS(store, listen string, failed chan<- *StoreError) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "jettrain-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   store,
		MaxPayload: protocol.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	s.SetLogger(&storeWatch{dir: store, failed: failed}, false, false)
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start listening on %s (is the port in use? pass --nats-listen or --nats)", listen)
	}
	return s, nil
}

// StoreError is the embedded NATS server failing to write its store (a
// full disk, files it may not write), after which its JetStream stores
// nothing more and tells no client so: their publishes time out. A store
// that only has no room left is refused to publishers in so many words,
// and the coordinator stops on that itself (coordinator.ErrNoRoom).
type StoreError struct {
	Dir string // the store directory
	Msg string // the server's report
}

func (e *StoreError) Error() string {
	return fmt.Sprintf("the embedded NATS server cannot write its store under %s (%s)", e.Dir, e.Msg)
}

// storeWatch is the embedded NATS server's logger. The server otherwise
// logs nothing, as before it had one; its first report that it cannot
// write its store goes to failed.
type storeWatch struct {
	dir    string
	failed chan<- *StoreError
	once   sync.Once
}

func (w *storeWatch) report(format string, v []any) {
	msg := fmt.Sprintf(format, v...)
	if writeFailed(msg) {
		w.once.Do(func() { w.failed <- &StoreError{Dir: w.dir, Msg: msg} })
	}
}

// writeFailed tells the server's reports of a store it cannot write from
// the rest (nats-server 2.x words them so).
func writeFailed(msg string) bool {
	msg = strings.ToLower(msg)
	for _, s := range []string{"critical write error", "no space left on device", "disabling jetstream", "will be disabled"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (w *storeWatch) Errorf(format string, v ...any) { w.report(format, v) }
func (w *storeWatch) Warnf(format string, v ...any)  { w.report(format, v) }
func (w *storeWatch) Fatalf(format string, v ...any) { w.report(format, v) }
func (w *storeWatch) Noticef(string, ...any)         {}
func (w *storeWatch) Debugf(string, ...any)          {}
func (w *storeWatch) Tracef(string, ...any)          {}
